CREATE TABLE command_center_users (
    id         BIGSERIAL PRIMARY KEY,
    email      TEXT        NOT NULL UNIQUE,
    role       TEXT        NOT NULL CHECK (role IN ('admin', 'support', 'viewer')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE affiliate_managers (
    affiliate_id BIGINT NOT NULL REFERENCES affiliates (id) ON DELETE CASCADE,
    user_id      BIGINT NOT NULL REFERENCES command_center_users (id) ON DELETE CASCADE,
    PRIMARY KEY (affiliate_id, user_id)
);
