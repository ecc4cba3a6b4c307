-- Insiders' share of the net revenue of the latest run's period.
SELECT 100 * insiders_revenue_share AS "Share of revenue (%)"
FROM runs
WHERE run_id = (SELECT MAX(run_id) FROM runs)
