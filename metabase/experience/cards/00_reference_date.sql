-- The day every card of this dashboard counts back from: the latest order in the data
-- (the public Olist data ends in October 2018), not today's date.
SELECT MAX(purchase_date) AS "Latest order in the data"
FROM olist_orders
