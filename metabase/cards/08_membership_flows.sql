-- Customers entering and leaving the Insiders program at each monthly run.
SELECT
    run_id AS "Run",
    SUM(CASE WHEN status = 'entered' THEN 1 ELSE 0 END) AS "Entered",
    SUM(CASE WHEN status = 'left' THEN 1 ELSE 0 END) AS "Left",
    SUM(CASE WHEN status = 'stayed' THEN 1 ELSE 0 END) AS "Stayed"
FROM membership
GROUP BY run_id
ORDER BY run_id
