//! The fleet tests' rig: the operator on an instrumented client (faults can be injected),
//! the service `app`'s ConfigMaps and Tenants, and the tests' own Job controller, playing
//! Jobs round by round.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use servicedb::api::{ServiceDatabase, Tenant};

use super::fleet;
use crate::controller_common::*;
use crate::support;
use crate::support::kube::{JobRunner, TestCluster, eventually};
use crate::support::postgres::server as pg;

pub struct Setup {
    _cluster: TestCluster,
    pub ns: String,
    pub client: kube::Client,
    pub server: String,
    pub runner: JobRunner,
    pub operator: support::kube::Instrumented,
    _controller: Running,
}

pub async fn setup() -> Setup {
    setup_with(|c| c).await
}

/// [`setup`], the operator's settings changed by `config`.
pub async fn setup_with(
    config: impl FnOnce(servicedb::controller::Config) -> servicedb::controller::Config,
) -> Setup {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let operator = cluster.instrumented_client();
    let controller = start(operator.client.clone(), config(fast_config(&ns)));
    let runner = cluster
        .job_runner()
        .program("servicedb", env!("CARGO_BIN_EXE_servicedb"));
    Setup {
        _cluster: cluster,
        ns,
        client,
        server,
        runner,
        operator,
        _controller: controller,
    }
}

impl Setup {
    pub async fn config_map(&self, name: &str, files: &[(&str, &str)]) {
        let data: serde_json::Map<String, serde_json::Value> = files
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.ns);
        // Replaced as a whole (a file taken out goes).
        let _ = api.delete(name, &Default::default()).await;
        eventually("the old ConfigMap to be gone", || {
            let api = api.clone();
            async move { matches!(api.get_opt(name).await, Ok(None)).then_some(()) }
        })
        .await;
        apply(
            &api,
            name,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}),
        )
        .await;
    }

    /// The PerTenant service `app`: its ConfigMap `app-migrations` with `files`, and
    /// `rollout` as its spec.migrations.rollout.
    pub async fn service(&self, files: &[(&str, &str)], rollout: serde_json::Value) {
        self.config_map("app-migrations", files).await;
        super::per_tenant(
            &self.client,
            &self.ns,
            "app",
            json!({"server": self.server, "migrations": {
                "configMaps": ["app-migrations"],
                "rollout": rollout,
            }}),
        )
        .await;
    }

    pub async fn tenant(&self, name: &str, canary: bool) {
        let api: Api<Tenant> = Api::namespaced(self.client.clone(), &self.ns);
        let labels = if canary {
            json!({"servicedb.io/canary": "true"})
        } else {
            json!({})
        };
        apply(
            &api,
            name,
            json!({
                "apiVersion": "servicedb.io/v1alpha1", "kind": "Tenant",
                "metadata": {"name": name, "namespace": self.ns, "labels": labels},
                "spec": {"services": ["app"]},
            }),
        )
        .await;
    }

    /// Unfinished Jobs of `app` (its tenants' and its batch Jobs).
    pub async fn pending_jobs(&self) -> Vec<Job> {
        self.runner
            .pending(Some(&self.ns), Some("servicedb.io/service-database=app"))
            .await
            .expect("listing Jobs")
    }

    /// Unfinished tenant Jobs of `app`, as (tenant, Job name).
    pub async fn pending(&self) -> Vec<(String, String)> {
        pairs(&self.pending_jobs().await)
    }

    /// Every Job of `app`'s tenants, per tenant.
    pub async fn jobs(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        let jobs: Vec<Job> = Api::<Job>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default().labels("servicedb.io/service-database=app"))
            .await
            .expect("listing Jobs")
            .items;
        for j in jobs {
            let t = j.labels().get("servicedb.io/tenant").cloned();
            *out.entry(t.unwrap_or_default()).or_default() += 1;
        }
        out
    }

    pub async fn run(&self, job: &str) -> bool {
        self.runner
            .run(&self.ns, job)
            .await
            .expect("running the Job")
            .succeeded
    }

    /// Plays Jobs as they appear until `done`: each round lets the controllers settle,
    /// lists the unfinished Jobs, calls `seen` with them (as tenant and Job name), runs them.
    pub async fn play_until(
        &self,
        what: &str,
        mut seen: impl FnMut(&[(String, String)]),
        done: impl Fn(&[Tenant], &ServiceDatabase) -> bool,
    ) {
        self.play_jobs_until(what, |jobs| seen(&pairs(jobs)), done)
            .await
    }

    /// [`Setup::play_until`], `seen` getting the Jobs themselves.
    pub async fn play_jobs_until(
        &self,
        what: &str,
        mut seen: impl FnMut(&[Job]),
        done: impl Fn(&[Tenant], &ServiceDatabase) -> bool,
    ) {
        let deadline = std::time::Instant::now() + Duration::from_secs(240);
        loop {
            if done(&self.tenants().await, &self.sdb().await) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let pending = self.pending_jobs().await;
            seen(&pending);
            for job in &pending {
                self.run(&job.name_any()).await;
            }
        }
    }

    pub async fn tenants(&self) -> Vec<Tenant> {
        fleet::tenants(&self.client, &self.ns).await
    }

    pub async fn sdb(&self) -> ServiceDatabase {
        fleet::app(&self.client, &self.ns).await
    }

    pub async fn wait_sdb(
        &self,
        what: &str,
        cond: impl Fn(&ServiceDatabase) -> bool + Send + 'static,
    ) -> ServiceDatabase {
        fleet::wait_app(&self.client, &self.ns, what, cond).await
    }

    /// RolloutPaused Warnings about `app`, each repetition of a series counted.
    pub async fn pauses(&self) -> i32 {
        Api::<Event>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default())
            .await
            .expect("listing Events")
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("app")
                    && e.reason.as_deref() == Some("RolloutPaused")
                    && e.type_.as_deref() == Some("Warning")
            })
            .map(|e| e.series.map_or(1, |s| s.count))
            .sum()
    }

    pub async fn annotate(&self, key: &str, value: &str) {
        Api::<ServiceDatabase>::namespaced(self.client.clone(), &self.ns)
            .patch(
                "app",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {key: value}}})),
            )
            .await
            .expect("annotating the ServiceDatabase");
    }
}

/// Jobs as (tenant, Job name); a batch Job has no tenant.
fn pairs(jobs: &[Job]) -> Vec<(String, String)> {
    jobs.iter()
        .map(|j| {
            let tenant = j.labels().get("servicedb.io/tenant").cloned();
            (tenant.unwrap_or_default(), j.name_any())
        })
        .collect()
}
