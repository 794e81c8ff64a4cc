//! The one place Kubernetes-facing tests get an API server from.
//!
//! `TestCluster::start()` gives each test its own fake API server (in-process, on a free
//! port of 127.0.0.1, plain HTTP, on the test's runtime) or, when the environment variable
//! `SERVICEDB_TEST_KUBECONFIG` names a kubeconfig, a client of that real cluster. Either
//! way the test gets a fresh uniquely named namespace (`sdbtest-xxxxx`) and the CRDs of
//! the repository's `crds/` directory installed (server-side apply, then wait for
//! `Established` and for the resource to be served), so the same test code runs
//! against both, in parallel.
//!
//! Cleanup: the fake simply goes away with the `TestCluster`. On a real cluster, dropping
//! the `TestCluster` (also while unwinding from a panic) strips the finalizers of custom
//! objects in the test's namespaces (no operator is left to remove them), deletes
//! cluster-scoped objects registered with [`TestCluster::cleanup_later`], and deletes
//! the namespaces. It does so on a separate thread with its own runtime and client,
//! because the test's runtime may be shutting down; [`TestCluster::cleanup`] does the
//! same explicitly. CRDs are left installed: tests running in parallel share them, and
//! installing is an idempotent server-side apply.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::instrument::{Instrumented, instrument};
use super::jobs::JobRunner;
use super::server::{FakeApiServer, FakeOptions};

/// Names a kubeconfig of a real cluster (with its Job controller off) to run against.
pub const KUBECONFIG_ENV: &str = "SERVICEDB_TEST_KUBECONFIG";
/// The field manager of everything the test support writes.
pub const TEST_FIELD_MANAGER: &str = "servicedb-tests";
/// How long helpers wait for the cluster to get somewhere. Generous: CI runs PostgreSQL
/// servers and test binaries at once on 2 cores, where provisioning behind a server's turn
/// takes tens of seconds; a passing wait returns as soon as it is true.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Label on every namespace a test creates, to find leftovers on a real cluster.
pub const TEST_NAMESPACE_LABEL: &str = "servicedb.io/test";

#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Test namespaces are named `<prefix>-<5 random characters>`.
    pub namespace_prefix: String,
    /// Install the CRDs of the repository's `crds/` directory, if it exists.
    pub install_repo_crds: bool,
    /// Options of the fake (ignored on a real cluster).
    pub fake: FakeOptions,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            namespace_prefix: "sdbtest".into(),
            install_repo_crds: true,
            fake: FakeOptions::default(),
        }
    }
}

enum Backend {
    Fake(FakeApiServer),
    Real {
        kubeconfig: PathBuf,
        // boxed: a Config is much larger than the fake's handle
        config: Box<kube::Config>,
    },
}

/// What to remove at the end on a real cluster.
#[derive(Clone, Default)]
struct CleanupList {
    namespaces: Vec<String>,
    /// Namespaced custom kinds whose objects may carry finalizers.
    kinds: Vec<ApiResource>,
    cluster_objects: Vec<(ApiResource, String)>,
    /// Objects in namespaces the test did not create (`default`): (kind, namespace, name).
    namespaced_objects: Vec<(ApiResource, String, String)>,
}

pub struct TestCluster {
    backend: Backend,
    client: kube::Client,
    namespace: String,
    cleanup: Mutex<CleanupList>,
    cleaned: bool,
}

fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..n)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

async fn real_client(path: &Path) -> (kube::Client, kube::Config) {
    let kubeconfig = Kubeconfig::read_from(path).unwrap_or_else(|e| {
        panic!(
            "{KUBECONFIG_ENV}={}: cannot read the kubeconfig: {e}",
            path.display()
        )
    });
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{KUBECONFIG_ENV}={}: unusable kubeconfig: {e}",
                path.display()
            )
        });
    let client = kube::Client::try_from(config.clone()).unwrap_or_else(|e| {
        panic!(
            "{KUBECONFIG_ENV}={}: cannot build a client: {e}",
            path.display()
        )
    });
    (client, config)
}

/// Waits for `cond` on the object `name`, or panics naming `what` after
/// [`DEFAULT_TIMEOUT`]. Watch-based, so no sleeps.
pub async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, cond: impl Condition<K>) -> Option<K>
where
    K: Clone + Debug + Send + DeserializeOwned + Resource + 'static,
{
    match tokio::time::timeout(DEFAULT_TIMEOUT, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(obj)) => obj,
        Ok(Err(e)) => panic!("watching {name} while waiting for {what}: {e}"),
        Err(_) => panic!("timed out after {DEFAULT_TIMEOUT:?} waiting for {what} ({name})"),
    }
}

/// Polls `f` every 50 ms until it returns Some, or panics naming `what` after
/// [`DEFAULT_TIMEOUT`]. For conditions no single watch can express.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEFAULT_TIMEOUT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {DEFAULT_TIMEOUT:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl TestCluster {
    pub async fn start() -> TestCluster {
        TestCluster::start_with(ClusterOptions::default()).await
    }

    pub async fn start_with(options: ClusterOptions) -> TestCluster {
        let (backend, client) = match std::env::var_os(KUBECONFIG_ENV).filter(|v| !v.is_empty()) {
            Some(path) => {
                let path = PathBuf::from(path);
                let (client, config) = real_client(&path).await;
                (
                    Backend::Real {
                        kubeconfig: path,
                        config: Box::new(config),
                    },
                    client,
                )
            }
            None => {
                let fake = FakeApiServer::start_with(options.fake.clone()).await;
                let client = fake.client();
                (Backend::Fake(fake), client)
            }
        };
        let mut cluster = TestCluster {
            backend,
            client,
            namespace: String::new(),
            cleanup: Mutex::new(CleanupList::default()),
            cleaned: false,
        };
        cluster.namespace = cluster.create_namespace(&options.namespace_prefix).await;
        let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
        if options.install_repo_crds && crds.is_dir() {
            cluster.install_crds_from(&crds).await;
        }
        cluster
    }

    /// A plain client (no recording, no faults) for test setup and assertions.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A new client whose requests are recorded and subject to fault rules; give it to
    /// the code under test.
    pub fn instrumented_client(&self) -> Instrumented {
        instrument(self.client.clone())
    }

    /// A client acting as `user` (e.g. `system:serviceaccount:<ns>:<name>`) through
    /// impersonation, as `kubectl --as` does: the real cluster's RBAC, or the fake's
    /// (`rbac.rs`), decides what it may do.
    pub fn impersonating_client(&self, user: &str) -> kube::Client {
        let mut config = self.config();
        config.auth_info.impersonate = Some(user.to_string());
        kube::Client::try_from(config).expect("a client impersonating a user")
    }

    /// [`TestCluster::instrumented_client`], acting as `user`.
    pub fn instrumented_client_as(&self, user: &str) -> Instrumented {
        instrument(self.impersonating_client(user))
    }

    /// The test's own namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn is_real(&self) -> bool {
        matches!(self.backend, Backend::Real { .. })
    }

    /// The fake, for fake-only knobs (history compaction, ...). On a real cluster prints
    /// a note that the check `what` is skipped and returns None.
    pub fn fake_only(&self, what: &str) -> Option<&FakeApiServer> {
        match &self.backend {
            Backend::Fake(fake) => Some(fake),
            Backend::Real { .. } => {
                eprintln!("note: skipped on a real cluster (fake-only check): {what}");
                None
            }
        }
    }

    /// The kube config of the API server (for code under test that builds its own client).
    pub fn config(&self) -> kube::Config {
        match &self.backend {
            Backend::Fake(fake) => fake.config(),
            Backend::Real { config, .. } => (**config).clone(),
        }
    }

    /// A kubeconfig file for a subprocess (e.g. `servicedb run`): the real one, or one
    /// written into `dir` that points at the fake, with the test namespace as default.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        match &self.backend {
            Backend::Real { kubeconfig, .. } => kubeconfig.clone(),
            Backend::Fake(fake) => {
                let path = dir.join("kubeconfig");
                fake.write_kubeconfig(&path, &self.namespace);
                path
            }
        }
    }

    /// A name unique to this test run: `<prefix>-<5 random characters>`. Use it for
    /// cluster-scoped objects, which tests running in parallel share.
    pub fn unique_name(&self, prefix: &str) -> String {
        format!("{prefix}-{}", random_suffix(5))
    }

    /// Creates another namespace, cleaned up like the test's own.
    pub async fn create_namespace(&self, prefix: &str) -> String {
        let api: Api<Namespace> = Api::all(self.client.clone());
        for _ in 0..5 {
            let name = self.unique_name(prefix);
            let ns: Namespace = serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {TEST_NAMESPACE_LABEL: "true"}}
            }))
            .expect("a valid Namespace");
            match api.create(&PostParams::default(), &ns).await {
                Ok(_) => {
                    self.cleanup
                        .lock()
                        .expect("cleanup lock")
                        .namespaces
                        .push(name.clone());
                    return name;
                }
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => panic!("creating test namespace {name}: {e}"),
            }
        }
        panic!("could not find a free namespace name with prefix {prefix}");
    }

    /// Deletes the cluster-scoped object `name` of kind `K` at cleanup (real clusters).
    pub fn cleanup_later<K: Resource<DynamicType = ()>>(&self, name: &str) {
        let ar = ApiResource::erase::<K>(&());
        self.cleanup
            .lock()
            .expect("cleanup lock")
            .cluster_objects
            .push((ar, name.to_string()));
    }

    /// Deletes `namespace/name` of the kind `ar` at cleanup (real clusters), for objects in
    /// a namespace the test shares with others, such as `default`.
    pub fn cleanup_later_in(&self, ar: &ApiResource, namespace: &str, name: &str) {
        self.cleanup
            .lock()
            .expect("cleanup lock")
            .namespaced_objects
            .push((ar.clone(), namespace.to_string(), name.to_string()));
    }

    /// Installs (server-side applies) a CRD and waits until its kind is served.
    pub async fn install_crd(&self, crd: &CustomResourceDefinition) {
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let name = crd.name_any();
        let mut crd = crd.clone();
        crd.metadata.managed_fields = None;
        crd.metadata.resource_version = None;
        crd.metadata.uid = None;
        crd.metadata.creation_timestamp = None;
        crd.status = None;
        api.patch(
            &name,
            &PatchParams::apply(TEST_FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("installing CRD {name}: {e}"));
        wait_for(
            &api,
            &name,
            "the CRD to be Established",
            conditions::is_crd_established(),
        )
        .await;

        let spec = &crd.spec;
        let version = spec
            .versions
            .iter()
            .find(|v| v.storage)
            .unwrap_or_else(|| panic!("CRD {name} has no storage version"));
        let ar = ApiResource {
            group: spec.group.clone(),
            version: version.name.clone(),
            api_version: format!("{}/{}", spec.group, version.name),
            kind: spec.names.kind.clone(),
            plural: spec.names.plural.clone(),
        };
        // Established comes slightly before the endpoint is served on a real cluster
        let probe: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
        eventually(&format!("the {} endpoint to be served", ar.plural), || {
            let probe = probe.clone();
            async move { probe.list(&ListParams::default().limit(1)).await.ok() }
        })
        .await;
        if spec.scope == "Namespaced" {
            self.cleanup.lock().expect("cleanup lock").kinds.push(ar);
        }
    }

    /// Installs every CRD found in the YAML files (multi-document) of `dir`.
    pub async fn install_crds_from(&self, dir: &Path) {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let value: serde_json::Value = serde::Deserialize::deserialize(doc)
                    .unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", file.display()));
                if value.is_null() || value["kind"] != "CustomResourceDefinition" {
                    continue;
                }
                let crd: CustomResourceDefinition =
                    serde_json::from_value(value).unwrap_or_else(|e| {
                        panic!("{}: not a CustomResourceDefinition: {e}", file.display())
                    });
                self.install_crd(&crd).await;
            }
        }
    }

    /// The Job controller stand-in, with this cluster's client.
    pub fn job_runner(&self) -> JobRunner {
        JobRunner::new(self.client.clone())
    }

    /// Removes what the test created (real clusters; nothing to do for the fake).
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        if self.is_real() {
            let list = self.cleanup.lock().expect("cleanup lock").clone();
            cleanup_real(self.client.clone(), list).await;
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let Backend::Real { kubeconfig, .. } = &self.backend else {
            return;
        };
        if self.cleaned {
            return;
        }
        let list = self.cleanup.lock().map(|l| l.clone()).unwrap_or_default();
        let kubeconfig = kubeconfig.clone();
        // the test's runtime may be gone or blocked here: use a thread with its own
        let worker = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let (client, _) = real_client(&kubeconfig).await;
                let _ = tokio::time::timeout(DEFAULT_TIMEOUT, cleanup_real(client, list)).await;
            });
        });
        let _ = worker.join();
    }
}

async fn cleanup_real(client: kube::Client, list: CleanupList) {
    let strip = PatchParams::default();
    let no_finalizers = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    for (ar, name) in &list.cluster_objects {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
        let _ = api.patch(name, &strip, &no_finalizers).await;
        let _ = api.delete(name, &Default::default()).await;
    }
    for (ar, ns, name) in &list.namespaced_objects {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
        let _ = api.delete(name, &Default::default()).await;
    }
    for ns in &list.namespaces {
        for ar in &list.kinds {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
            let Ok(objects) = api.list(&ListParams::default()).await else {
                continue;
            };
            for obj in objects.items.iter().filter(|o| !o.finalizers().is_empty()) {
                let _ = api.patch(&obj.name_any(), &strip, &no_finalizers).await;
            }
        }
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let _ = namespaces.delete(ns, &Default::default()).await;
    }
}
