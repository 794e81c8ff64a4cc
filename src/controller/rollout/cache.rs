//! The ServiceDatabase controller's cache of Tenants, for the fleet step: each PerTenant
//! reconcile reads its namespace's Tenants from memory instead of listing them (a list of
//! thousands per reconcile, and a reconcile per counted change during a rollout, would be
//! quadratic). The cache is fed by the very watch that triggers those reconciles, so a
//! reconcile that a Tenant's change started always sees that change.

use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use kube::ResourceExt;
use kube::runtime::reflector::{self, Store, store::Writer};

use crate::api::Tenant;

pub struct FleetTenants {
    store: Store<Tenant>,
    writer: Mutex<Option<Writer<Tenant>>>,
    /// One shared future: awaiting `Store::wait_until_ready` from many reconciles at once
    /// woke only one of them (see the Tenant controller's `caches_ready`).
    ready: Shared<BoxFuture<'static, ()>>,
}

impl Default for FleetTenants {
    fn default() -> Self {
        let (store, writer) = reflector::store::<Tenant>();
        let ready = {
            let store = store.clone();
            async move {
                let _ = store.wait_until_ready().await;
            }
            .boxed()
            .shared()
        };
        FleetTenants {
            store,
            writer: Mutex::new(Some(writer)),
            ready,
        }
    }
}

impl FleetTenants {
    /// The writer for the watch that fills the cache; there is one.
    pub fn take_writer(&self) -> Writer<Tenant> {
        self.writer
            .lock()
            .expect("fleet cache lock")
            .take()
            .expect("the fleet's Tenant cache has one writer")
    }

    /// The Tenants of `namespace`, once the first list has arrived.
    pub async fn in_namespace(&self, namespace: &str) -> Vec<Arc<Tenant>> {
        self.ready.clone().await;
        self.store
            .state()
            .into_iter()
            .filter(|t| t.namespace().as_deref() == Some(namespace))
            .collect()
    }
}
