//! The migration engine's settings as `servicedb migrate` and the controller use them by
//! default: Flyway's history table in `public`, no target.
#![allow(dead_code)]

use servicedb::migrate::engine::Settings;
use servicedb::migrate::history::HistoryTable;
use servicedb::migrate::placeholders::Placeholders;
use servicedb::migrate::plan::Options;

pub fn flyway_settings(placeholders: Placeholders) -> Settings {
    Settings {
        dirs: Vec::new(),
        history: HistoryTable {
            schema: "public".into(),
            table: "flyway_schema_history".into(),
        },
        options: Options::default(),
        placeholders,
        allow_non_empty_schema: false,
    }
}
