-- Input rows set aside by the quality checks, per run and reason, the reasons in the
-- report's words (a store synced before the label column existed falls back to the code).
SELECT
    run_id AS "Run",
    COALESCE(label, REPLACE(reason, '_', ' ')) AS "Reason",
    "rows" AS "Rows set aside"
FROM data_quality
ORDER BY run_id, reason
