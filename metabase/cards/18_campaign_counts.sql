-- How many customers are on each of this month's campaign lists (models.campaigns), and what
-- they are expected to spend: the same rows as campaigns.csv of the latest run. Every list
-- has its bar, an empty one too (nobody left this month is news, not a missing bar).
SELECT
    l.label AS "List",
    COUNT(c.customer_id) AS "Customers",
    COALESCE(SUM(c.expected_value), 0) AS "Expected value"
FROM (
    SELECT 1 AS pos, 'welcome' AS code, 'Welcome' AS label
    UNION ALL SELECT 2, 'at_risk', 'At risk'
    UNION ALL SELECT 3, 'win_back', 'Win back'
    UNION ALL SELECT 4, 'next_in_line', 'Next in line'
) l
LEFT JOIN campaigns c
    ON c."list" = l.code AND c.run_id = (SELECT MAX(run_id) FROM runs)
GROUP BY l.pos, l.label
ORDER BY l.pos
