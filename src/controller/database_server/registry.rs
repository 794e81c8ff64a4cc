//! Connected servers, shared by both controllers, so a ServiceDatabase reconcile reuses the
//! DatabaseServer's admin sessions instead of logging in each time. An entry is good for
//! one generation of the DatabaseServer and one version of its Secrets; a change of either,
//! or a dropped connection, connects afresh.
//!
//! It also bounds how many databases of one server are provisioned at once (DESIGN: the
//! same bound as `dev up`, default 8), so a resync of thousands of resources never opens
//! thousands of sessions on one server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::provision::server::Server;

/// What a connection was made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerKey {
    pub generation: Option<i64>,
    pub admin_secret_version: Option<String>,
    pub ca_secret_version: Option<String>,
}

/// Databases of one server provisioned at once, unless told otherwise.
pub const DEFAULT_PER_SERVER: usize = 8;

pub struct ServerRegistry {
    entries: Mutex<HashMap<String, (ServerKey, Arc<Server>)>>,
    /// Per server name; kept across reconnects so the bound holds while a server changes.
    bounds: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Per server name: one connect at a time, so reconciles that find no connection (at
    /// start, after a change) wait for one set of pools instead of each opening their own.
    connecting: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    per_server: usize,
}

impl Default for ServerRegistry {
    fn default() -> Self {
        ServerRegistry::with_bound(DEFAULT_PER_SERVER)
    }
}

impl ServerRegistry {
    pub fn with_bound(per_server: usize) -> Self {
        ServerRegistry {
            entries: Mutex::default(),
            bounds: Mutex::default(),
            connecting: Mutex::default(),
            per_server: per_server.max(1),
        }
    }

    /// Waits for a turn to work on one database of the server `name`; the turn ends when
    /// the permit is dropped.
    pub async fn turn(&self, name: &str) -> OwnedSemaphorePermit {
        let semaphore = self
            .bounds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_server)))
            .clone();
        // Queueing is not acting: the reconcile's bound does not count it (see `budget`).
        let _queued = crate::budget::paused();
        semaphore
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// The right to connect to the server `name` (one at a time); check [`Self::get`]
    /// again once it is held.
    pub async fn connecting(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .connecting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// The server connected from exactly `key` (its pools replace sessions that close).
    pub fn get(&self, name: &str, key: &ServerKey) -> Option<Arc<Server>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (k, server) = entries.get(name)?;
        (k == key).then(|| server.clone())
    }

    pub fn insert(&self, name: &str, key: ServerKey, server: Arc<Server>) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), (key, server));
    }

    /// Forgets a server (deleted, or its login stopped working).
    pub fn remove(&self, name: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Locks the per-server bound: the ninth turn on one server waits until one of eight
    /// ends, while another server is not held up.
    #[tokio::test]
    async fn turns_are_bounded_per_server() {
        let registry = ServerRegistry::default();
        let mut held = Vec::new();
        for _ in 0..DEFAULT_PER_SERVER {
            held.push(registry.turn("a").await);
        }
        let wait = Duration::from_millis(50);
        assert!(
            tokio::time::timeout(wait, registry.turn("a"))
                .await
                .is_err()
        );
        assert!(tokio::time::timeout(wait, registry.turn("b")).await.is_ok());
        held.pop();
        assert!(tokio::time::timeout(wait, registry.turn("a")).await.is_ok());
    }

    /// Locks "queueing for a turn is not acting": a reconcile bounded to 200 ms that waits
    /// 600 ms for a turn, then works briefly, is not cut (a busy server is no livelock).
    #[tokio::test]
    async fn waiting_for_a_turn_does_not_count_against_the_reconcile_bound() {
        let registry = std::sync::Arc::new(ServerRegistry::with_bound(1));
        let held = registry.turn("a").await;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            drop(held);
        });
        let out = crate::budget::bounded(Duration::from_millis(200), async {
            let _turn = registry.turn("a").await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        })
        .await;
        assert!(out.is_some());
    }
}
