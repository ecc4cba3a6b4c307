-- The Insiders of the latest run, most valuable first, with why they are members.
SELECT
    cs.value_rank AS "Rank",
    cs.customer_id AS "Customer",
    cs.country AS "Region",  -- the country, or the state where the source records states
    cs.persona AS "Segment",
    cs.expected_value AS "Expected value",
    cs.predicted_clv_12m AS "Predicted 12-month value",
    cs.churn_band AS "Churn risk",
    cs.monetary AS "Spend in period",
    cs.frequency AS "Orders",
    cs.recency_days AS "Days since last order",
    m.status AS "Membership",
    m.reason AS "Why"
FROM customer_segments cs
LEFT JOIN membership m
    ON m.run_id = cs.run_id AND m.customer_id = cs.customer_id
WHERE cs.run_id = (SELECT MAX(run_id) FROM runs)
    AND cs.is_insider
ORDER BY cs.value_rank
