//! Prometheus metrics, served on `/metrics` next to the probes. One [`Metrics`] per process,
//! shared by the controllers through the [`Context`](super::Context) and by the HTTP server.
//!
//! Names (the `servicedb_` prefix is the registry's; counters get `_total` from the library):
//! - `servicedb_reconcile_total{kind,result}`: reconciles, `result` = `success` | `error`;
//! - `servicedb_reconcile_errors_total{kind,reason}`: failed reconciles by error category;
//! - `servicedb_reconcile_duration_seconds{kind}`: histogram of reconcile time;
//! - `servicedb_migration_jobs_total{outcome}`: finished migration Jobs, `succeeded` | `failed`;
//! - `servicedb_schema_info{namespace,name,tenant,database,version} 1`: the applied schema
//!   version of each database (`tenant` empty for a Shared database);
//! - `servicedb_schema_pending{namespace,name,tenant,database}`: migrations not applied yet;
//! - `servicedb_leader`: 1 while this replica holds the leader lease (or runs without
//!   leader election), else 0.
//! - `servicedb_resyncs_overdue{kind}`: objects whose drift check is due and has no slot;
//! - `servicedb_reconciles_waiting{kind}`: reconciles triggered and waiting for a slot.
//!
//! `kind` is `DatabaseServer`, `ServiceDatabase` or `Tenant`. Per-database series go when
//! their resource goes, so a deleted database does not linger in dashboards.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::ResourceExt;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::api::{ServiceDatabase, Tenancy, Tenant};

mod labels;

use self::labels::{ErrorLabels, KindLabels, OutcomeLabels, ResultLabels, SchemaInfoLabels};
pub use self::labels::{JobOutcome, Kind, SchemaKey, SchemaState};

/// `Content-Type` of [`Metrics::encode`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Reconcile durations, in seconds: most take milliseconds, a slow server seconds.
const DURATION_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 15.0];

/// The process's metrics; cheap to clone (clones share the registry).
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    durations: Family<KindLabels, Histogram>,
    migration_jobs: Family<OutcomeLabels, Counter>,
    schema_info: Family<SchemaInfoLabels, Gauge>,
    schema_pending: Family<SchemaKey, Gauge>,
    leader: Gauge,
    resyncs_overdue: Family<KindLabels, Gauge>,
    reconciles_waiting: Family<KindLabels, Gauge>,
    /// Every database with series, and what they say: the families cannot be listed, and
    /// a version change or a deletion must remove the old series.
    schemas: Mutex<BTreeMap<SchemaKey, SchemaState>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("servicedb");
        let reconciles = Family::<ResultLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let durations = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(DURATION_BUCKETS)
        });
        let migration_jobs = Family::<OutcomeLabels, Counter>::default();
        let schema_info = Family::<SchemaInfoLabels, Gauge>::default();
        let schema_pending = Family::<SchemaKey, Gauge>::default();
        let leader = Gauge::default();
        let resyncs_overdue = Family::<KindLabels, Gauge>::default();
        let reconciles_waiting = Family::<KindLabels, Gauge>::default();
        registry.register(
            "reconcile",
            "Reconciles by kind and result (success or error)",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles by kind and error category",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took, by kind",
            durations.clone(),
        );
        registry.register(
            "migration_jobs",
            "Finished migration Jobs by outcome (succeeded or failed)",
            migration_jobs.clone(),
        );
        registry.register(
            "schema_info",
            "The applied schema version of each database (always 1)",
            schema_info.clone(),
        );
        registry.register(
            "schema_pending",
            "Migrations of each database not applied yet",
            schema_pending.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease and runs the controllers",
            leader.clone(),
        );
        registry.register(
            "resyncs_overdue",
            "Objects whose periodic drift check is due and waits for a free reconcile slot \
             (above zero for long: more objects than the resync period and concurrency allow)",
            resyncs_overdue.clone(),
        );
        registry.register(
            "reconciles_waiting",
            "Reconciles triggered and waiting for a free slot \
             (above zero for long: more work than the concurrency allows)",
            reconciles_waiting.clone(),
        );
        Metrics(Arc::new(Inner {
            registry,
            reconciles,
            errors,
            durations,
            migration_jobs,
            schema_info,
            schema_pending,
            leader,
            resyncs_overdue,
            reconciles_waiting,
            schemas: Mutex::new(BTreeMap::new()),
        }))
    }

    /// Counts one reconcile of `kind` that took `elapsed`; `error` is the failure's
    /// category (PascalCase, e.g. `ConnectionFailed`), None for a success.
    pub fn reconciled(&self, kind: Kind, elapsed: Duration, error: Option<&str>) {
        let kind = kind.as_str();
        let result = if error.is_some() { "error" } else { "success" };
        self.0
            .reconciles
            .get_or_create(&ResultLabels { kind, result })
            .inc();
        if let Some(reason) = error {
            self.0
                .errors
                .get_or_create(&ErrorLabels {
                    kind,
                    reason: reason.to_string(),
                })
                .inc();
        }
        self.0
            .durations
            .get_or_create(&KindLabels { kind })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a migration Job that finished (call once per Job, when its outcome is first
    /// seen).
    pub fn migration_job_finished(&self, outcome: JobOutcome) {
        self.0
            .migration_jobs
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// How many objects of `kind` wait for their periodic check (see `paced_resync`).
    pub fn set_resyncs_overdue(&self, kind: Kind, overdue: usize) {
        let kind = kind.as_str();
        let overdue = i64::try_from(overdue).unwrap_or(i64::MAX);
        self.0
            .resyncs_overdue
            .get_or_create(&KindLabels { kind })
            .set(overdue);
    }

    pub fn set_reconciles_waiting(&self, kind: Kind, waiting: usize) {
        let waiting = i64::try_from(waiting).unwrap_or(i64::MAX);
        self.0
            .reconciles_waiting
            .get_or_create(&KindLabels {
                kind: kind.as_str(),
            })
            .set(waiting);
    }

    pub fn set_leader(&self, leading: bool) {
        self.0.leader.set(i64::from(leading));
    }

    /// Sets one database's schema series, replacing what they said before (an old
    /// version's `schema_info` series goes). Nothing known: the series go.
    pub fn set_schema(&self, key: SchemaKey, state: SchemaState) {
        let mut schemas = self.schemas();
        self.clear_series(&key, schemas.get(&key));
        if let Some(version) = &state.version {
            self.0
                .schema_info
                .get_or_create(&SchemaInfoLabels::new(&key, version))
                .set(1);
        }
        if let Some(pending) = state.pending {
            self.0.schema_pending.get_or_create(&key).set(pending);
        }
        if state == SchemaState::default() {
            schemas.remove(&key);
        } else {
            schemas.insert(key, state);
        }
    }

    /// Removes the series of every database of the ServiceDatabase `namespace/name`,
    /// its tenants' included (call when the resource is deleted or found missing).
    pub fn remove_service_database(&self, namespace: &str, name: &str) {
        self.remove_where(|k| k.namespace == namespace && k.name == name);
    }

    /// Removes the series of every database of the Tenant `namespace/tenant`.
    pub fn remove_tenant(&self, namespace: &str, tenant: &str) {
        self.remove_where(|k| k.namespace == namespace && k.tenant == tenant);
    }

    /// Sets the series of a ServiceDatabase's own database from its status (a PerTenant
    /// template has none: its tenants' come from [`Metrics::observe_tenant`]). A resource
    /// being deleted loses its series.
    pub fn observe_service_database(&self, sdb: &ServiceDatabase) {
        let (namespace, name) = (sdb.namespace().unwrap_or_default(), sdb.name_any());
        if sdb.metadata.deletion_timestamp.is_some() {
            self.remove_service_database(&namespace, &name);
            return;
        }
        let current = match sdb.spec.tenancy {
            Tenancy::Shared => shared_schema(sdb),
            Tenancy::PerTenant => None,
        };
        let key_of_current = current.as_ref().map(|(k, _)| k.clone());
        self.remove_where(|k| {
            k.namespace == namespace
                && k.name == name
                && k.tenant.is_empty()
                && Some(k) != key_of_current.as_ref()
        });
        if let Some((key, state)) = current {
            self.set_schema(key, state);
        }
    }

    /// Sets the series of a Tenant's databases from its status (one per service); a
    /// Tenant being deleted loses its series.
    pub fn observe_tenant(&self, tenant: &Tenant) {
        let (namespace, name) = (tenant.namespace().unwrap_or_default(), tenant.name_any());
        if tenant.metadata.deletion_timestamp.is_some() {
            self.remove_tenant(&namespace, &name);
            return;
        }
        let current: BTreeMap<SchemaKey, SchemaState> = tenant
            .status
            .iter()
            .flat_map(|s| &s.databases)
            .filter_map(|db| {
                let key = SchemaKey {
                    namespace: namespace.clone(),
                    name: db.service.clone(),
                    tenant: name.clone(),
                    database: db.database.clone()?,
                };
                let state = SchemaState {
                    version: db.applied_version.clone(),
                    pending: None,
                };
                Some((key, state))
            })
            .collect();
        self.remove_where(|k| {
            k.namespace == namespace && k.tenant == name && !current.contains_key(k)
        });
        for (key, state) in current {
            self.set_schema(key, state);
        }
    }

    /// The metrics in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.0.registry);
        out
    }

    fn schemas(&self) -> std::sync::MutexGuard<'_, BTreeMap<SchemaKey, SchemaState>> {
        self.0.schemas.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn clear_series(&self, key: &SchemaKey, state: Option<&SchemaState>) {
        if let Some(version) = state.and_then(|s| s.version.as_deref()) {
            self.0
                .schema_info
                .remove(&SchemaInfoLabels::new(key, version));
        }
        self.0.schema_pending.remove(key);
    }

    fn remove_where(&self, gone: impl Fn(&SchemaKey) -> bool) {
        let mut schemas = self.schemas();
        let keys: Vec<SchemaKey> = schemas.keys().filter(|k| gone(k)).cloned().collect();
        for key in keys {
            let state = schemas.remove(&key);
            self.clear_series(&key, state.as_ref());
        }
    }
}

/// A Shared ServiceDatabase's schema series, once its status names the database. Without
/// `migrations` nothing is ever pending; with them, pending is what the status says.
fn shared_schema(sdb: &ServiceDatabase) -> Option<(SchemaKey, SchemaState)> {
    let status = sdb.status.as_ref()?;
    let key = SchemaKey {
        namespace: sdb.namespace().unwrap_or_default(),
        name: sdb.name_any(),
        tenant: String::new(),
        database: status.database.clone()?,
    };
    let schema = status.schema.as_ref();
    let pending = match schema.and_then(|s| s.pending) {
        Some(n) => Some(i64::from(n)),
        None if sdb.spec.migrations.is_none() => Some(0),
        None => None,
    };
    let state = SchemaState {
        version: schema.and_then(|s| s.applied_version.clone()),
        pending,
    };
    Some((key, state))
}

/// The `reason` label of a finalizer step's error: the step's own (`inner`), or where the
/// finalizer itself failed.
pub fn finalizer_reason<E: std::error::Error + 'static>(
    e: &kube::runtime::finalizer::Error<E>,
    inner: impl Fn(&E) -> &'static str,
) -> &'static str {
    use kube::runtime::finalizer::Error;
    match e {
        Error::ApplyFailed(e) | Error::CleanupFailed(e) => inner(e),
        Error::AddFinalizer(_) | Error::RemoveFinalizer(_) => "KubernetesApi",
        Error::UnnamedObject | Error::InvalidFinalizer => "InvalidObject",
    }
}

#[cfg(test)]
mod tests;
