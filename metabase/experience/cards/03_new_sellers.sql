-- New sellers: their first order came less than 3 months (90 days) before the latest
-- purchase in the data, and they already sold more than 30 products (items of orders
-- that were not cancelled or unavailable).
SELECT i.seller_id AS "Seller",
       s.city AS "City",
       s.state AS "State",
       MIN(o.purchase_date) AS "First order",
       (SELECT MAX(purchase_day) FROM olist_orders) - MIN(o.purchase_day)
         AS "Days on the platform",
       SUM(CASE WHEN o.status NOT IN ('canceled', 'unavailable') THEN 1 ELSE 0 END)
         AS "Products sold",
       SUM(CASE WHEN o.status NOT IN ('canceled', 'unavailable') THEN i.price ELSE 0 END)
         AS "Revenue (BRL)"
FROM olist_order_items i
JOIN olist_orders o ON o.order_id = i.order_id
LEFT JOIN olist_sellers s ON s.seller_id = i.seller_id
GROUP BY i.seller_id, s.city, s.state
HAVING MIN(o.purchase_day) > (SELECT MAX(purchase_day) FROM olist_orders) - 90
   AND SUM(CASE WHEN o.status NOT IN ('canceled', 'unavailable') THEN 1 ELSE 0 END) > 30
ORDER BY SUM(CASE WHEN o.status NOT IN ('canceled', 'unavailable') THEN 1 ELSE 0 END) DESC,
         i.seller_id
