//! Conformance of the fake's RBAC (`tests/support/kube/rbac.rs`) with kube-apiserver's: a
//! client impersonating a ServiceAccount may do exactly what its bindings grant, and is
//! refused with the same 403 `Status` (reason Forbidden, the message naming user, verb,
//! resource with subresource, API group and namespace or cluster scope). Runs against
//! `SERVICEDB_TEST_KUBECONFIG`'s cluster too.

mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use kube::api::{Api, ListParams, Patch, PatchParams, WatchParams};
use serde_json::json;
use servicedb::api::DatabaseServer;
use support::kube::{TEST_FIELD_MANAGER, TestCluster, eventually};

async fn apply<K>(api: &Api<K>, name: &str, body: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(TEST_FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {name}: {e}"));
}

/// The refusal a request got: (code, reason, message, details group/kind/name).
fn refusal<T: std::fmt::Debug>(
    result: Result<T, kube::Error>,
) -> (u16, String, String, (String, String, String)) {
    match result {
        Err(kube::Error::Api(s)) => {
            let d = s.details.clone().expect("a 403 has details");
            (
                s.code,
                s.reason.clone(),
                s.message.clone(),
                (d.group, d.kind, d.name),
            )
        }
        other => panic!("expected a 403, got {other:?}"),
    }
}

/// Locks the rules' semantics and the 403's wording: a Role's verbs on one resource in
/// its namespace, resourceNames, a subresource named on its own, a ClusterRole bound by
/// a RoleBinding (its rules in that namespace only), and everything else refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonated_requests_get_what_the_bindings_grant_and_a_real_403_otherwise() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let other = cluster.create_namespace("sdbtest").await;
    let client = cluster.client();
    let role_name = cluster.unique_name("reader");
    cluster.cleanup_later::<ClusterRole>(&role_name);
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    apply(
        &sas,
        "app",
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app"}}),
    )
    .await;
    let roles: Api<Role> = Api::namespaced(client.clone(), &ns);
    apply(
        &roles,
        "app",
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "app"},
            "rules": [
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]},
                {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["mine"], "verbs": ["get"]},
                {"apiGroups": ["servicedb.io"], "resources": ["servicedatabases/status"], "verbs": ["*"]},
                {"apiGroups": [""], "resources": ["serviceaccounts"], "resourceNames": ["app"], "verbs": ["list"]},
            ],
        }),
    )
    .await;
    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    apply(
        &cluster_roles,
        &role_name,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": role_name},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["watch"]}],
        }),
    )
    .await;
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);
    for (name, kind, role) in [
        ("app", "Role", "app"),
        ("watch", "ClusterRole", role_name.as_str()),
    ] {
        apply(
            &bindings,
            name,
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": ns}],
            }),
        )
        .await;
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);

    apply(
        &cms,
        "settings",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}}),
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for name in ["mine", "theirs"] {
        apply(
            &secrets,
            name,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}}),
        )
        .await;
    }

    let user = format!("system:serviceaccount:{ns}:app");
    let app = cluster.impersonating_client(&user);
    let app_cms: Api<ConfigMap> = Api::namespaced(app.clone(), &ns);
    // A real cluster's RBAC cache takes a moment to see the bindings.
    eventually("the bindings to take effect", || {
        let app_cms = app_cms.clone();
        async move { app_cms.get("settings").await.ok() }
    })
    .await;
    app_cms
        .list(&ListParams::default())
        .await
        .expect("list is granted");
    let app_secrets: Api<Secret> = Api::namespaced(app.clone(), &ns);
    app_secrets
        .get("mine")
        .await
        .expect("resourceNames grants mine");

    // A list narrowed to one name by a field selector is that name's, for resourceNames.
    let app_sas: Api<ServiceAccount> = Api::namespaced(app.clone(), &ns);
    app_sas
        .list(&ListParams::default().fields("metadata.name=app"))
        .await
        .expect("resourceNames grants a list of that one name");
    let (_, _, message, _) = refusal(app_sas.list(&ListParams::default()).await);
    assert!(
        message.contains("cannot list resource \"serviceaccounts\""),
        "{message}"
    );

    let (code, reason, message, details) = refusal(app_secrets.get("theirs").await);
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        message,
        format!(
            "secrets \"theirs\" is forbidden: User \"{user}\" cannot get resource \"secrets\" in API group \"\" in the namespace \"{ns}\""
        )
    );
    assert_eq!(details, (String::new(), "secrets".into(), "theirs".into()));

    let (_, _, message, details) = refusal(app_secrets.list(&ListParams::default()).await);
    assert_eq!(
        message,
        format!(
            "secrets is forbidden: User \"{user}\" cannot list resource \"secrets\" in API group \"\" in the namespace \"{ns}\""
        )
    );
    assert_eq!(details, (String::new(), "secrets".into(), String::new()));

    let (_, _, message, _) = refusal(
        app_cms
            .patch(
                "settings",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"a": "b"}})),
            )
            .await,
    );
    assert!(
        message.contains("cannot patch resource \"configmaps\""),
        "{message}"
    );

    // The ClusterRole bound by a RoleBinding grants its `watch` in `ns`, and nothing in
    // another namespace or cluster-wide.
    let stream = app_cms
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .expect("watch is granted in ns by the bound ClusterRole");
    drop(stream);
    let (_, _, message, _) = refusal(
        Api::<ConfigMap>::namespaced(app.clone(), &other)
            .get("kube-root-ca.crt")
            .await,
    );
    assert!(
        message.ends_with(&format!("in the namespace \"{other}\"")),
        "{message}"
    );
    let (_, _, message, details) = refusal(Api::<Namespace>::all(app.clone()).get(&ns).await);
    assert_eq!(
        message,
        format!(
            "namespaces \"{ns}\" is forbidden: User \"{user}\" cannot get resource \"namespaces\" in API group \"\" at the cluster scope"
        )
    );
    assert_eq!(details.1, "namespaces");
    let (_, _, message, details) = refusal(
        Api::<DatabaseServer>::all(app.clone())
            .list(&ListParams::default())
            .await,
    );
    assert_eq!(
        message,
        format!(
            "databaseservers.servicedb.io is forbidden: User \"{user}\" cannot list resource \"databaseservers\" in API group \"servicedb.io\" at the cluster scope"
        )
    );
    assert_eq!(details.0, "servicedb.io");

    // A subresource is its own resource: status granted, the object itself not.
    let sdbs: Api<servicedb::api::ServiceDatabase> = Api::namespaced(app.clone(), &ns);
    let (_, _, message, _) = refusal(sdbs.get("orders").await);
    assert!(
        message.contains("cannot get resource \"servicedatabases\" in API group \"servicedb.io\""),
        "{message}"
    );
    let status = sdbs.get_status("orders").await;
    match status {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404, "status is granted: {s:?}"),
        other => panic!("expected 404 for a missing object, got {other:?}"),
    }
}
