-- Monthly revenue of the latest run: actuals, the forecast with its interval, and the
-- backtests that show how Prophet and a naive forecast did on months already known.
SELECT
    month AS "Month",
    SUM(CASE WHEN kind = 'actual' THEN revenue END) AS "Actual",
    SUM(CASE WHEN kind = 'forecast' THEN revenue END) AS "Forecast",
    SUM(CASE WHEN kind = 'forecast' THEN "lower" END) AS "Forecast low",
    SUM(CASE WHEN kind = 'forecast' THEN "upper" END) AS "Forecast high",
    SUM(CASE WHEN kind = 'backtest_prophet' THEN revenue END) AS "Backtest (Prophet)",
    SUM(CASE WHEN kind = 'backtest_naive' THEN revenue END) AS "Backtest (naive)"
FROM forecasts
WHERE run_id = (SELECT MAX(run_id) FROM runs)
GROUP BY month
ORDER BY month
