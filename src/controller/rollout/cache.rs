//! The ServiceDatabase controller's caches for the fleet step, its Tenants and their
//! migration Jobs: each PerTenant reconcile reads its namespace's objects from memory
//! instead of listing them (a list of thousands per reconcile, and a reconcile per counted
//! change during a rollout, would be quadratic). Each cache is fed by the very watch that
//! triggers those reconciles, so a reconcile that a change started always sees that change.

use std::sync::{Arc, RwLock};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use kube::ResourceExt;
use kube::runtime::reflector::{self, Store, store::Writer};

use crate::api::Tenant;

type Ready = Shared<BoxFuture<'static, bool>>;

/// The Tenants, as the fleet step reads them.
pub type FleetTenants = FleetCache<Tenant>;

/// Objects of one kind, by namespace, for the fleet step.
pub struct FleetCache<K: kube::Resource<DynamicType = ()> + Clone + 'static> {
    /// The cache of the controller running now: a leader that steps down and leads again
    /// runs its controllers anew, each time with a new watch and cache.
    current: RwLock<(Store<K>, Ready)>,
}

/// A store and one shared readiness future for it: awaiting `Store::wait_until_ready` from
/// many reconciles at once woke only one of them (see the Tenant controller's
/// `caches_ready`).
fn cache<K>() -> (Store<K>, Writer<K>, Ready)
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let ready = {
        let store = store.clone();
        async move { store.wait_until_ready().await.is_ok() }
            .boxed()
            .shared()
    };
    (store, writer, ready)
}

impl<K> Default for FleetCache<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        let (store, _, ready) = cache();
        FleetCache {
            current: RwLock::new((store, ready)),
        }
    }
}

impl<K> FleetCache<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    /// A new cache for the watch of a controller starting now, and its writer.
    pub fn writer(&self) -> Writer<K> {
        let (store, writer, ready) = cache();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = (store, ready);
        writer
    }

    /// The objects of `namespace`, once the first list has arrived.
    pub async fn in_namespace(&self, namespace: &str) -> Result<Vec<Arc<K>>, kube::Error> {
        Ok(self
            .store()
            .await?
            .state()
            .into_iter()
            .filter(|t| t.namespace().as_deref() == Some(namespace))
            .collect())
    }

    /// The cache, once the first list has arrived.
    pub async fn store(&self) -> Result<Store<K>, kube::Error> {
        let (store, ready) = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if !ready.await {
            // Its controller stopped before the first list (a leader stepping down).
            return Err(kube::Error::Service(
                format!("the {} watch stopped before its first list", K::kind(&())).into(),
            ));
        }
        Ok(store)
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
