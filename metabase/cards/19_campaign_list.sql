-- This month's to-do for marketing, customer by customer: the list, why, what the customer is
-- expected to spend and the chance of no purchase in the next 90 days.
SELECT
    CASE "list"
        WHEN 'welcome' THEN 'Welcome'
        WHEN 'at_risk' THEN 'At risk'
        WHEN 'win_back' THEN 'Win back'
        WHEN 'next_in_line' THEN 'Next in line'
        ELSE "list"
    END AS "List",
    customer_id AS "Customer",
    reason AS "Why",
    expected_value AS "Expected value",
    100 * churn_risk AS "Churn risk (%)",
    churn_band AS "Churn band",
    value_rank AS "Value rank"
FROM campaigns
WHERE run_id = (SELECT MAX(run_id) FROM runs)
ORDER BY CASE "list"
    WHEN 'welcome' THEN 1 WHEN 'at_risk' THEN 2 WHEN 'win_back' THEN 3 ELSE 4 END,
    CASE WHEN value_rank > 0 THEN 0 ELSE 1 END, value_rank, customer_id
