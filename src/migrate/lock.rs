//! Flyway's advisory lock, taken the way that cannot deadlock `CREATE INDEX CONCURRENTLY`.
//!
//! A runner that waits inside a transaction (`BEGIN; SELECT pg_advisory_xact_lock(..)`) holds a
//! snapshot all the while, and the runner holding the lock may be building an index
//! concurrently, which waits for every older snapshot to go away: both wait forever. So the
//! waiter polls `pg_try_advisory_lock` outside any transaction, as Flyway does, and the winner
//! keeps the session-level lock for its whole run. Session and transaction advisory locks on
//! one key conflict, so Flyway runners (either lock mode) and servicedb still exclude each other.

use std::time::Duration;

use tokio_postgres::{Client, SimpleQueryMessage};

/// First pause between attempts; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_millis(250);

/// The pause after `attempt` failed attempts (0-based): short at first, so a lock held for a
/// moment costs little, then capped, so a long wait polls a few times a second.
pub fn pause(attempt: u32) -> Duration {
    FIRST_PAUSE
        .saturating_mul(1u32 << attempt.min(16))
        .min(MAX_PAUSE)
}

/// Waits until this session holds the lock `key`. Between attempts the session is idle, with
/// no transaction and no snapshot.
pub async fn acquire(client: &Client, key: i64) -> Result<(), tokio_postgres::Error> {
    // The key is a number computed by us, so it can be part of the text: one round trip each.
    let try_lock = format!("SELECT pg_try_advisory_lock({key})");
    let mut attempt = 0;
    loop {
        if first_value(&client.simple_query(&try_lock).await?).as_deref() == Some("t") {
            return Ok(());
        }
        tokio::time::sleep(pause(attempt)).await;
        attempt += 1;
    }
}

/// Releases the lock; after a failure, first ends whatever transaction the failure left open
/// (ROLLBACK outside a transaction is only a warning).
pub async fn release(
    client: &Client,
    key: i64,
    rollback_first: bool,
) -> Result<(), tokio_postgres::Error> {
    let rollback = if rollback_first { "ROLLBACK; " } else { "" };
    client
        .simple_query(&format!("{rollback}SELECT pg_advisory_unlock({key})"))
        .await
        .map(drop)
}

fn first_value(messages: &[SimpleQueryMessage]) -> Option<String> {
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_then_stay_capped() {
        assert_eq!(pause(0), Duration::from_millis(10));
        assert_eq!(pause(1), Duration::from_millis(20));
        assert_eq!(pause(4), Duration::from_millis(160));
        assert_eq!(pause(5), MAX_PAUSE);
        assert_eq!(pause(u32::MAX), MAX_PAUSE);
    }
}
