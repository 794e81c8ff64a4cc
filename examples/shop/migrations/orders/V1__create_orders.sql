CREATE TABLE orders (
    id          BIGSERIAL PRIMARY KEY,
    customer_id BIGINT      NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE order_lines (
    order_id   BIGINT  NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no    INT     NOT NULL,
    sku        TEXT    NOT NULL,
    quantity   INT     NOT NULL CHECK (quantity > 0),
    unit_cents BIGINT  NOT NULL CHECK (unit_cents >= 0),
    PRIMARY KEY (order_id, line_no)
);
