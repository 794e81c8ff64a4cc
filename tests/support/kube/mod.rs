//! Kubernetes for tests: an in-process fake API server that a real `kube::Client` and
//! kube-runtime `Controller` talk to over HTTP, switchable to a real cluster with
//! `SERVICEDB_TEST_KUBECONFIG`, plus client-side request recording and fault injection
//! and a Job controller stand-in.
//!
//! ```ignore
//! let cluster = TestCluster::start().await;            // fake, or the real cluster
//! let ns = cluster.namespace();                        // fresh: sdbtest-xxxxx
//! let operator = cluster.instrumented_client();        // recorded, faultable
//! operator.faults.fail_next("patch", "*/widgets/*", 409, 1);
//! // ... run the code under test with operator.client ...
//! cluster.job_runner().program("servicedb", env!("CARGO_BIN_EXE_servicedb"))
//!     .run_next(Some(ns), None).await?;
//! assert!(operator.requests.permissions().contains(&("jobs.batch".into(), "create".into())));
//! ```
//!
//! Modules: `cluster` (the entry point), `server` (HTTP and routing), `discovery`,
//! `registry` (kinds; CRDs register theirs), `store` + `write` (objects, the write path
//! of every verb), `admission` (what a write goes through before it is stored), `watch`, `patch`, `fieldpath` + `managed` (managedFields and
//! server-side apply), `schema` (list types), `pruning` + `schema_validation` (custom
//! resources against their CRD's schema), `selectors`, `defaults` + `validation`,
//! `gc` (garbage collector and namespace controller), `rbac` (the authorizer for
//! impersonated requests), `status` (errors as `Status`),
//! `instrument` + `faults` + `record` (the client-side middleware), `jobs` + `pod_env`
//! (the Job controller stand-in), `job_pods` (the Pod each of its runs leaves).
//!
//! What the fake does as a v1.33 cluster does (and its conformance suites,
//! `tests/fake_apiserver_*.rs`, check against a real one): every namespace holds the
//! `kube-root-ca.crt` ConfigMap and the `default` ServiceAccount; strategic merge orders
//! lists as apimachinery does; a watcher whose selector an object stops matching gets
//! DELETED with the old object; metadata-only list and watch; JSON patch `test`; the
//! generation goes up when deletion starts; Pods need their ServiceAccount; a batch/v1
//! Job deleted without a propagation policy orphans its Pods; events.k8s.io/v1 Events
//! are validated; bookmarks come before a watch times out.
//!
//! What the fake simplifies, compared with a real API server:
//! - no authentication, admission webhooks, API priority and fairness, Pod Security
//!   admission; RBAC only for requests that impersonate a user (`rbac`: stored Roles,
//!   ClusterRoles and bindings, 403 as a real server words it; requests without
//!   `Impersonate-User` are cluster-admin); of the built-in admission plugins only NamespaceLifecycle and
//!   ServiceAccount (a Pod's ServiceAccount must exist);
//! - custom resources are pruned, defaulted and validated from the storage version's
//!   `openAPIV3Schema` (unknown fields dropped with a warning, or 400 under
//!   `fieldValidation=Strict`, and always refused by server-side apply; type, enum, required, bounds, lengths, pattern,
//!   date-time, list uniqueness, int-or-string, preserve-unknown-fields,
//!   embedded-resource), but CEL rules (`x-kubernetes-validations`) are not evaluated,
//!   formats other than date-time are not checked, invalid values are not ratcheted on
//!   update, the CRD's own schema is not checked for being structural, and the
//!   versions of a CRD share one storage without conversion;
//! - core kinds are not pruned: an unknown field in a ConfigMap is kept (a real server
//!   drops it while decoding);
//! - validation of core kinds covers what operator code plausibly gets wrong (names,
//!   labels, finalizers, owner references, Secret keys, Job templates and Job status
//!   transitions, events.k8s.io Events, CRD names), not the full rules of every kind
//!   (Pod specs and statuses, Leases are not validated);
//! - no pods run and nothing schedules (Jobs are run by [`JobRunner`], which records
//!   each run as a Pod); grace periods are ignored (deletion is immediate once
//!   finalizers are gone);
//! - the garbage collector, namespace controller, root CA publisher and service account
//!   controller run synchronously inside the write that triggers them, and the
//!   namespace controller deletes all kinds at once (a real cluster takes milliseconds
//!   to seconds, one kind after another; tests wait with [`wait_for`]/[`eventually`],
//!   never assume);
//! - one watch history for the whole server (the real watch cache has one per
//!   resource); lists ignore `resourceVersion`/`resourceVersionMatch` and always serve
//!   the current state; `continue` tokens are not snapshots, and expire only with
//!   [`FakeApiServer::compact_history`] (410 Expired); bookmarks come every
//!   [`FakeOptions::bookmark_interval`] (5 s; a real server: 1 min) and 2 s before a
//!   watch's timeout;
//! - core `v1` Events and `events.k8s.io/v1` Events are separate collections (one
//!   storage with two views on a real cluster);
//! - server-side apply tracks ownership per leaf field with the list types of the CRD
//!   schema or of a table of core list keys; no `x-kubernetes-map-type`, no per-version
//!   field sets; strategic merge patch supports the common directives only (`patch.rs`);
//! - no Table output, protobuf, websockets (exec, attach, logs, port-forward), `/scale`,
//!   or `/finalize`.

// Each test binary that includes `support` uses a different part of this module.
#![allow(dead_code)]

mod admission;
mod base64;
mod cluster;
mod defaults;
mod discovery;
mod faults;
mod fieldpath;
mod gc;
mod instrument;
mod job_pods;
mod jobs;
mod managed;
mod patch;
mod pod_env;
mod pruning;
mod rbac;
mod record;
mod registry;
mod request_info;
mod schema;
mod schema_validation;
mod selectors;
mod server;
mod status;
mod store;
mod validation;
mod watch;
mod write;

// the re-exports are the API; each test binary uses some of it
#[allow(unused_imports)]
pub use cluster::{
    ClusterOptions, DEFAULT_TIMEOUT, KUBECONFIG_ENV, TEST_FIELD_MANAGER, TEST_NAMESPACE_LABEL,
    TestCluster, eventually, wait_for,
};
#[allow(unused_imports)]
pub use faults::{Fault, Faults};
#[allow(unused_imports)]
pub use instrument::{Instrumented, Served, instrument, serve_instrumented};
#[allow(unused_imports)]
pub use jobs::{JobError, JobRun, JobRunner};
#[allow(unused_imports)]
pub use rbac::{PolicyRule, User as RbacUser, request_name};
#[allow(unused_imports)]
pub use record::{RecordedRequest, RequestLog};
#[allow(unused_imports)]
pub use request_info::{RequestInfo, parse as parse_request};
#[allow(unused_imports)]
pub use server::{FakeApiServer, FakeOptions};
