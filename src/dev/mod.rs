//! `servicedb dev`: the operator's core without a cluster. Manifests in, an embedded (or
//! declared) PostgreSQL provisioned and migrated, Secrets as `.env` files.
pub mod env_store;
pub mod local_server;
pub mod lock;
pub mod manifests;
pub mod prune;
pub mod record;
pub mod servers;
pub mod status;
mod unit;
mod validate;

use std::path::{Path, PathBuf};

use futures::StreamExt;

use crate::api::{ServiceDatabase, Tenancy};
use crate::migrate::engine::MigrateError;
use env_store::EnvFileStore;
use local_server::{LocalError, LocalServer};
use lock::LockError;
use manifests::ManifestError;
use record::Record;
use servers::{ServerError, Servers};
pub use status::{ServerLine, Status, status};
use unit::{TenantUnit, up_one};
use validate::{describe, validate};

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{0}")]
    Record(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Names the manifest file and the resource.
    #[error("{file}: {resource}: {message}")]
    Resource {
        file: PathBuf,
        resource: String,
        message: String,
    },
    #[error("{file}: {resource}: migrations of database {database}: {source}")]
    Migrate {
        file: PathBuf,
        resource: String,
        database: String,
        source: Box<MigrateError>,
    },
    #[error("{0} resource(s) failed; see above")]
    Failed(usize),
}

/// One line of the table `dev up` and `dev status` print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub service: String,
    pub tenant: String,
    pub server: String,
    pub database: String,
    pub version: String,
    /// Every Secret file of the database: the app's first, then the migrator's and the
    /// extra roles'.
    pub secret_files: Vec<String>,
}

/// What `dev up` did.
#[derive(Debug, Default)]
pub struct UpReport {
    pub rows: Vec<Row>,
    /// Resources that failed, with the reason; the others were still reconciled.
    pub errors: Vec<String>,
    /// Statements executed, across all databases (0 on a second run).
    pub statements: usize,
    pub secrets_written: usize,
    pub migrations_applied: usize,
}

/// Where `dev` keeps its state: `--state-dir`, else `SERVICEDB_DEV_DIR`, else the nearest
/// `.servicedb` directory in the current directory or above (as git finds `.git`), else a new
/// `.servicedb` here.
pub fn state_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("SERVICEDB_DEV_DIR").map(PathBuf::from))
    {
        return p;
    }
    let here = PathBuf::from(".servicedb");
    let Ok(cwd) = std::env::current_dir() else {
        return here;
    };
    cwd.ancestors()
        .map(|d| d.join(".servicedb"))
        .find(|d| d.is_dir())
        .unwrap_or(here)
}

/// `dev up`: reconcile every resource in the manifests; with `prune`, apply the reclaim
/// policy of what earlier runs set up and the manifests no longer declare.
pub async fn up(
    paths: &[PathBuf],
    state: &Path,
    prune: bool,
    progress: &mut dyn DevProgress,
) -> Result<UpReport, DevError> {
    let manifests = manifests::load(paths)?;
    for w in &manifests.warnings {
        progress.note(w);
    }
    let mut report = UpReport::default();
    let invalid = validate(&manifests);
    report.errors = manifests.errors.clone();
    report.errors.extend(invalid.errors.clone());
    // Placement depends on every DatabaseServer: one refused stops everything.
    if invalid.servers
        || manifests
            .rejected
            .iter()
            .any(|(k, _, _)| k == "DatabaseServer")
    {
        return Ok(report);
    }
    let _lock = lock::lock(state, "up", &mut |m| progress.note(&m)).await?;
    let old = Record::load(state).map_err(DevError::Record)?;
    let servers = Servers::connect(&manifests, state, progress).await?;
    let store = EnvFileStore::new(state.join("secrets"));

    // Shared services, then each tenant's databases.
    // (service, tenant, the tenant's pinned server)
    type Unit<'a> = (&'a manifests::Sourced<ServiceDatabase>, Option<TenantUnit>);
    let mut units: Vec<Unit> = Vec::new();
    for s in &manifests.services {
        if s.value.spec.tenancy == Tenancy::Shared
            && !invalid.contains("ServiceDatabase", &s.value.metadata)
        {
            units.push((s, None));
        }
    }
    for t in manifests
        .tenants
        .iter()
        .filter(|t| !invalid.contains("Tenant", &t.value.metadata))
    {
        let ns = t.value.metadata.namespace.clone().unwrap_or_default();
        let tname = t.value.metadata.name.clone().unwrap_or_default();
        for (i, service) in t.value.spec.services.iter().enumerate() {
            let found = manifests.services.iter().find(|s| {
                s.value.metadata.namespace.as_deref() == Some(ns.as_str())
                    && s.value.metadata.name.as_deref() == Some(service.as_str())
            });
            match found {
                // Already reported by validation.
                Some(s) if invalid.contains("ServiceDatabase", &s.value.metadata) => {}
                Some(s) if s.value.spec.tenancy == Tenancy::PerTenant => {
                    units.push((
                        s,
                        Some(TenantUnit {
                            name: tname.clone(),
                            reclaim_policy: t.value.spec.reclaim_policy,
                            pin: t.value.spec.server.clone(),
                        }),
                    ))
                }
                Some(_) => report.errors.push(format!(
                    "{}: Tenant {ns}/{tname}: spec.services[{i}]: {service:?} is a Shared ServiceDatabase; tenants use PerTenant ones",
                    t.file.display()
                )),
                None if manifests.is_rejected("ServiceDatabase", &ns, service) => {
                    report.errors.push(format!(
                        "{}: Tenant {ns}/{tname}: spec.services[{i}]: ServiceDatabase {ns}/{service} is invalid (see above); this tenant's database for it is left alone",
                        t.file.display()
                    ))
                }
                None => report.errors.push(format!(
                    "{}: Tenant {ns}/{tname}: spec.services[{i}]: no ServiceDatabase {service:?} in namespace {ns}",
                    t.file.display()
                )),
            }
        }
    }

    progress.units(units.len());
    // Several databases at once, as the controller does; each server also bounds its own
    // connections. `buffered` keeps the table in manifest order.
    let shared = std::sync::Mutex::new(&mut *progress);
    let results: Vec<_> = futures::stream::iter(units.into_iter().map(|(s, tenant)| {
        let (manifests, servers, store, shared) = (&manifests, &servers, &store, &shared);
        async move {
            let resource = match &tenant {
                Some(t) => format!("{} (tenant {})", describe(&s.value), t.name),
                None => describe(&s.value),
            };
            let mut progress = SharedProgress(shared);
            progress.step(&format!("reconciling {resource}"));
            let mut tally = unit::Tally::default();
            let result = up_one(
                manifests,
                servers,
                store,
                s,
                tenant.as_ref(),
                &mut progress,
                &mut tally,
            )
            .await;
            progress.unit_done();
            (s, resource, tally, result)
        }
    }))
    .buffered(UNITS_AT_ONCE)
    .collect()
    .await;
    let mut done_units = Vec::new();
    for (s, resource, tally, result) in results {
        report.statements += tally.statements;
        report.secrets_written += tally.secrets_written;
        report.migrations_applied += tally.migrations_applied;
        match result {
            Ok(done) => {
                report.rows.push(done.row);
                done_units.push(done.record);
            }
            Err(e) => report.errors.push(match e {
                DevError::Resource { .. } | DevError::Migrate { .. } => e.to_string(),
                other => format!("{}: {resource}: {other}", s.file.display()),
            }),
        }
    }

    let mut record = Record {
        manifests: paths
            .iter()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
            .collect(),
        servers: servers::declared(&manifests),
        units: record::merge(&old, &manifests, done_units),
    };
    if prune {
        prune::prune(&mut record, &servers, &store, progress, &mut report.errors).await;
    } else {
        for u in record.orphans() {
            progress.note(&format!(
                "{} (database {} on {}) is no longer in the manifests; `servicedb dev up --prune` applies its reclaimPolicy ({})",
                u.describe(),
                u.database,
                u.server,
                u.reclaim_policy()
            ));
        }
    }
    record.save(state).map_err(DevError::Record)?;
    Ok(report)
}

/// `dev down`: stop the embedded server, keeping its data.
pub async fn down(state: &Path, progress: &mut dyn DevProgress) -> Result<bool, DevError> {
    if !state.is_dir() {
        return Ok(false);
    }
    let _lock = lock::lock(state, "down", &mut |m| progress.note(&m)).await?;
    Ok(LocalServer::down(state)?)
}

/// `dev reset`: stop the embedded server and delete the state directory (and the data
/// directory, when it lives outside it), all but its installation id: databases this
/// directory's `dev up` made on declared DatabaseServers are not touched by a reset, and
/// the next `dev up` must still own them (a new id would make them another installation's).
/// Returns what was removed.
pub async fn reset(state: &Path, progress: &mut dyn DevProgress) -> Result<Vec<PathBuf>, DevError> {
    if !state.is_dir() {
        return Ok(Vec::new());
    }
    let _held = lock::lock(state, "reset", &mut |m| progress.note(&m)).await?;
    let local = LocalServer::load(state)?;
    LocalServer::down(state)?;
    let mut removed = Vec::new();
    if let Some(outside) = local.as_ref().and_then(|l| l.outside_data(state)) {
        remove_tree(&outside)?;
        removed.push(outside);
    }
    let entries = std::fs::read_dir(state).map_err(|source| DevError::Io {
        path: state.to_path_buf(),
        source,
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| DevError::Io {
            path: state.to_path_buf(),
            source,
        })?;
        names.push(entry.file_name());
    }
    names.sort();
    for name in names {
        if name == servers::INSTALLATION_FILE {
            continue;
        }
        // The lock file is held until we return; removing it is fine (the lock is on the
        // open file), and the next command makes a new one.
        let path = state.join(&name);
        remove_path(&path)?;
        removed.push(path);
    }
    Ok(removed)
}

/// Removes a file or a directory tree, whichever `path` is; gone already is fine.
fn remove_path(path: &Path) -> Result<(), DevError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => remove_tree(path),
        Ok(_) => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(DevError::Io {
                path: path.to_path_buf(),
                source: e,
            }),
            _ => Ok(()),
        },
        Err(_) => Ok(()),
    }
}

fn remove_tree(path: &Path) -> Result<(), DevError> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(DevError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Databases `dev up` reconciles at once: the same bound the controller and each server use.
const UNITS_AT_ONCE: usize = crate::provision::server::DEFAULT_DATABASE_CONNECTIONS;

/// One progress shared by the units running at once.
struct SharedProgress<'a, 'p, 'o>(&'a std::sync::Mutex<&'p mut (dyn DevProgress + 'o)>);

impl DevProgress for SharedProgress<'_, '_, '_> {
    fn step(&mut self, message: &str) {
        self.0.lock().expect("progress lock").step(message)
    }
    fn note(&mut self, message: &str) {
        self.0.lock().expect("progress lock").note(message)
    }
    fn units(&mut self, total: usize) {
        self.0.lock().expect("progress lock").units(total)
    }
    fn unit_done(&mut self) {
        self.0.lock().expect("progress lock").unit_done()
    }
}

/// How `dev` reports progress, as it happens: a spinner or bar on a terminal, lines otherwise.
pub trait DevProgress: Send {
    /// What is being done now (replaced by the next step on a terminal).
    fn step(&mut self, message: &str);
    /// Something the user should see and keep (a server started, a fallback taken).
    fn note(&mut self, message: &str);
    /// How many databases are about to be reconciled.
    fn units(&mut self, _total: usize) {}
    /// One of them is done.
    fn unit_done(&mut self) {}
}
