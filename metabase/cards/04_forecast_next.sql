-- Revenue forecast for the period after the latest run.
SELECT forecast_next AS "Forecast revenue"
FROM runs
WHERE run_id = (SELECT MAX(run_id) FROM runs)
