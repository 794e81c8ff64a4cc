-- Built without locking writers: runs outside a transaction, detected automatically.
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_customer_idx ON orders (customer_id);
