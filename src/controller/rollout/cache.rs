//! The ServiceDatabase controller's cache of Tenants, for the fleet step: each PerTenant
//! reconcile reads its namespace's Tenants from memory instead of listing them (a list of
//! thousands per reconcile, and a reconcile per counted change during a rollout, would be
//! quadratic). The cache is fed by the very watch that triggers those reconciles, so a
//! reconcile that a Tenant's change started always sees that change.

use std::sync::{Arc, RwLock};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use kube::ResourceExt;
use kube::runtime::reflector::{self, Store, store::Writer};

use crate::api::Tenant;

type Ready = Shared<BoxFuture<'static, bool>>;

pub struct FleetTenants {
    /// The cache of the controller running now: a leader that steps down and leads again
    /// runs its controllers anew, each time with a new watch and cache.
    current: RwLock<(Store<Tenant>, Ready)>,
}

/// A store and one shared readiness future for it: awaiting `Store::wait_until_ready` from
/// many reconciles at once woke only one of them (see the Tenant controller's
/// `caches_ready`).
fn cache() -> (Store<Tenant>, Writer<Tenant>, Ready) {
    let (store, writer) = reflector::store::<Tenant>();
    let ready = {
        let store = store.clone();
        async move { store.wait_until_ready().await.is_ok() }
            .boxed()
            .shared()
    };
    (store, writer, ready)
}

impl Default for FleetTenants {
    fn default() -> Self {
        let (store, _, ready) = cache();
        FleetTenants {
            current: RwLock::new((store, ready)),
        }
    }
}

impl FleetTenants {
    /// A new cache for the watch of a controller starting now, and its writer.
    pub fn writer(&self) -> Writer<Tenant> {
        let (store, writer, ready) = cache();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = (store, ready);
        writer
    }

    /// The Tenants of `namespace`, once the first list has arrived.
    pub async fn in_namespace(&self, namespace: &str) -> Result<Vec<Arc<Tenant>>, kube::Error> {
        let (store, ready) = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if !ready.await {
            // Its controller stopped before the first list (a leader stepping down).
            return Err(kube::Error::Service(
                "the Tenant watch stopped before its first list".into(),
            ));
        }
        Ok(store
            .state()
            .into_iter()
            .filter(|t| t.namespace().as_deref() == Some(namespace))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event;

    fn tenant(ns: &str, name: &str) -> Tenant {
        let mut t = Tenant::new(name, Default::default());
        t.metadata.namespace = Some(ns.into());
        t
    }

    /// Locks "a controller run anew gets a cache of its own": the second writer (a leader
    /// that led again) feeds what reconciles read; the first one's stopping before its
    /// first list is an error, not an empty fleet.
    #[tokio::test]
    async fn each_run_gets_its_own_cache_and_reads_wait_for_the_first_list() {
        let fleet = FleetTenants::default();
        let first = fleet.writer();
        drop(first);
        assert!(fleet.in_namespace("a").await.is_err());
        let mut second = fleet.writer();
        for e in [
            Event::Init,
            Event::InitApply(tenant("a", "t1")),
            Event::InitApply(tenant("b", "t2")),
            Event::InitDone,
        ] {
            second.apply_watcher_event(&e);
        }
        let names: Vec<String> = fleet
            .in_namespace("a")
            .await
            .unwrap()
            .iter()
            .map(|t| t.name_any())
            .collect();
        assert_eq!(names, ["t1"]);
    }
}
