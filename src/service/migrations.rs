//! Migrations from ConfigMaps, run in-process as the owner (dev mode; in the cluster the
//! migration Job runs the same engine).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::migrate::engine::{ApplyReport, Engine, MigrateError, Progress, Settings};
use crate::migrate::history::HistoryTable;
use crate::migrate::placeholders::Placeholders;
use crate::migrate::plan::Options;
use crate::migrate::source::{Scan, SourceError, from_texts};
use crate::migrate::version::Version;
use crate::provision::DesiredDatabase;
use crate::provision::server::Server;

/// The history table of seed data: kept apart from the schema's, so seeds never move the
/// schema version and the schema's history stays identical to a production database's.
pub const SEED_HISTORY_TABLE: &str = crate::provision::HISTORY_TABLES[1];

/// ConfigMaps (name, data) as migration files: every key is a file name, as when the
/// ConfigMap is mounted.
pub fn files_from_config_maps(
    config_maps: &[(String, BTreeMap<String, String>)],
) -> Result<Scan, SourceError> {
    from_texts(config_maps.iter().flat_map(|(cm, data)| {
        data.iter().map(move |(key, text)| {
            (
                key.clone(),
                PathBuf::from(format!("configmap/{cm}/{key}")),
                text.clone(),
            )
        })
    }))
}

/// Applies migrations as the database's owner, the role the migration Job uses.
pub async fn apply_as_owner(
    server: &Server,
    desired: &DesiredDatabase,
    files: Scan,
    table: &str,
    target: Option<Version>,
    progress: &mut dyn Progress,
) -> Result<ApplyReport, MigrateError> {
    // Counted against the server's connection bound for as long as the migrations run.
    let (client, _slot) = server
        .session_as(
            desired.database.as_str(),
            desired.owner.name.as_str(),
            desired.owner.password.expose(),
        )
        .await?;
    let settings = Settings {
        dirs: Vec::new(),
        history: HistoryTable {
            schema: "public".to_string(),
            table: table.to_string(),
        },
        options: Options {
            target,
            out_of_order: false,
        },
        placeholders: Placeholders::new(&[])?,
        // The seed history sits beside the schema's own, in a schema that has tables.
        allow_non_empty_schema: table == SEED_HISTORY_TABLE,
    };
    let mut engine = Engine::with_client(client, settings, files.files, files.warnings).await?;
    engine.apply(progress).await
}
