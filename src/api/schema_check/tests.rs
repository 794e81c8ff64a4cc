use serde_json::{Value, json};

use super::*;

fn errors_of(doc: Value) -> Vec<String> {
    let api = doc["apiVersion"].as_str().unwrap().to_string();
    let kind = doc["kind"].as_str().unwrap().to_string();
    let schema = schema_for(&api, &kind).unwrap();
    let mut doc = doc;
    check_object(&schema, &mut doc)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn sdb(spec: Value) -> Value {
    json!({
        "apiVersion": "servicedb.io/v1alpha1",
        "kind": "ServiceDatabase",
        "metadata": { "name": "orders", "namespace": "shop" },
        "spec": spec,
    })
}

#[test]
fn unknown_fields_are_named_by_path() {
    let errs = errors_of(sdb(json!({
        "databseName": "typo_db",
        "app": { "connectionLimit": 5, "conectionLimit": 7 },
    })));
    assert_eq!(
        errs,
        [
            "spec.app.conectionLimit: unknown field",
            "spec.databseName: unknown field"
        ]
    );
}

#[test]
fn types_and_enums_are_checked_where_they_are() {
    let errs = errors_of(sdb(json!({
        "tenancy": "Pertenant",
        "app": { "connectionLimit": "lots" },
        "roles": [{ "name": "ro", "access": "read" }, { "name": "x", "access": "admin" }],
    })));
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(
        errs.contains(
            &r#"spec.app.connectionLimit: must be of type integer, not string "lots""#.to_string()
        ),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with(r#"spec.tenancy: unsupported value "Pertenant": supported values: "Shared", "PerTenant""#)),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with(r#"spec.roles[1].access: unsupported value "admin""#)),
        "{errs:?}"
    );
}

#[test]
fn int32_bounds_and_required_fields() {
    let errs = errors_of(sdb(
        json!({ "app": { "connectionLimit": 3_000_000_000u64 } }),
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("spec.app.connectionLimit: must be at most"),
        "{errs:?}"
    );
    let errs = errors_of(json!({
        "apiVersion": "servicedb.io/v1alpha1",
        "kind": "ServiceDatabase",
        "metadata": { "namespace": "shop", "nmae": "x" },
    }));
    assert_eq!(
        errs,
        [
            "metadata.nmae: unknown field",
            "metadata.name: Required value: every resource needs a name",
            "spec: Required value"
        ]
    );
}

#[test]
fn nulls_of_non_nullable_fields_are_pruned_as_the_api_server_does() {
    let schema = schema_for("servicedb.io/v1alpha1", "ServiceDatabase").unwrap();
    let mut doc = sdb(json!({ "tenancy": null, "server": null }));
    assert_eq!(check_object(&schema, &mut doc), []);
    // `server` is nullable (an Option) and kept; `tenancy` is not and is dropped.
    assert_eq!(doc["spec"], json!({ "server": null }));
}

#[test]
fn unknown_kinds_and_versions_of_the_group_are_refused() {
    assert_eq!(
        schema_for("servicedb.io/v1alpha1", "ServiceDatabse")
            .unwrap_err()
            .to_string(),
        r#"kind "ServiceDatabse" does not exist in servicedb.io (known kinds: DatabaseServer, ServiceDatabase, Tenant)"#
    );
    assert_eq!(
        schema_for("servicedb.io/v1beta9", "ServiceDatabase")
            .unwrap_err()
            .to_string(),
        "ServiceDatabase is not served as servicedb.io/v1beta9 (served: servicedb.io/v1alpha1)"
    );
}

/// Every servicedb document in examples/ passes, so the checker is not stricter than the
/// types.
#[test]
fn the_examples_pass() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = 0;
    for dir in ["shop", "fitbuddy"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let yaml = <serde_yaml::Value as serde::Deserialize>::deserialize(doc).unwrap();
                let doc: Value = serde_json::to_value(yaml).unwrap();
                if doc["apiVersion"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("servicedb.io/"))
                {
                    assert_eq!(errors_of(doc), Vec::<String>::new(), "{}", path.display());
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 5, "{checked}");
}

/// A keyword the generated CRDs use but `check` ignores would let dev accept what the
/// cluster refuses.
#[test]
fn the_crds_use_no_keyword_the_checker_ignores() {
    for crd in crds() {
        let schema = schema_for(
            &format!("{}/{}", crd.spec.group, crd.spec.versions[0].name),
            &crd.spec.names.kind,
        )
        .unwrap();
        assert_eq!(
            unchecked_keywords(&schema, ""),
            Vec::<String>::new(),
            "{}",
            crd.spec.names.kind
        );
    }
}

#[test]
fn metadata_is_checked_as_object_meta() {
    let errs = errors_of(json!({
        "apiVersion": "servicedb.io/v1alpha1",
        "kind": "Tenant",
        "metadata": { "name": "t", "namespace": "shop", "labels": { "tier": 1 }, "annotations": "x" },
        "spec": { "services": ["app"] },
    }));
    assert_eq!(
        errs,
        [
            "metadata.labels.tier: must be a string",
            "metadata.annotations: must be a map of strings"
        ]
    );
}
