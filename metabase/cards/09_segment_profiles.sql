-- Who is in each segment of the latest run and what marketing should do about them.
-- Figures are averages per customer (the persona text quotes the typical, median, customer).
SELECT
    persona AS "Segment",
    description AS "Who they are",
    action AS "Recommended action",
    customers AS "Customers",
    100 * share AS "Share (%)",
    insiders AS "Insiders",
    avg_recency_days AS "Average days since last order",
    avg_frequency AS "Average orders",
    avg_monetary AS "Average spend",
    avg_ticket AS "Average ticket",
    100 * avg_return_rate AS "Returns (%)",
    avg_expected_value AS "Average expected value"
FROM segment_profiles
WHERE run_id = (SELECT MAX(run_id) FROM runs)
ORDER BY avg_expected_value DESC
