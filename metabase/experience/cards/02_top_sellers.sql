-- Sellers with more than 100,000 BRL of revenue (item prices, without freight) on
-- delivered orders, over the whole data.
SELECT i.seller_id AS "Seller",
       s.city AS "City",
       s.state AS "State",
       COUNT(DISTINCT i.order_id) AS "Delivered orders",
       COUNT(*) AS "Items sold",
       SUM(i.price) AS "Revenue (BRL)"
FROM olist_order_items i
JOIN olist_orders o ON o.order_id = i.order_id
LEFT JOIN olist_sellers s ON s.seller_id = i.seller_id
WHERE o.status = 'delivered'
GROUP BY i.seller_id, s.city, s.state
HAVING SUM(i.price) > 100000
ORDER BY SUM(i.price) DESC, i.seller_id
