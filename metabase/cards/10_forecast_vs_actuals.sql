-- Monthly revenue of the latest run's Insiders: actuals and the forecast with its interval;
-- and the out-of-time backtest: the group chosen one horizon earlier, forecast from what was
-- known then (Prophet and a naive last-month forecast) against what it really spent.
SELECT
    month AS "Month",
    SUM(CASE WHEN kind = 'actual' THEN revenue END) AS "Actual",
    SUM(CASE WHEN kind = 'forecast' THEN revenue END) AS "Forecast",
    SUM(CASE WHEN kind = 'forecast' THEN "lower" END) AS "Forecast low",
    SUM(CASE WHEN kind = 'forecast' THEN "upper" END) AS "Forecast high",
    SUM(CASE WHEN kind = 'backtest_actual' THEN revenue END) AS "Backtest (actual)",
    SUM(CASE WHEN kind = 'backtest_prophet' THEN revenue END) AS "Backtest (Prophet)",
    SUM(CASE WHEN kind = 'backtest_naive' THEN revenue END) AS "Backtest (naive)"
FROM forecasts
WHERE run_id = (SELECT MAX(run_id) FROM runs)
GROUP BY month
ORDER BY month
