//! The ownership catalog on each server: a `servicedb` database, created by the admin and
//! migrated with the engine from the top-level `migrations/` folder.

use std::path::PathBuf;

use tokio_postgres::Client;

use super::desired::Claimant;
use crate::migrate::engine::{Engine, Quiet, Settings};
use crate::migrate::history::HistoryTable;
use crate::migrate::placeholders::Placeholders;
use crate::migrate::plan::Options;
use crate::migrate::source::{SourceError, from_texts};

/// The database holding the catalog; reserved, no resource may use this name.
pub const DATABASE: &str = "servicedb";
/// Its schema.
pub const SCHEMA: &str = "servicedb";

/// The catalog's migrations, compiled in so the operator image needs no files.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "V1__ownership_catalog.sql",
        include_str!("../../migrations/V1__ownership_catalog.sql"),
    ),
    (
        "V2__claim_identity.sql",
        include_str!("../../migrations/V2__claim_identity.sql"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot create the servicedb catalog database: {}", crate::pg::describe_pg(.0))]
    Create(tokio_postgres::Error),
    #[error("cannot migrate the servicedb catalog: {0}")]
    Migrate(#[from] crate::migrate::engine::MigrateError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("reading the servicedb catalog: {}", crate::pg::describe_pg(.0))]
    Read(#[from] tokio_postgres::Error),
    #[error("reading the catalogs: unexpected answer: {0}")]
    Decode(String),
}

impl CatalogError {
    pub fn class(&self) -> crate::pg::ErrorClass {
        use crate::migrate::engine::MigrateError;
        use crate::pg::{ErrorClass, classify};
        match self {
            CatalogError::Create(e) | CatalogError::Read(e) => classify(e),
            CatalogError::Migrate(MigrateError::Db { source, .. }) => classify(source),
            CatalogError::Migrate(MigrateError::Connect(c)) => c.class(),
            _ => ErrorClass::Permanent,
        }
    }
}

/// Advisory lock (in the maintenance database) serialising catalog bootstraps: "servicedb"
/// in ASCII, well clear of Flyway's keys.
const BOOTSTRAP_LOCK: i64 = 0x7365_7276_6963_6564;

/// Creates the catalog database if missing and closes it to PUBLIC. Run on the maintenance
/// database; concurrent callers (two operators, dev mode beside the controller) take turns.
pub async fn ensure_database(maintenance: &Client) -> Result<(), CatalogError> {
    let state: (bool, bool) = {
        let row = maintenance
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1), \
                 coalesce((SELECT datacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(datacl) a \
                   WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT') FROM pg_database WHERE datname = $1), true)",
                &[&DATABASE],
            )
            .await
            .map_err(CatalogError::Create)?;
        (row.get(0), row.get(1))
    };
    if state == (true, false) {
        return Ok(());
    }
    maintenance
        .execute("SELECT pg_advisory_lock($1)", &[&BOOTSTRAP_LOCK])
        .await
        .map_err(CatalogError::Create)?;
    let result = async {
        // Look again under the lock: another caller may have done it meanwhile.
        let exists: bool = maintenance
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
                &[&DATABASE],
            )
            .await?
            .get(0);
        if !exists {
            maintenance
                .batch_execute(&format!("CREATE DATABASE \"{DATABASE}\""))
                .await?;
        }
        // Idempotent, and only the admin that created it may connect afterwards.
        maintenance
            .batch_execute(&format!(
                "REVOKE CONNECT, TEMPORARY ON DATABASE \"{DATABASE}\" FROM PUBLIC"
            ))
            .await
    }
    .await;
    let unlocked = maintenance
        .execute("SELECT pg_advisory_unlock($1)", &[&BOOTSTRAP_LOCK])
        .await;
    result.map_err(CatalogError::Create)?;
    unlocked.map_err(CatalogError::Create)?;
    Ok(())
}

/// Applies the catalog's own migrations on a connection to the catalog database.
pub async fn migrate(catalog: Client) -> Result<Client, CatalogError> {
    let files = from_texts(MIGRATIONS.iter().map(|(name, text)| {
        (
            name.to_string(),
            PathBuf::from(format!("migrations/{name}")),
            text.to_string(),
        )
    }))?;
    let settings = Settings {
        dirs: Vec::new(),
        history: HistoryTable {
            schema: SCHEMA.to_string(),
            table: "flyway_schema_history".to_string(),
        },
        options: Options::default(),
        placeholders: Placeholders::new(&[]).map_err(crate::migrate::engine::MigrateError::from)?,
        allow_non_empty_schema: false,
    };
    let mut engine = Engine::with_client(catalog, settings, files.files, files.warnings).await?;
    engine.apply(&mut Quiet).await?;
    Ok(engine.into_client())
}

/// One managed database, as listed by `dev status` and used for placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedDatabase {
    pub database: String,
    pub claimant: Claimant,
    pub service: String,
    pub tenant: Option<String>,
}

/// How many databases the catalog records (placement and `databaseCount`: one cheap query,
/// never the whole list).
pub async fn count(catalog: &Client) -> Result<u32, CatalogError> {
    let n: i64 = catalog
        .query_one("SELECT count(*) FROM servicedb.databases", &[])
        .await?
        .get(0);
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Whether the catalog records `database`.
pub async fn holds(catalog: &Client, database: &str) -> Result<bool, CatalogError> {
    Ok(catalog
        .query_opt(
            "SELECT 1 FROM servicedb.databases WHERE database_name = $1",
            &[&database],
        )
        .await?
        .is_some())
}

pub async fn list(catalog: &Client) -> Result<Vec<ManagedDatabase>, CatalogError> {
    let rows = catalog
        .query(
            "SELECT database_name, resource_kind, resource_namespace, resource_name, service, tenant \
             FROM servicedb.databases ORDER BY database_name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ManagedDatabase {
            database: r.get(0),
            claimant: Claimant {
                kind: r.get(1),
                namespace: r.get(2),
                name: r.get(3),
            },
            service: r.get(4),
            tenant: r.get(5),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    /// A file added to migrations/ but not to MIGRATIONS would silently never run.
    #[test]
    fn every_catalog_migration_is_compiled_in() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let compiled: Vec<String> = super::MIGRATIONS
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        assert_eq!(on_disk, compiled);
    }
}
