ALTER TABLE orders ADD COLUMN status TEXT NOT NULL DEFAULT 'open'
    CHECK (status IN ('open', 'paid', 'shipped', 'cancelled'));
