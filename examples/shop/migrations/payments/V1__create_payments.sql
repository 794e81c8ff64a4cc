CREATE TABLE payments (
    id           BIGSERIAL PRIMARY KEY,
    order_id     BIGINT      NOT NULL,
    amount_cents BIGINT      NOT NULL CHECK (amount_cents > 0),
    currency     CHAR(3)     NOT NULL DEFAULT 'EUR',
    reference    UUID        NOT NULL DEFAULT gen_random_uuid(),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
