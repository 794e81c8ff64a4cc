CREATE TABLE participations (
    workout_id BIGINT  NOT NULL REFERENCES workouts (id) ON DELETE CASCADE,
    user_id    BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    score      NUMERIC NOT NULL,
    PRIMARY KEY (workout_id, user_id)
);

CREATE TABLE leaderboards (
    id        BIGSERIAL PRIMARY KEY,
    name      TEXT NOT NULL UNIQUE,
    period    TEXT NOT NULL CHECK (period IN ('week', 'month', 'all-time'))
);
