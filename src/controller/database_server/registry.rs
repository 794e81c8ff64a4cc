//! Connected servers, shared by both controllers, so a ServiceDatabase reconcile reuses the
//! DatabaseServer's admin sessions instead of logging in each time. An entry is good for
//! one generation of the DatabaseServer and one version of its Secrets; a change of either,
//! or a dropped connection, connects afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::provision::server::Server;

/// What a connection was made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerKey {
    pub generation: Option<i64>,
    pub admin_secret_version: Option<String>,
    pub ca_secret_version: Option<String>,
}

#[derive(Default)]
pub struct ServerRegistry {
    entries: Mutex<HashMap<String, (ServerKey, Arc<Server>)>>,
}

impl ServerRegistry {
    /// The server connected from exactly `key`, if its sessions are still open.
    pub fn get(&self, name: &str, key: &ServerKey) -> Option<Arc<Server>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (k, server) = entries.get(name)?;
        let open = !server.maintenance.is_closed() && !server.catalog.is_closed();
        (k == key && open).then(|| server.clone())
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
