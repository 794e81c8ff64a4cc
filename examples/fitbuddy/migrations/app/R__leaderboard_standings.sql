CREATE OR REPLACE VIEW leaderboard_standings AS
SELECT u.id AS user_id, u.display_name, sum(p.score) AS total_score,
       rank() OVER (ORDER BY sum(p.score) DESC) AS position
FROM users u
JOIN participations p ON p.user_id = u.id
GROUP BY u.id, u.display_name;
