-- The forecast checked on known months: the Insiders chosen one horizon before the latest run,
-- what they then spent, our forecast made at that time and the naive mean-of-3-months rule.
-- It follows that earlier group, not today's Insiders: its actuals are lower than the forecast
-- card's for the same months because the two groups differ.
SELECT
    month AS "Month",
    SUM(CASE WHEN kind = 'backtest_actual' THEN revenue END) AS "What that group spent",
    SUM(CASE WHEN kind = 'backtest_forecast' THEN revenue END) AS "Our forecast then",
    SUM(CASE WHEN kind = 'backtest_naive' THEN revenue END) AS "Mean of the 3 months before"
FROM forecasts
WHERE run_id = (SELECT MAX(run_id) FROM runs)
    AND kind IN ('backtest_actual', 'backtest_forecast', 'backtest_naive')
GROUP BY month
ORDER BY month
