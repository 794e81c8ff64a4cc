//! The examples stay runnable: their manifests validate, and each ConfigMap carries exactly
//! the SQL files beside it (regenerate with `SERVICEDB_WRITE_EXAMPLES=1 cargo test --test examples`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use servicedb::api::validation::{validate_service_database, validate_tenant};
use servicedb::dev::manifests::load;

/// (example, ConfigMap name, namespace, directory of SQL files)
const CONFIG_MAPS: &[(&str, &str, &str, &str)] = &[
    ("shop", "orders-migrations", "shop", "migrations/orders"),
    ("shop", "payments-migrations", "shop", "migrations/payments"),
    (
        "fitbuddy",
        "management-migrations",
        "fitbuddy",
        "migrations/management",
    ),
    ("fitbuddy", "app-migrations", "fitbuddy", "migrations/app"),
    ("fitbuddy", "app-seed", "fitbuddy", "seed/app"),
];

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn sql_files(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".sql"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

fn config_map_yaml(
    name: &str,
    namespace: &str,
    source: &str,
    data: &BTreeMap<String, String>,
) -> String {
    let body = serde_yaml::to_string(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": name, "namespace": namespace },
        "data": data,
    }))
    .unwrap();
    format!(
        "# Generated from {source}/*.sql: edit those, then run\n# SERVICEDB_WRITE_EXAMPLES=1 cargo test --test examples\n{body}"
    )
}

/// The ConfigMaps carry exactly the migration files: what `dev up` runs is what is in git.
#[test]
fn config_maps_match_their_sql_files() {
    let write = std::env::var_os("SERVICEDB_WRITE_EXAMPLES").is_some();
    for (example, name, namespace, dir) in CONFIG_MAPS {
        let base = examples().join(example);
        let want = config_map_yaml(name, namespace, dir, &sql_files(&base.join(dir)));
        let path = base.join(format!("{name}.yaml"));
        if write {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is out of date: run SERVICEDB_WRITE_EXAMPLES=1 cargo test --test examples",
            path.display()
        );
    }
}

/// Every example resource passes the same validation the operator applies.
#[test]
fn example_manifests_are_valid() {
    for example in ["shop", "fitbuddy"] {
        let m = load(&[examples().join(example)]).unwrap();
        assert!(!m.services.is_empty(), "{example} has services");
        for s in &m.services {
            validate_service_database(&s.value)
                .unwrap_or_else(|e| panic!("{}: {e:?}", s.file.display()));
        }
        for t in &m.tenants {
            validate_tenant(&t.value).unwrap_or_else(|e| panic!("{}: {e:?}", t.file.display()));
        }
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    }
}
