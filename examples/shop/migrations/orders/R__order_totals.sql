CREATE OR REPLACE VIEW order_totals AS
SELECT o.id, o.customer_id, o.status, coalesce(sum(l.quantity * l.unit_cents), 0) AS total_cents
FROM orders o
LEFT JOIN order_lines l ON l.order_id = o.id
GROUP BY o.id;
