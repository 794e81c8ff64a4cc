//! Conformance of the fake API server: custom resources pruned, defaulted and validated
//! from their CRD's `openAPIV3Schema`, as a v1.33 server does, with the repository's own
//! CRDs (`crds/`) and a conformance CRD that uses every schema keyword the fake checks.
//! Shared kinds and helpers: `fake_apiserver_common`.

#[allow(dead_code)] // the PostgreSQL half of the support module is not used here
mod support;

mod fake_apiserver_common;

use fake_apiserver_common::*;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams, ValidationDirective,
};
use kube::core::Status;
use serde_json::{Value, json};
use support::kube::TestCluster;

const SPECIMENS: &str = "specimens";

fn specimen_resource() -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: "v1".into(),
        api_version: format!("{GROUP}/v1"),
        kind: "Specimen".into(),
        plural: SPECIMENS.into(),
    }
}

/// A CRD whose schema uses the keywords the fake enforces.
fn specimen_crd() -> CustomResourceDefinition {
    let schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "required": ["color"], "properties": {
            "color": {"type": "string", "enum": ["red", "green", "blue"]},
            "size": {"type": "integer", "minimum": 1, "maximum": 10},
            "name": {"type": "string", "maxLength": 8, "pattern": "^[a-z]+$"},
            "port": {"x-kubernetes-int-or-string": true},
            "mode": {"type": "string", "default": "auto"},
            "settings": {"type": "object", "default": {}, "properties": {
                "retries": {"type": "integer", "default": 3},
                "note": {"type": "string", "nullable": true},
            }},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "items": {"type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string"}, "value": {"type": "integer"},
                }}},
            "extras": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                "properties": {"known": {"type": "integer"}}},
            "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                "x-kubernetes-preserve-unknown-fields": true},
            "at": {"type": "string", "format": "date-time"},
        }},
        "status": {"type": "object", "properties": {
            "phase": {"type": "string"},
            "observedGeneration": {"type": "integer", "format": "int64"},
        }},
    }});
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{SPECIMENS}.{GROUP}")},
        "spec": {
            "group": GROUP,
            "names": {"kind": "Specimen", "plural": SPECIMENS, "singular": "specimen", "listKind": "SpecimenList"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": schema},
                "subresources": {"status": {}}}],
        },
    }))
    .expect("a valid CRD")
}

async fn with_specimens() -> (TestCluster, Api<DynamicObject>) {
    let cluster = start().await;
    cluster.install_crd(&specimen_crd()).await;
    let api = Api::namespaced_with(cluster.client(), cluster.namespace(), &specimen_resource());
    (cluster, api)
}

fn specimen(name: &str, spec: Value) -> DynamicObject {
    DynamicObject::new(name, &specimen_resource()).data(json!({ "spec": spec }))
}

/// The raw answer to a request (status, `Warning` headers, body).
async fn send(
    client: &kube::Client,
    method: &str,
    uri: &str,
    content_type: &str,
    body: &Value,
) -> (u16, Vec<String>, Value) {
    let req = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(serde_json::to_vec(body).unwrap())
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let bytes = resp.into_body().collect_bytes().await.unwrap();
    (
        code,
        warnings,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// (field, reason) of each cause of a 422.
fn causes(status: &Status) -> Vec<(String, String)> {
    status
        .details
        .as_ref()
        .map(|d| {
            d.causes
                .iter()
                .map(|c| (c.field.clone(), c.reason.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn has_cause(status: &Status, field: &str, reason: &str) -> bool {
    causes(status)
        .iter()
        .any(|(f, r)| f == field && r == reason)
}

/// Fields the schema does not specify are dropped on create, update and status writes
/// (with a `Warning` each, the default `fieldValidation=Warn`), kept where
/// `x-kubernetes-preserve-unknown-fields` or `additionalProperties` say so, and refused
/// with 400 under `fieldValidation=Strict`; server-side apply refuses them always.
#[tokio::test]
async fn unknown_fields_are_pruned_or_refused() {
    let (cluster, api) = with_specimens().await;
    let ns = cluster.namespace();
    let client = cluster.client();
    let path = format!("/apis/{GROUP}/v1/namespaces/{ns}/{SPECIMENS}");
    let body = json!({
        "apiVersion": format!("{GROUP}/v1"), "kind": "Specimen",
        "metadata": {"name": "pruned"},
        "spec": {
            "color": "red", "bogus": 1,
            "settings": {"retries": 1, "bogus": true},
            "labels": {"any": "key"},
            "items": [{"name": "a", "value": 1, "bogus": "x"}],
            "extras": {"known": 1, "anything": {"goes": ["here"]}},
            "template": {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}},
        },
    });
    let (code, warnings, created) = send(&client, "POST", &path, "application/json", &body).await;
    assert_eq!(code, 201, "{created}");
    let spec = &created["spec"];
    assert!(spec.get("bogus").is_none(), "{spec}");
    assert!(spec["settings"].get("bogus").is_none(), "{spec}");
    assert!(spec["items"][0].get("bogus").is_none(), "{spec}");
    assert_eq!(spec["items"][0]["value"], 1);
    assert_eq!(
        spec["labels"]["any"], "key",
        "additionalProperties keeps map keys"
    );
    assert_eq!(spec["extras"]["anything"]["goes"][0], "here", "preserved");
    assert_eq!(
        spec["template"]["data"]["k"], "v",
        "an embedded resource, preserved"
    );
    for field in ["spec.bogus", "spec.settings.bogus", "spec.items[0].bogus"] {
        let expected = format!("unknown field \\\"{field}\\\"");
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("299") && w.contains(&expected)),
            "a warning about {field} in {warnings:?}"
        );
    }
    let stored = api.get("pruned").await.unwrap();
    assert!(stored.data["spec"].get("bogus").is_none());

    // a merge patch adding an unknown field changes nothing
    let rv = stored.metadata.resource_version.clone();
    let patched = api
        .patch(
            "pruned",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"bogus": 2}})),
        )
        .await
        .unwrap();
    assert!(patched.data["spec"].get("bogus").is_none());
    assert_eq!(patched.metadata.resource_version, rv);

    // status writes are pruned too (a real server drops a status field the schema lacks)
    let status = api
        .patch_status(
            "pruned",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready", "bogus": "dropped"}})),
        )
        .await
        .unwrap();
    assert_eq!(status.data["status"], json!({"phase": "Ready"}));
    // server-side apply is stricter: a field the schema does not declare fails the
    // request (a 500 without a reason, kubernetes/kubernetes#139253), also without Strict
    let status = status_of(
        api.patch_status(
            "pruned",
            &PatchParams::apply("schema-test").force(),
            &Patch::Apply(
                json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Specimen",
                "status": {"phase": "Applied", "bogus": "refused"}}),
            ),
        )
        .await,
    );
    assert!(matches!(status.code, 400 | 500), "{status:?}");
    assert!(
        status
            .message
            .contains(".status.bogus: field not declared in schema"),
        "{status:?}"
    );
    let applied = api
        .patch_status(
            "pruned",
            &PatchParams::apply("schema-test").force(),
            &Patch::Apply(
                json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Specimen",
                "status": {"phase": "Applied"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(applied.data["status"]["phase"], "Applied");

    // Strict: refused, nothing stored
    let mut strict = body.clone();
    strict["metadata"]["name"] = json!("strict");
    let (code, _, answer) = send(
        &client,
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        "application/json",
        &strict,
    )
    .await;
    assert_eq!(
        (code, answer["reason"].as_str()),
        (400, Some("BadRequest")),
        "{answer}"
    );
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("unknown field \"spec.bogus\""),
        "{message}"
    );
    assert_eq!(status_of(api.get("strict").await).code, 404);
    let pp = PatchParams {
        field_validation: Some(ValidationDirective::Strict),
        ..PatchParams::default()
    };
    let status = status_of(
        api.patch("pruned", &pp, &Patch::Merge(json!({"spec": {"bogus": 3}})))
            .await,
    );
    assert!(matches!(status.code, 400 | 422), "{status:?}");
    assert!(status.message.contains("spec.bogus"), "{status:?}");
    // Ignore: dropped without a word
    let (code, warnings, _) = send(
        &client,
        "POST",
        &format!("{path}?fieldValidation=Ignore"),
        "application/json",
        &json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Specimen",
            "metadata": {"name": "ignored"}, "spec": {"color": "red", "bogus": 1}}),
    )
    .await;
    assert_eq!(code, 201);
    assert!(
        warnings.iter().all(|w| !w.contains("spec.bogus")),
        "{warnings:?}"
    );
}

/// Values the schema refuses are a 422 Invalid whose causes name each field (type,
/// enum, required, minimum, maximum, maxLength, pattern, int-or-string, date-time,
/// duplicate map-list keys, embedded resources without kind), on create and on status
/// writes; nothing is stored.
#[tokio::test]
async fn invalid_values_are_refused_with_their_fields() {
    let (_cluster, api) = with_specimens().await;
    let pp = PostParams::default();
    let bad = specimen(
        "bad",
        json!({
            "size": "big",
            "name": "waytoolongname",
            "port": true,
            "at": "yesterday",
            "items": [{"name": "a"}, {"name": "a"}],
            "template": {"apiVersion": "v1"},
        }),
    );
    let status = status_of(api.create(&pp, &bad).await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (422, "Invalid"),
        "{status:?}"
    );
    for (field, reason) in [
        ("spec.color", "FieldValueRequired"),
        ("spec.size", "FieldValueTypeInvalid"),
        ("spec.name", "FieldValueTooLong"),
        ("spec.port", "FieldValueTypeInvalid"),
        ("spec.at", "FieldValueTypeInvalid"),
        ("spec.items[1]", "FieldValueDuplicate"),
        ("spec.template.kind", "FieldValueRequired"),
    ] {
        assert!(
            has_cause(&status, field, reason),
            "{field} {reason} in {:?}",
            causes(&status)
        );
    }
    assert!(status.message.contains("spec.size"), "{}", status.message);
    assert_eq!(status_of(api.get("bad").await).code, 404, "nothing stored");

    for (spec, field, reason) in [
        (
            json!({"color": "purple"}),
            "spec.color",
            "FieldValueNotSupported",
        ),
        (
            json!({"color": "red", "size": 0}),
            "spec.size",
            "FieldValueInvalid",
        ),
        (
            json!({"color": "red", "size": 11}),
            "spec.size",
            "FieldValueInvalid",
        ),
        (
            json!({"color": "red", "name": "Caps"}),
            "spec.name",
            "FieldValueInvalid",
        ),
    ] {
        let status = status_of(api.create(&pp, &specimen("bad", spec.clone())).await);
        assert_eq!(status.code, 422, "{spec}");
        assert!(
            has_cause(&status, field, reason),
            "{spec}: {:?}",
            causes(&status)
        );
    }

    // int-or-string takes both; date-time takes RFC 3339
    for (name, port) in [("num", json!(8080)), ("str", json!("http"))] {
        api.create(
            &pp,
            &specimen(
                name,
                json!({"color": "green", "port": port, "at": "2026-01-02T03:04:05Z"}),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("port {port}: {e}"));
    }
    let status = status_of(
        api.patch_status(
            "num",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observedGeneration": "one"}})),
        )
        .await,
    );
    assert_eq!(status.code, 422);
    assert!(has_cause(
        &status,
        "status.observedGeneration",
        "FieldValueTypeInvalid"
    ));
}

/// Defaults of the schema are applied on create, also inside a defaulted object, and
/// never override a value; explicit nulls of non-nullable fields become the default.
#[tokio::test]
async fn defaults_are_applied() {
    let (_cluster, api) = with_specimens().await;
    let pp = PostParams::default();
    let created = api
        .create(&pp, &specimen("defaulted", json!({"color": "blue"})))
        .await
        .unwrap();
    assert_eq!(created.data["spec"]["mode"], "auto");
    assert_eq!(
        created.data["spec"]["settings"],
        json!({"retries": 3}),
        "nested defaults"
    );
    let explicit = api
        .create(
            &pp,
            &specimen(
                "explicit",
                json!({"color": "blue", "mode": "manual", "settings": {"retries": 0, "note": null}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(explicit.data["spec"]["mode"], "manual");
    assert_eq!(
        explicit.data["spec"]["settings"],
        json!({"retries": 0, "note": null}),
        "nullable keeps null"
    );
    let nulled = api
        .create(
            &pp,
            &specimen("nulled", json!({"color": "blue", "mode": null})),
        )
        .await
        .unwrap();
    assert_eq!(nulled.data["spec"]["mode"], "auto");
}

/// The operator's own CRDs (`crds/`) as a real server takes them: a DatabaseServer gets
/// its schema defaults (port 5432, environment production, default false; sslMode has
/// none, since unset means verify-full when a CA is given), loses a status field the schema lacks, and is refused with the field named
/// when required fields are missing or a value is outside its enum.
#[tokio::test]
async fn repository_crds_prune_default_and_validate() {
    let cluster = TestCluster::start().await;
    let ar = ApiResource {
        group: "servicedb.io".into(),
        version: "v1alpha1".into(),
        api_version: "servicedb.io/v1alpha1".into(),
        kind: "DatabaseServer".into(),
        plural: "databaseservers".into(),
    };
    let api: Api<DynamicObject> = Api::all_with(cluster.client(), &ar);
    let name = cluster.unique_name("schema");
    cluster.cleanup_later::<servicedb::api::DatabaseServer>(&name);
    let server = DynamicObject::new(&name, &ar).data(json!({"spec": {
        "host": "db.example", "adminSecretRef": {"name": "admin", "namespace": "ops"},
        "unknownSetting": 1,
    }}));
    let created = api.create(&PostParams::default(), &server).await.unwrap();
    let spec = &created.data["spec"];
    assert_eq!(spec["port"], 5432);
    assert!(spec.get("sslMode").is_none(), "{spec}");
    assert_eq!(spec["environment"], "production");
    assert_eq!(spec["default"], false);
    assert!(spec.get("unknownSetting").is_none());

    let status = api
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"serverVersion": "16.4", "notInSchema": "x"}})),
        )
        .await
        .unwrap();
    assert_eq!(status.data["status"], json!({"serverVersion": "16.4"}));
    api.delete(&name, &Default::default()).await.unwrap();

    let invalid = DynamicObject::new(&cluster.unique_name("schema"), &ar)
        .data(json!({"spec": {"sslMode": "sometimes", "adminSecretRef": {"name": "admin"}}}));
    let status = status_of(api.create(&PostParams::default(), &invalid).await);
    assert_eq!(status.code, 422);
    for (field, reason) in [
        ("spec.host", "FieldValueRequired"),
        ("spec.adminSecretRef.namespace", "FieldValueRequired"),
        ("spec.sslMode", "FieldValueNotSupported"),
    ] {
        assert!(
            has_cause(&status, field, reason),
            "{field} in {:?}",
            causes(&status)
        );
    }
}
