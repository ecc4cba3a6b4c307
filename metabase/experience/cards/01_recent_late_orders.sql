-- Recent orders (purchased less than 3 months = 90 days before the latest order in the
-- data), not cancelled, delivered at least 3 days after the estimated delivery date.
SELECT o.order_id AS "Order",
       o.customer_unique_id AS "Customer",
       o.customer_state AS "State",
       o.purchase_date AS "Purchased",
       o.estimated_date AS "Estimated delivery",
       o.delivered_date AS "Delivered",
       o.days_late AS "Days late",
       o.status AS "Status",
       o.review_score AS "Review score"
FROM olist_orders o
WHERE o.status <> 'canceled'
  AND o.delivered_day IS NOT NULL
  AND o.days_late >= 3
  AND o.purchase_day > (SELECT MAX(purchase_day) FROM olist_orders) - 90
ORDER BY o.days_late DESC, o.purchase_day DESC, o.order_id
