//! The CRDs committed in `crds/` are exactly what the code generates, and each is a structural
//! schema a real API server accepts.
//!
//! Regenerate after changing the API types with:
//! `SERVICEDB_WRITE_CRDS=1 cargo test --test crds`

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use servicedb::api::crd::{crd_files, crd_yaml};

const REGENERATE: &str = "regenerate with `SERVICEDB_WRITE_CRDS=1 cargo test --test crds`";

fn crds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crds")
}

/// Locks: `crds/` holds one file per CRD, byte for byte the generated YAML, and nothing else;
/// with `SERVICEDB_WRITE_CRDS=1` it is rewritten instead.
#[test]
fn committed_crds_match_generated() {
    let dir = crds_dir();
    let generated = crd_files();
    if std::env::var_os("SERVICEDB_WRITE_CRDS").is_some_and(|v| v != "0" && !v.is_empty()) {
        std::fs::create_dir_all(&dir).unwrap();
        let keep: BTreeSet<_> = generated.iter().map(|(name, _)| name.clone()).collect();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".yaml") && !keep.contains(&name) {
                std::fs::remove_file(&path).unwrap();
            }
        }
        for (name, yaml) in &generated {
            std::fs::write(dir.join(name), yaml).unwrap();
        }
        return;
    }

    let mut problems = Vec::new();
    for (name, yaml) in &generated {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(committed) if committed == *yaml => {}
            Ok(_) => problems.push(format!("crds/{name} differs from the generated CRD")),
            Err(err) => problems.push(format!("crds/{name} cannot be read: {err}")),
        }
    }
    let expected: BTreeSet<_> = generated.iter().map(|(name, _)| name.as_str()).collect();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if !expected.contains(name.as_str()) {
                problems.push(format!("crds/{name} is not a generated CRD; remove it"));
            }
        }
    }
    assert!(problems.is_empty(), "{}; {REGENERATE}", problems.join("; "));
}

/// Locks: `servicedb crd` output (`crd_yaml`) is the files of `crds/` as one YAML stream.
#[test]
fn yaml_stream_matches_files() {
    let joined: String = crd_files()
        .iter()
        .map(|(_, yaml)| format!("---\n{yaml}"))
        .collect();
    assert_eq!(crd_yaml(), joined);
}

/// Locks: every CRD schema is structural (the API server rejects anything else), so
/// `kubectl apply -f crds/` works on a real cluster and not just on the fake.
#[test]
fn schemas_are_structural() {
    for (name, yaml) in crd_files() {
        let crd: Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1", "{name}");
        assert_eq!(crd["kind"], "CustomResourceDefinition", "{name}");
        let versions = crd["spec"]["versions"].as_array().unwrap();
        for version in versions {
            let schema = &version["schema"]["openAPIV3Schema"];
            let mut problems = Vec::new();
            check_node(schema, "openAPIV3Schema", false, &mut problems);
            // apiVersion, kind and metadata are implied by the API server; spec and status are ours.
            let root_props = schema["properties"].as_object().unwrap();
            for key in ["spec", "status"] {
                if !root_props.contains_key(key) {
                    problems.push(format!("openAPIV3Schema has no property {key}"));
                }
            }
            // metadata may only restrict name and generateName: servicedb leaves it alone.
            if let Some(metadata) = root_props.get("metadata")
                && metadata
                    .as_object()
                    .is_some_and(|m| m.keys().any(|k| k != "type"))
            {
                problems.push("openAPIV3Schema.properties.metadata has more than a type".into());
            }
            for column in version["additionalPrinterColumns"].as_array().unwrap() {
                let path = column["jsonPath"].as_str().unwrap();
                if !path.starts_with('.') {
                    problems.push(format!("printer column jsonPath {path} must start with ."));
                }
            }
            assert!(problems.is_empty(), "{name}: {problems:#?}");
        }
    }
}

/// Keys that structural schemas forbid inside `allOf`/`anyOf`/`oneOf`/`not`.
const FORBIDDEN_IN_JUNCTORS: [&str; 5] = [
    "type",
    "description",
    "default",
    "additionalProperties",
    "nullable",
];

/// Checks one schema node and its children against the structural-schema rules:
/// - every node outside a junctor has a non-empty `type`, unless it is
///   `x-kubernetes-int-or-string` or `x-kubernetes-preserve-unknown-fields`;
/// - nodes inside `allOf`/`anyOf`/`oneOf`/`not` set none of type, description, default,
///   additionalProperties, nullable (but for the int-or-string pattern);
/// - no `$ref`, `definitions`, `$schema`, `uniqueItems: true`, `additionalProperties: false`,
///   `properties` together with `additionalProperties`, or an array of `items`.
fn check_node(node: &Value, path: &str, in_junctor: bool, problems: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        problems.push(format!("{path}: a schema must be an object, found {node}"));
        return;
    };
    for key in ["$ref", "definitions", "$defs", "$schema", "const"] {
        if obj.contains_key(key) {
            problems.push(format!("{path}: {key} is not allowed"));
        }
    }
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    match obj.get("type") {
        Some(Value::String(t)) if !t.is_empty() => {
            let known = ["object", "array", "string", "integer", "number", "boolean"];
            if !known.contains(&t.as_str()) {
                problems.push(format!("{path}: unknown type {t}"));
            }
        }
        Some(other) => problems.push(format!("{path}: type must be one string, found {other}")),
        None if in_junctor || int_or_string || preserve => {}
        None => problems.push(format!("{path}: no type")),
    }
    if in_junctor && !int_or_string {
        for key in FORBIDDEN_IN_JUNCTORS {
            if obj.contains_key(key) {
                problems.push(format!(
                    "{path}: {key} is not allowed inside allOf/anyOf/oneOf/not"
                ));
            }
        }
    }
    if obj.get("uniqueItems") == Some(&Value::Bool(true)) {
        problems.push(format!("{path}: uniqueItems: true is not allowed"));
    }
    if obj.get("additionalProperties") == Some(&Value::Bool(false)) {
        problems.push(format!(
            "{path}: additionalProperties: false is not allowed"
        ));
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        problems.push(format!(
            "{path}: properties and additionalProperties are exclusive"
        ));
    }
    let is_type = |t: &str| obj.get("type") == Some(&Value::String(t.into()));
    if is_type("array") && !obj.contains_key("items") {
        problems.push(format!("{path}: an array needs items"));
    }
    if let Some(props) = obj.get("properties") {
        match props.as_object() {
            Some(props) => {
                for (key, child) in props {
                    check_node(child, &format!("{path}.{key}"), in_junctor, problems);
                }
            }
            None => problems.push(format!("{path}.properties must be an object")),
        }
        if let Some(required) = obj.get("required").and_then(Value::as_array) {
            for r in required {
                let r = r.as_str().unwrap_or_default();
                if !props.as_object().is_some_and(|p| p.contains_key(r)) {
                    problems.push(format!("{path}: required {r} is not a property"));
                }
            }
        }
    }
    match obj.get("additionalProperties") {
        Some(child @ Value::Object(_)) => check_node(
            child,
            &format!("{path}.additionalProperties"),
            in_junctor,
            problems,
        ),
        Some(Value::Bool(_)) | None => {}
        Some(other) => problems.push(format!("{path}: odd additionalProperties {other}")),
    }
    match obj.get("items") {
        Some(child @ Value::Object(_)) => {
            check_node(child, &format!("{path}.items"), in_junctor, problems)
        }
        Some(other) => problems.push(format!("{path}: items must be one schema, found {other}")),
        None => {}
    }
    for junctor in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = obj.get(junctor) {
            for (i, child) in list.as_array().into_iter().flatten().enumerate() {
                check_node(child, &format!("{path}.{junctor}[{i}]"), true, problems);
            }
        }
    }
    if let Some(not) = obj.get("not") {
        check_node(not, &format!("{path}.not"), true, problems);
    }
    if is_type("array") && obj.get("x-kubernetes-list-type") == Some(&Value::from("map")) {
        let keys = obj["x-kubernetes-list-map-keys"].as_array();
        let required = obj["items"]["required"].as_array();
        let ok =
            keys.is_some_and(|keys| keys.iter().all(|k| required.is_some_and(|r| r.contains(k))));
        if !ok {
            problems.push(format!(
                "{path}: list-map keys must be required fields of items"
            ));
        }
    }
}

/// Locks: the example from DESIGN.md deserializes, defaults are filled and YAML keys are
/// camelCase.
#[test]
fn design_example_round_trips() {
    use servicedb::api::*;
    let yaml = r#"
apiVersion: servicedb.io/v1alpha1
kind: ServiceDatabase
metadata: { name: orders, namespace: shop }
spec:
  server: main
  databaseName: shop_orders
  tenancy: Shared
  owner: { connectionLimit: 5 }
  app: { connectionLimit: 50 }
  extensions: [pgcrypto]
  schemas: [orders]
  roles:
    - { name: reporting, access: read }
  secret:
    name: orders-db
    access: write
    template:
      SPRING_DATASOURCE_URL: "jdbc:postgresql://{{ host }}:{{ port }}/{{ database }}"
  migrations:
    configMaps: [orders-migrations]
    targetVersion: "7"
    seed: { configMaps: [orders-seed] }
    job:
      image: ghcr.io/acme/servicedb:1.0
      serviceAccountName: orders-migrator
      resources: { limits: { memory: 256Mi }, requests: { cpu: 100m } }
      backoffLimit: 2
      activeDeadlineSeconds: 600
      ttlSecondsAfterFinished: 3600
  passwordRotation: { every: 720h }
  reclaimPolicy: Retain
"#;
    let sdb: ServiceDatabase = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(sdb.spec.tenancy, Tenancy::Shared);
    assert_eq!(sdb.spec.roles[0].access, RoleAccess::Read);
    assert_eq!(sdb.spec.secret_access(), SecretAccess::Write);
    let job = sdb.spec.migrations.as_ref().unwrap().job.as_ref().unwrap();
    assert_eq!(job.backoff_limit, Some(2));
    assert!(job.resources.as_ref().unwrap().limits.is_some());
    servicedb::api::validation::validate_service_database(&sdb).unwrap();
    let back = serde_json::to_value(&sdb).unwrap();
    assert_eq!(back["spec"]["databaseName"], "shop_orders");
    assert_eq!(back["spec"]["passwordRotation"]["every"], "720h");
    assert!(back["spec"].get("database_name").is_none());

    let server: DatabaseServer = serde_yaml::from_str(
        r#"
apiVersion: servicedb.io/v1alpha1
kind: DatabaseServer
metadata: { name: main }
spec:
  host: postgres.databases.svc
  adminSecretRef: { namespace: servicedb-system, name: pg-admin }
  caSecretRef: { namespace: servicedb-system, name: pg-ca }
  sslMode: verify-full
"#,
    )
    .unwrap();
    assert_eq!(server.spec.port, 5432);
    assert_eq!(server.spec.ssl_mode, Some(SslMode::VerifyFull));
    assert_eq!(server.spec.environment, Environment::Production);
    assert!(!server.spec.default);
    assert_eq!(server.spec.ca_secret_ref.as_ref().unwrap().key, "ca.crt");
    assert_eq!(server.spec.effective_client_port(), 5432);
    let json = serde_json::to_value(&server).unwrap();
    assert!(
        json["spec"].get("clientHost").is_none(),
        "None is left out: {json}"
    );
    assert!(
        json.get("status").is_none(),
        "no status until servicedb writes one: {json}"
    );

    let tenant: Tenant = serde_yaml::from_str(
        r#"
apiVersion: servicedb.io/v1alpha1
kind: Tenant
metadata: { name: gym-42, namespace: fitbuddy }
spec: { services: [app] }
status:
  conditions:
    - { type: Ready, status: "True", reason: Reconciled, message: "", lastTransitionTime: "2025-01-01T00:00:00Z", observedGeneration: 1 }
  databases:
    - { service: app, server: main, database: app_gym_42, secretName: app-db-gym-42, appliedVersion: "7", ready: true }
"#,
    )
    .unwrap();
    assert_eq!(tenant.spec.reclaim_policy, ReclaimPolicy::Retain);
    let status = tenant.status.as_ref().unwrap();
    assert!(servicedb::api::conditions::is_ready(
        &status.conditions,
        Some(1)
    ));
    assert_eq!(status.databases[0].database.as_deref(), Some("app_gym_42"));
}

/// Locks: enum fields list exactly the allowed values in the schema, and defaults appear
/// there (what `kubectl explain` shows and the API server fills in).
#[test]
fn enums_and_defaults_in_schema() {
    let files = crd_files();
    let doc = |i: usize| -> Value { serde_yaml::from_str(&files[i].1).unwrap() };
    let (server, sdb, tenant) = (doc(0), doc(1), doc(2));
    let spec = |crd: &Value| {
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            .clone()
    };
    let enum_of = |v: &Value| -> Vec<String> {
        v["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("no enum in {v}"))
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    let s = spec(&server);
    assert_eq!(
        enum_of(&s["sslMode"]),
        ["disable", "prefer", "require", "verify-ca", "verify-full"]
    );
    // No schema default: unset means verify-full when a CA is given.
    assert!(s["sslMode"].get("default").is_none(), "{}", s["sslMode"]);
    assert_eq!(s["port"]["default"], 5432);
    assert_eq!(
        enum_of(&s["environment"]),
        ["production", "staging", "local"]
    );
    assert_eq!(s["environment"]["default"], "production");
    let s = spec(&sdb);
    assert_eq!(enum_of(&s["tenancy"]), ["Shared", "PerTenant"]);
    assert_eq!(s["tenancy"]["default"], "Shared");
    assert_eq!(enum_of(&s["reclaimPolicy"]), ["Retain", "Delete"]);
    assert_eq!(
        enum_of(&s["roles"]["items"]["properties"]["access"]),
        ["read", "write", "owner"]
    );
    assert_eq!(
        enum_of(&s["secret"]["properties"]["access"]),
        ["write", "owner"]
    );
    assert_eq!(
        s["secret"]["properties"]["template"]["additionalProperties"]["type"],
        "string"
    );
    assert!(
        s["databaseName"]["description"]
            .as_str()
            .unwrap()
            .contains("63 bytes")
    );
    let s = spec(&tenant);
    assert_eq!(enum_of(&s["reclaimPolicy"]), ["Retain", "Delete"]);
}

/// Locks: the structural check itself catches what the API server rejects.
#[test]
fn structural_check_catches_bad_schemas() {
    let problems = |schema: Value| {
        let mut problems = Vec::new();
        check_node(&schema, "s", false, &mut problems);
        problems
    };
    let ok = serde_json::json!({
        "type": "object",
        "properties": {
            "a": { "type": "string", "nullable": true },
            "q": { "x-kubernetes-int-or-string": true },
            "m": { "type": "object", "additionalProperties": { "type": "string" } },
            "any": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
        }
    });
    assert_eq!(problems(ok), Vec::<String>::new());
    let untyped_any_of = serde_json::json!({
        "type": "object",
        "properties": { "a": { "anyOf": [ { "type": "string" }, { "type": "integer" } ] } }
    });
    let found = problems(untyped_any_of);
    assert!(found.iter().any(|p| p == "s.a: no type"), "{found:?}");
    assert!(
        found
            .iter()
            .any(|p| p.contains("anyOf[0]: type is not allowed")),
        "{found:?}"
    );
    let empty_object = serde_json::json!({ "type": "object", "properties": { "v": {} } });
    assert_eq!(problems(empty_object), ["s.v: no type"]);
    let bad = serde_json::json!({
        "type": "object",
        "properties": {
            "r": { "$ref": "#/definitions/X" },
            "u": { "type": "array", "items": { "type": "string" }, "uniqueItems": true },
            "f": { "type": "object", "additionalProperties": false },
            "t": { "type": ["string", "null"] }
        }
    });
    let found = problems(bad);
    for expected in [
        "s.r: $ref is not allowed",
        "s.r: no type",
        "s.u: uniqueItems: true is not allowed",
        "s.f: additionalProperties: false is not allowed",
    ] {
        assert!(found.iter().any(|p| p == expected), "{expected}: {found:?}");
    }
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("s.t: type must be one string")),
        "{found:?}"
    );
    assert_eq!(found.len(), 5, "{found:?}");
}
