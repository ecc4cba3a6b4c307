-- Monthly revenue of the latest run's Insiders: actuals and the forecast with its interval;
-- and the out-of-time backtest: the group chosen one horizon earlier, forecast from what was
-- known then (our forecast and the naive mean-of-3-months rule) against what it really spent.
SELECT
    month AS "Month",
    SUM(CASE WHEN kind = 'actual' THEN revenue END) AS "Actual",
    SUM(CASE WHEN kind = 'forecast' THEN revenue END) AS "Forecast",
    SUM(CASE WHEN kind = 'forecast' THEN "lower" END) AS "Forecast low",
    SUM(CASE WHEN kind = 'forecast' THEN "upper" END) AS "Forecast high",
    SUM(CASE WHEN kind = 'backtest_actual' THEN revenue END) AS "Backtest (actual)",
    SUM(CASE WHEN kind = 'backtest_forecast' THEN revenue END) AS "Backtest (forecast)",
    SUM(CASE WHEN kind = 'backtest_naive' THEN revenue END) AS "Backtest (naive: mean of 3 months)"
FROM forecasts
WHERE run_id = (SELECT MAX(run_id) FROM runs)
GROUP BY month
ORDER BY month
