-- Local-only demo data: never runs on a server whose environment is not `local`.
INSERT INTO users (email, display_name) VALUES
    ('ana@example.com', 'Ana'),
    ('bo@example.com', 'Bo'),
    ('chen@example.com', 'Chen');

INSERT INTO exercises (name, category) VALUES
    ('Back squat', 'strength'),
    ('Row 500m', 'cardio'),
    ('Hip opener', 'mobility');

INSERT INTO workouts (title, scheduled_at) VALUES ('Monday WOD', now());

INSERT INTO participations (workout_id, user_id, score)
SELECT w.id, u.id, 100 - u.id FROM workouts w CROSS JOIN users u;
