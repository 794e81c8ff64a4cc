//! One database of `dev up`: its ConfigMaps, reconcile_unit, migrations and seed, the row
//! for the table and the record for later runs.

use std::collections::BTreeMap;

use super::env_store::EnvFileStore;
use super::manifests::{self, Manifests};
use super::record::UnitRecord;
use super::servers::Servers;
use super::validate::describe;
use super::{DevError, DevProgress, Row};
use crate::api::{ReclaimPolicy, ServiceDatabase};
use crate::migrate::engine::Progress;
use crate::migrate::version::Version;
use crate::provision::execute::HistoryWanted;
use crate::provision::execute::{Outcome, reconcile_inside};
use crate::service::migrations::{SEED_HISTORY_TABLE, apply_as_owner, files_from_config_maps};
use crate::service::reconcile::reconcile_unit;

/// A ConfigMap's name and data.
type ConfigMapData = (String, BTreeMap<String, String>);

pub struct UnitDone {
    pub row: Row,
    pub record: UnitRecord,
}

/// The tenant a unit's database is for: its name, reclaimPolicy and pinned server.
#[derive(Debug, Clone)]
pub struct TenantUnit {
    pub name: String,
    pub reclaim_policy: ReclaimPolicy,
    pub pin: Option<String>,
}

/// What one unit did, counted as it goes: also what a unit that failed part-way did, so the
/// summary never says 0 when a database, roles and Secrets were made.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub statements: usize,
    pub secrets_written: usize,
    pub migrations_applied: usize,
}

pub async fn up_one(
    manifests: &Manifests,
    servers: &Servers,
    store: &EnvFileStore,
    s: &manifests::Sourced<ServiceDatabase>,
    tenant: Option<&TenantUnit>,
    progress: &mut dyn DevProgress,
    tally: &mut Tally,
) -> Result<UnitDone, DevError> {
    let tenant_reclaim_policy = tenant.map(|t| t.reclaim_policy);
    let pin = tenant.and_then(|t| t.pin.as_deref());
    let tenant = tenant.map(|t| t.name.as_str());
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

    let unit = match reconcile_unit(server, store, sdb, tenant, &[], HistoryWanted::No).await {
        Ok(unit) => unit,
        Err(failed) => {
            tally.statements += failed.done.outcome.actions.len();
            tally.secrets_written += failed.done.secrets_written.len();
            return Err(resource_error(failed.error.to_string()));
        }
    };
    tally.statements += unit.done.outcome.actions.len();
    tally.secrets_written += unit.done.secrets_written.len();
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
        tally.migrations_applied += report.applied.len();
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
        tally.migrations_applied += report.applied.len();
    }
    // Schemas the migrations just created get their grants now, not on the next run; with
    // nothing applied, reconcile_unit has already looked inside.
    if applied > 0 {
        let mut inside = Outcome::default();
        let result = reconcile_inside(server, &unit.desired, &mut inside).await;
        tally.statements += inside.actions.len();
        result.map_err(|e| resource_error(e.to_string()))?;
    }
    // The app's Secret first: the one a service loads.
    let app = unit.layout.app_secret().name.clone();
    let mut secrets: Vec<String> = unit.layout.secrets.iter().map(|s| s.name.clone()).collect();
    secrets.sort_by_key(|s| *s != app);
    Ok(UnitDone {
        row: Row {
            service: format!("{ns}/{}", unit.layout.service),
            tenant: tenant.unwrap_or("").to_string(),
            server: server.spec.name.clone(),
            database: unit.layout.database.clone(),
            version: version.unwrap_or_else(|| "-".to_string()),
            secret_files: secrets
                .iter()
                .map(|name| store.path(&ns, name).display().to_string())
                .collect(),
        },
        record: UnitRecord {
            namespace: ns.clone(),
            service: unit.layout.service.clone(),
            tenant: tenant.map(str::to_string),
            server: server.spec.name.clone(),
            database: unit.layout.database.clone(),
            secrets,
            orphaned: false,
            resource: sdb.clone(),
            tenant_reclaim_policy,
        },
    })
}

/// Migration progress as steps of a `DevProgress`.
struct MigrationSteps<'a>(&'a mut dyn DevProgress);

impl Progress for MigrationSteps<'_> {
    fn applied(&mut self, file: &crate::migrate::source::MigrationFile, millis: i32) {
        self.0
            .step(&format!("  applied {} in {millis} ms", file.script));
    }
}
