CREATE TABLE payments.refunds (
    id           BIGSERIAL PRIMARY KEY,
    payment_id   BIGINT      NOT NULL REFERENCES public.payments (id),
    amount_cents BIGINT      NOT NULL CHECK (amount_cents > 0),
    reason       TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
