-- What each segment's customers are expected to spend (the value model, calibrated): over
-- the next months (the forecast's horizon) and over the next 12 months, per customer.
SELECT
    persona AS "Segment",
    COUNT(*) AS "Customers",
    AVG(expected_value) AS "Expected spend, next months",
    AVG(predicted_clv_12m) AS "Predicted 12-month value"
FROM customer_segments
WHERE run_id = (SELECT MAX(run_id) FROM runs)
    AND segment >= 0
GROUP BY persona
ORDER BY AVG(predicted_clv_12m) DESC
