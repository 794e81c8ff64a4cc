//! Which DatabaseServer a tenant's database goes on. A placed database never moves: its
//! server is read back from the Tenant's status (or, if that was lost, from its Secret or
//! the servers' catalogs: `locate`). A new one goes to the Tenant's pin, else the ServiceDatabase's, else
//! the least-loaded Ready server under its maxDatabases (`service::placement`).
//!
//! Loads come from memory: each server's `status.databaseCount` (refreshed on its resync),
//! at least the tenant and Shared databases the caches place there, plus the placements
//! this process made that no cached status shows yet. Never a catalog listing per tenant.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use kube::ResourceExt;

use crate::api::{DatabaseServer, ServiceDatabase, Tenancy, Tenant};
use crate::service::placement::{Candidate, PlacementError, place};

use crate::controller::database_server::spec::is_ours;
pub use crate::controller::database_server::status::server_ready;

/// One tenant database: (namespace, tenant, service).
pub type Key = (String, String, String);

/// The server the Tenant's status records for `service`, if any.
pub fn recorded(tenant: &Tenant, service: &str) -> Option<String> {
    tenant
        .status
        .as_ref()?
        .databases
        .iter()
        .find(|d| d.service == service)?
        .server
        .clone()
}

/// Databases per server that the cached statuses show. Pure.
pub fn cached_counts(
    tenants: &[Arc<Tenant>],
    sdbs: &[Arc<ServiceDatabase>],
) -> BTreeMap<String, u32> {
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    let tenant_servers = tenants
        .iter()
        .filter_map(|t| t.status.as_ref())
        .flat_map(|s| s.databases.iter().filter_map(|d| d.server.clone()));
    let shared_servers = sdbs
        .iter()
        .filter(|s| s.spec.tenancy == Tenancy::Shared)
        .filter_map(|s| s.status.as_ref().and_then(|st| st.server.clone()));
    for server in tenant_servers.chain(shared_servers) {
        *counts.entry(server).or_default() += 1;
    }
    counts
}

/// The candidates: Ready servers with their loads. Pure.
pub fn candidates(
    servers: &[Arc<DatabaseServer>],
    cached: &BTreeMap<String, u32>,
    in_flight: &BTreeMap<String, u32>,
) -> Vec<Candidate> {
    servers
        .iter()
        .filter(|s| server_ready(s))
        .map(|s| {
            let name = s.name_any();
            let counted = s
                .status
                .as_ref()
                .and_then(|st| st.database_count)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0);
            let known = cached.get(&name).copied().unwrap_or(0);
            let pending = in_flight.get(&name).copied().unwrap_or(0);
            Candidate {
                databases: counted.max(known).saturating_add(pending),
                max_databases: s.spec.max_databases.and_then(|m| u32::try_from(m).ok()),
                holds: false,
                name,
            }
        })
        .collect()
}

/// The servers this installation places new databases on ([`is_ours`]): another
/// installation's servers are Ready by its report, but a database placed there could never
/// be provisioned by this one, and placement never moves it back. Pure.
pub fn ours(
    servers: Vec<Arc<DatabaseServer>>,
    operator_namespace: &str,
) -> Vec<Arc<DatabaseServer>> {
    servers
        .into_iter()
        .filter(|s| is_ours(s, operator_namespace))
        .collect()
}

/// Placements made by this process, until the cached Tenant status shows them.
#[derive(Default)]
pub struct Placer {
    in_flight: Mutex<HashMap<Key, String>>,
}

impl Placer {
    /// Where this process placed the database, if it did and has not forgotten.
    pub fn in_flight(&self, key: &Key) -> Option<String> {
        self.lock().get(key).cloned()
    }

    /// Forgets a placement (the database was offboarded or its Tenant deleted).
    pub fn forget(&self, key: &Key) {
        self.lock().remove(key);
    }

    /// Places a new database: one placement at a time, so concurrent tenants see each
    /// other's choices.
    pub fn place(
        &self,
        key: &Key,
        pin: Option<&str>,
        servers: &[Arc<DatabaseServer>],
        tenants: &[Arc<Tenant>],
        sdbs: &[Arc<ServiceDatabase>],
    ) -> Result<String, PlacementError> {
        let mut in_flight = self.lock();
        if let Some(server) = in_flight.get(key) {
            return Ok(server.clone());
        }
        // Placements the cache now shows are counted there.
        let shown: HashMap<(String, String), &Arc<Tenant>> = tenants
            .iter()
            .map(|t| ((t.namespace().unwrap_or_default(), t.name_any()), t))
            .collect();
        in_flight.retain(|(ns, tenant, service), _| {
            shown
                .get(&(ns.clone(), tenant.clone()))
                .is_none_or(|t| recorded(t, service).is_none())
        });
        let mut pending: BTreeMap<String, u32> = BTreeMap::new();
        for server in in_flight.values() {
            *pending.entry(server.clone()).or_default() += 1;
        }
        let cached = cached_counts(tenants, sdbs);
        let candidates = candidates(servers, &cached, &pending);
        // A pinned server that is not Ready is still where the database goes: it waits.
        if let Some(pin) = pin
            && !candidates.iter().any(|c| c.name == pin)
            && servers.iter().any(|s| s.name_any() == pin)
        {
            return Ok(self.remember(&mut in_flight, key, pin));
        }
        let chosen = place(pin, &candidates)?.to_string();
        Ok(self.remember(&mut in_flight, key, &chosen))
    }

    fn remember(&self, in_flight: &mut HashMap<Key, String>, key: &Key, server: &str) -> String {
        in_flight.insert(key.clone(), server.to_string());
        server.to_string()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, String>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What to say when nothing could be placed.
pub fn explain(e: &PlacementError, servers: &[Arc<DatabaseServer>]) -> String {
    match e {
        PlacementError::NoServers if !servers.is_empty() => format!(
            "no DatabaseServer is Ready to place the database on ({} exist: {}); waiting",
            servers.len(),
            servers
                .iter()
                .map(|s| s.name_any())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        PlacementError::NoServers => "no DatabaseServer of this installation (admin Secret in \
                                      the operator's namespace) exists to place the database on; \
                                      create one"
            .to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
