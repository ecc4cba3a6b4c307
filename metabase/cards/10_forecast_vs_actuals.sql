-- Monthly net revenue of ONE group, the latest run's Insiders: what they spent in the months
-- before the run (actual) and what they are forecast to spend next, with the 80% interval as a
-- band (its low end, then its width stacked on it). The backtest, which follows an earlier
-- group, is its own card (17_forecast_backtest.sql), so no month shows two different actuals.
SELECT
    month AS "Month",
    SUM(CASE WHEN kind = 'forecast' THEN "lower" END) AS "Interval low",
    SUM(CASE WHEN kind = 'forecast' THEN "upper" - "lower" END) AS "80% interval",
    SUM(CASE WHEN kind = 'actual' THEN revenue END) AS "Actual",
    SUM(CASE WHEN kind = 'forecast' THEN revenue END) AS "Forecast"
FROM forecasts
WHERE run_id = (SELECT MAX(run_id) FROM runs)
    AND kind IN ('actual', 'forecast')
GROUP BY month
ORDER BY month
