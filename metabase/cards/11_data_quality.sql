-- Input rows set aside by the quality checks, per run and reason.
SELECT
    run_id AS "Run",
    REPLACE(reason, '_', ' ') AS "Reason",
    "rows" AS "Rows set aside"
FROM data_quality
ORDER BY run_id, reason
