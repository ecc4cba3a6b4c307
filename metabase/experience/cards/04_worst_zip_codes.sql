-- The 5 customer zip-code prefixes with more than 30 reviews and the worst average review
-- score over the last 12 months (reviews created at most 365 days before the latest
-- purchase in the data, or later). Reviews of every order status count.
SELECT r.customer_zip_prefix AS "Zip code prefix",
       MIN(r.customer_state) AS "State",
       COUNT(*) AS "Reviews",
       AVG(CAST(r.review_score AS FLOAT)) AS "Average review score",
       100.0 * SUM(CASE WHEN r.review_score <= 2 THEN 1 ELSE 0 END) / COUNT(*)
         AS "1-2 star reviews (%)"
FROM olist_reviews r
WHERE r.created_day > (SELECT MAX(purchase_day) FROM olist_orders) - 365
  AND r.customer_zip_prefix IS NOT NULL
  AND r.customer_zip_prefix <> ''
GROUP BY r.customer_zip_prefix
HAVING COUNT(*) > 30
ORDER BY AVG(CAST(r.review_score AS FLOAT)), r.customer_zip_prefix
LIMIT 5
