-- One application database per affiliate (gym): its members, workouts and exercises.
CREATE TABLE users (
    id           BIGSERIAL PRIMARY KEY,
    email        TEXT        NOT NULL UNIQUE,
    display_name TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE exercises (
    id       BIGSERIAL PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    category TEXT NOT NULL CHECK (category IN ('strength', 'cardio', 'mobility'))
);

CREATE TABLE workouts (
    id           BIGSERIAL PRIMARY KEY,
    title        TEXT        NOT NULL,
    scheduled_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE workout_exercises (
    workout_id  BIGINT NOT NULL REFERENCES workouts (id) ON DELETE CASCADE,
    exercise_id BIGINT NOT NULL REFERENCES exercises (id),
    position    INT    NOT NULL,
    reps        INT,
    PRIMARY KEY (workout_id, position)
);
