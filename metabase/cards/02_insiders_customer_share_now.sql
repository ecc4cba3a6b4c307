-- Insiders as a share of the customers active in the latest run's period.
SELECT 100 * insiders_share AS "Share of customers (%)"
FROM runs
WHERE run_id = (SELECT MAX(run_id) FROM runs)
