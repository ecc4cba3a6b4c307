-- Segment sizes and values in the latest run: who is many, who is worth much.
SELECT
    persona AS "Segment",
    customers AS "Customers",
    100 * share AS "Share of customers (%)",
    100 * revenue_share AS "Share of revenue (%)",
    revenue AS "Revenue",
    insiders AS "Insiders",
    avg_expected_value AS "Expected value per customer"
FROM segment_profiles
WHERE run_id = (SELECT MAX(run_id) FROM runs)
ORDER BY revenue DESC
