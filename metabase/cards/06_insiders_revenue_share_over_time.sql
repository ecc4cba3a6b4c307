-- Insiders' share of revenue against their share of customers, run by run.
SELECT
    run_id AS "Run",
    100 * insiders_revenue_share AS "Share of revenue (%)",
    100 * insiders_share AS "Share of customers (%)"
FROM runs
ORDER BY run_id
