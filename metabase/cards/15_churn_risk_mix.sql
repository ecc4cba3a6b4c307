-- Churn risk of the latest run's customers: the chance of no purchase in the next 90 days,
-- banded Low (< 1/3), Medium, High (>= 2/3), for the Insiders and for everyone else.
SELECT
    churn_band AS "Churn risk",
    SUM(CASE WHEN is_insider THEN 1 ELSE 0 END) AS "Insiders",
    SUM(CASE WHEN is_insider THEN 0 ELSE 1 END) AS "Other customers"
FROM customer_segments
WHERE run_id = (SELECT MAX(run_id) FROM runs)
    AND churn_band IS NOT NULL
GROUP BY churn_band
ORDER BY CASE churn_band WHEN 'Low' THEN 1 WHEN 'Medium' THEN 2 ELSE 3 END
