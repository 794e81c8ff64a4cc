//! The Helm chart in `charts/servicedb/` ships the operator it was made for: its `crds/` are
//! byte for byte the repository's `crds/` (and so what `servicedb crd` prints), and its
//! appVersion is the crate's version. Rendering, schemas and RBAC are checked by
//! `.ci/check-ops` (helm and kubernetes-validate).
//!
//! After changing the API types, regenerate both copies with
//! `SERVICEDB_WRITE_CRDS=1 cargo test --test crds --test chart`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use servicedb::api::crd::crd_files;

const REGENERATE: &str = "regenerate with `SERVICEDB_WRITE_CRDS=1 cargo test --test crds --test chart` \
     (or `cp crds/*.yaml charts/servicedb/crds/`)";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart_crds_dir() -> PathBuf {
    repo().join("charts/servicedb/crds")
}

/// The `*.yaml` file names in `dir`, sorted.
fn yaml_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{} cannot be read: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn writing() -> bool {
    std::env::var_os("SERVICEDB_WRITE_CRDS").is_some_and(|v| v != "0" && !v.is_empty())
}

/// Locks: `charts/servicedb/crds/` holds exactly the files of `crds/`, byte for byte, so
/// `helm install` creates the same CRDs `kubectl apply -f crds/` does.
#[test]
fn chart_crds_are_copies_of_repo_crds() {
    let top = repo().join("crds");
    let chart = chart_crds_dir();
    if writing() {
        // Written from the generator, as tests/crds.rs writes crds/, so both agree.
        std::fs::create_dir_all(&chart).unwrap();
        for name in yaml_files(&chart) {
            std::fs::remove_file(chart.join(name)).unwrap();
        }
        for (name, yaml) in crd_files() {
            std::fs::write(chart.join(name), yaml).unwrap();
        }
        return;
    }

    let mut problems = Vec::new();
    let top_files = yaml_files(&top);
    let chart_files = yaml_files(&chart);
    for name in &top_files {
        let original = std::fs::read(top.join(name)).unwrap();
        match std::fs::read(chart.join(name)) {
            Ok(copy) if copy == original => {}
            Ok(_) => problems.push(format!(
                "charts/servicedb/crds/{name} differs from crds/{name}"
            )),
            Err(_) => problems.push(format!("charts/servicedb/crds/{name} is missing")),
        }
    }
    for name in chart_files.difference(&top_files) {
        problems.push(format!(
            "charts/servicedb/crds/{name} has no counterpart in crds/; remove it"
        ));
    }
    assert!(problems.is_empty(), "{}; {REGENERATE}", problems.join("; "));
}

/// Locks: the chart's CRDs are what this build's `servicedb crd` generates (not only equal to a
/// `crds/` that might itself be stale).
#[test]
fn chart_crds_match_generated() {
    if writing() {
        return;
    }
    let generated = crd_files();
    let names: BTreeSet<String> = generated.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(
        yaml_files(&chart_crds_dir()),
        names,
        "charts/servicedb/crds/ lists other files than the generated CRDs; {REGENERATE}"
    );
    for (name, yaml) in generated {
        let copy = std::fs::read_to_string(chart_crds_dir().join(&name)).unwrap();
        assert!(
            copy == yaml,
            "charts/servicedb/crds/{name} differs from the generated CRD; {REGENERATE}"
        );
    }
}

/// Locks: the chart installs this crate's version by default (appVersion is the image tag
/// when `image.tag` is empty, which it is by default).
#[test]
fn chart_app_version_is_crate_version() {
    let chart: serde_json::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("charts/servicedb/Chart.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "charts/servicedb/Chart.yaml appVersion must equal Cargo.toml's version"
    );
    let values: serde_json::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("charts/servicedb/values.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        values["image"]["tag"].as_str(),
        Some(""),
        "values.yaml image.tag must stay empty so the image follows appVersion"
    );
}
