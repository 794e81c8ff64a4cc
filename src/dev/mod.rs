//! `servicedb dev`: the operator's core without a cluster. Manifests in, an embedded (or
//! declared) PostgreSQL provisioned and migrated, Secrets as `.env` files.
pub mod env_store;
pub mod local_server;
pub mod manifests;
pub mod servers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::api::validation::{
    validate_database_server, validate_service_database, validate_tenant,
};
use crate::api::{ServiceDatabase, Tenancy};
use crate::migrate::engine::{MigrateError, Progress};
use crate::migrate::plan::current_version;
use crate::migrate::version::Version;
use crate::provision::catalog;
use crate::provision::execute::{Outcome, reconcile_inside};
use crate::provision::server::Server;
use crate::service::migrations::{SEED_HISTORY_TABLE, apply_as_owner, files_from_config_maps};
use crate::service::reconcile::reconcile_unit;
use env_store::EnvFileStore;
use local_server::{LocalError, LocalServer};
use manifests::{ManifestError, Manifests};
use servers::{ServerError, Servers};

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error(transparent)]
    Server(#[from] ServerError),
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
    pub secret_file: String,
}

/// What `dev up` did.
#[derive(Debug, Default)]
pub struct UpReport {
    pub notes: Vec<String>,
    pub rows: Vec<Row>,
    /// Resources that failed, with the reason; the others were still reconciled.
    pub errors: Vec<String>,
    /// Statements executed, across all databases (0 on a second run).
    pub statements: usize,
    pub secrets_written: usize,
    pub migrations_applied: usize,
}

/// Where `dev` keeps its state: `.servicedb` unless told otherwise.
pub fn state_dir(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("SERVICEDB_DEV_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(".servicedb"))
}

/// What validation found: every error with its file and field, and which resources are
/// invalid (they are not touched; the others go ahead).
#[derive(Default)]
struct Invalid {
    errors: Vec<String>,
    /// An invalid DatabaseServer stops everything: placement depends on all of them.
    servers: bool,
    /// (kind, namespace, name) of invalid ServiceDatabases and Tenants.
    resources: Vec<(&'static str, String, String)>,
}

impl Invalid {
    fn contains(
        &self,
        kind: &str,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> bool {
        self.resources.iter().any(|(k, ns, name)| {
            *k == kind
                && Some(ns.as_str()) == meta.namespace.as_deref()
                && Some(name.as_str()) == meta.name.as_deref()
        })
    }
}

fn validate(m: &Manifests) -> Invalid {
    let mut invalid = Invalid::default();
    let mut report = |file: &Path, what: String, errs: Vec<crate::api::FieldError>| {
        for e in errs {
            invalid
                .errors
                .push(format!("{}: {what}: {e}", file.display()));
        }
    };
    let mut servers = false;
    for s in &m.servers {
        if let Err(e) = validate_database_server(&s.value) {
            servers = true;
            report(
                &s.file,
                resource_name("DatabaseServer", None, &s.value.metadata.name),
                e,
            );
        }
    }
    let mut resources = Vec::new();
    let key = |kind, meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        (
            kind,
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        )
    };
    for s in &m.services {
        if let Err(e) = validate_service_database(&s.value) {
            resources.push(key("ServiceDatabase", &s.value.metadata));
            report(&s.file, describe(&s.value), e);
        }
    }
    for t in &m.tenants {
        if let Err(e) = validate_tenant(&t.value) {
            resources.push(key("Tenant", &t.value.metadata));
            report(
                &t.file,
                resource_name(
                    "Tenant",
                    t.value.metadata.namespace.as_deref(),
                    &t.value.metadata.name,
                ),
                e,
            );
        }
    }
    invalid.servers = servers;
    invalid.resources = resources;
    invalid
}

fn resource_name(kind: &str, ns: Option<&str>, name: &Option<String>) -> String {
    match ns {
        Some(ns) => format!("{kind} {ns}/{}", name.as_deref().unwrap_or("")),
        None => format!("{kind} {}", name.as_deref().unwrap_or("")),
    }
}

fn describe(sdb: &ServiceDatabase) -> String {
    resource_name(
        "ServiceDatabase",
        sdb.metadata.namespace.as_deref(),
        &sdb.metadata.name,
    )
}

/// `dev up`: reconcile every resource in the manifests.
pub async fn up(
    paths: &[PathBuf],
    state: &Path,
    progress: &mut dyn DevProgress,
) -> Result<UpReport, DevError> {
    let manifests = manifests::load(paths)?;
    let mut report = UpReport {
        notes: manifests.warnings.clone(),
        ..Default::default()
    };
    let invalid = validate(&manifests);
    report.errors = invalid.errors.clone();
    if invalid.servers {
        return Ok(report);
    }
    let servers = Servers::connect(&manifests, state, &mut report.notes, progress).await?;
    let store = EnvFileStore::new(state.join("secrets"));

    // Shared services, then each tenant's databases.
    // (service, tenant, the tenant's pinned server)
    type Unit<'a> = (
        &'a manifests::Sourced<ServiceDatabase>,
        Option<String>,
        Option<String>,
    );
    let mut units: Vec<Unit> = Vec::new();
    for s in &manifests.services {
        if s.value.spec.tenancy == Tenancy::Shared
            && !invalid.contains("ServiceDatabase", &s.value.metadata)
        {
            units.push((s, None, None));
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
                    units.push((s, Some(tname.clone()), t.value.spec.server.clone()))
                }
                Some(_) => report.errors.push(format!(
                    "{}: Tenant {ns}/{tname}: spec.services[{i}]: {service:?} is a Shared ServiceDatabase; tenants use PerTenant ones",
                    t.file.display()
                )),
                None => report.errors.push(format!(
                    "{}: Tenant {ns}/{tname}: spec.services[{i}]: no ServiceDatabase {service:?} in namespace {ns}",
                    t.file.display()
                )),
            }
        }
    }

    for (s, tenant, pin) in units {
        let resource = match &tenant {
            Some(t) => format!("{} (tenant {t})", describe(&s.value)),
            None => describe(&s.value),
        };
        progress.step(&format!("reconciling {resource}"));
        match up_one(
            &manifests,
            &servers,
            &store,
            s,
            tenant.as_deref(),
            pin.as_deref(),
            progress,
        )
        .await
        {
            Ok(done) => {
                report.statements += done.outcome.actions.len();
                report.secrets_written += done.secrets_written;
                report.migrations_applied += done.migrations_applied;
                report.rows.push(done.row);
            }
            Err(e) => report.errors.push(match e {
                DevError::Resource { .. } | DevError::Migrate { .. } => e.to_string(),
                other => format!("{}: {resource}: {other}", s.file.display()),
            }),
        }
    }
    Ok(report)
}

/// A ConfigMap's name and data.
type ConfigMapData = (String, BTreeMap<String, String>);

struct UnitDone {
    row: Row,
    outcome: Outcome,
    secrets_written: usize,
    migrations_applied: usize,
}

async fn up_one(
    manifests: &Manifests,
    servers: &Servers,
    store: &EnvFileStore,
    s: &manifests::Sourced<ServiceDatabase>,
    tenant: Option<&str>,
    pin: Option<&str>,
    progress: &mut dyn DevProgress,
) -> Result<UnitDone, DevError> {
    let sdb = &s.value;
    let resource = describe(sdb);
    let resource_error = |message: String| DevError::Resource {
        file: s.file.clone(),
        resource: resource.clone(),
        message,
    };
    let server = servers
        .for_unit(sdb, tenant, pin)
        .await
        .map_err(|e| resource_error(e.to_string()))?;
    let ns = sdb.metadata.namespace.clone().unwrap_or_default();
    let migrations = sdb.spec.migrations.clone().unwrap_or_default();
    let config_maps = |names: &[String], field: &str| -> Result<Vec<ConfigMapData>, DevError> {
        names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                manifests
                    .config_maps
                    .get(&(ns.clone(), name.clone()))
                    .map(|cm| (name.clone(), cm.value.clone()))
                    .ok_or_else(|| {
                        resource_error(format!(
                            "{field}[{i}]: no ConfigMap {ns}/{name} in the manifests"
                        ))
                    })
            })
            .collect()
    };
    let schema_cms = config_maps(&migrations.config_maps, "spec.migrations.configMaps")?;
    let seed_cms = config_maps(
        &migrations
            .seed
            .as_ref()
            .map(|s| s.config_maps.clone())
            .unwrap_or_default(),
        "spec.migrations.seed.configMaps",
    )?;
    let files = files_from_config_maps(&schema_cms)
        .map_err(|e| resource_error(format!("spec.migrations.configMaps: {e}")))?;
    let seeds = files_from_config_maps(&seed_cms)
        .map_err(|e| resource_error(format!("spec.migrations.seed.configMaps: {e}")))?;
    let target = migrations
        .target_version
        .as_deref()
        .map(Version::parse)
        .transpose()
        .map_err(|e| resource_error(format!("spec.migrations.targetVersion: {e}")))?;

    let unit = reconcile_unit(server, store, sdb, tenant, &[])
        .await
        .map_err(|e| resource_error(e.error.to_string()))?;
    let migrate_error = |source| DevError::Migrate {
        file: s.file.clone(),
        resource: match tenant {
            Some(t) => format!("{resource} (tenant {t})"),
            None => resource.clone(),
        },
        database: unit.layout.database.clone(),
        source: Box::new(source),
    };
    let mut applied = 0;
    let mut version = None;
    if !files.files.is_empty() {
        let report = apply_as_owner(
            server,
            &unit.desired,
            files,
            "flyway_schema_history",
            target,
            &mut MigrationSteps(&mut *progress),
        )
        .await
        .map_err(migrate_error)?;
        applied += report.applied.len();
        version = report.current;
    }
    if !seeds.files.is_empty() {
        let report = apply_as_owner(
            server,
            &unit.desired,
            seeds,
            SEED_HISTORY_TABLE,
            None,
            &mut MigrationSteps(&mut *progress),
        )
        .await
        .map_err(migrate_error)?;
        applied += report.applied.len();
    }
    let mut outcome = unit.done.outcome;
    // Schemas the migrations just created get their grants now, not on the next run; with
    // nothing applied, reconcile_unit has already looked inside.
    if applied > 0 {
        reconcile_inside(server, &unit.desired, &mut outcome)
            .await
            .map_err(|e| resource_error(e.to_string()))?;
    }
    Ok(UnitDone {
        row: Row {
            service: format!("{ns}/{}", unit.layout.service),
            tenant: tenant.unwrap_or("").to_string(),
            server: server.spec.name.clone(),
            database: unit.layout.database.clone(),
            version: version.unwrap_or_else(|| "-".to_string()),
            secret_file: store
                .path(&ns, &unit.layout.app_secret().name)
                .display()
                .to_string(),
        },
        outcome,
        secrets_written: unit.done.secrets_written.len(),
        migrations_applied: applied,
    })
}

/// `dev status`: the managed databases, read from the server.
pub async fn status(state: &Path) -> Result<Option<Vec<Row>>, DevError> {
    let Some(local) = LocalServer::load(state)? else {
        return Ok(None);
    };
    if !local.is_running() {
        return Ok(None);
    }
    let installation = servers::installation_id(state)?;
    let server = Server::connect(servers::local_spec(&local, &installation).await?)
        .await
        .map_err(ServerError::from)?;
    let store = EnvFileStore::new(state.join("secrets"));
    let secrets = store.all();
    let mut rows = Vec::new();
    for db in catalog::list(&*server.catalog().await.map_err(ServerError::from)?)
        .await
        .map_err(|e| ServerError::Other(e.to_string()))?
    {
        let version = match server.connect_to(&db.database).await {
            Ok(client) => read_version(&client).await,
            Err(_) => "?".to_string(),
        };
        // The app's Secret: the one for this database whose user is not the owner.
        let owner = crate::naming::owner_role(&db.database);
        let secret_file = secrets
            .iter()
            .find(|(ns, _, keys)| {
                ns == &db.claimant.namespace
                    && keys.get("PGDATABASE") == Some(&db.database)
                    && keys.get("PGUSER") != Some(&owner)
            })
            .or_else(|| {
                secrets
                    .iter()
                    .find(|(_, _, k)| k.get("PGDATABASE") == Some(&db.database))
            })
            .map(|(ns, name, _)| store.path(ns, name).display().to_string())
            .unwrap_or_default();
        rows.push(Row {
            service: format!("{}/{}", db.claimant.namespace, db.service),
            tenant: db.tenant.clone().unwrap_or_default(),
            server: server.spec.name.clone(),
            database: db.database.clone(),
            version,
            secret_file,
        });
    }
    Ok(Some(rows))
}

async fn read_version(client: &tokio_postgres::Client) -> String {
    let table = crate::migrate::history::HistoryTable {
        schema: "public".to_string(),
        table: "flyway_schema_history".to_string(),
    };
    match table.exists(client).await {
        Ok(true) => match table.rows_after(client, -1).await {
            Ok(rows) => current_version(&rows).map_or("-".to_string(), |v| v.to_string()),
            Err(_) => "?".to_string(),
        },
        _ => "-".to_string(),
    }
}

/// `dev down`: stop the embedded server, keeping its data.
pub fn down(state: &Path) -> Result<bool, DevError> {
    Ok(LocalServer::down(state)?)
}

/// How `dev` reports progress: a spinner on a terminal, lines otherwise.
pub trait DevProgress {
    fn step(&mut self, message: &str);
}

/// Migration progress as steps of a `DevProgress`.
struct MigrationSteps<'a>(&'a mut dyn DevProgress);

impl Progress for MigrationSteps<'_> {
    fn applied(&mut self, file: &crate::migrate::source::MigrationFile, millis: i32) {
        self.0
            .step(&format!("  applied {} in {millis} ms", file.script));
    }
}
