-- How many Insiders each run picked, and what share of the active customers they are.
SELECT
    run_id AS "Run",
    insiders AS "Insiders",
    100 * insiders_share AS "Share of customers (%)"
FROM runs
ORDER BY run_id
