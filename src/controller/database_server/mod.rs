//! The DatabaseServer controller: log in with the admin Secret, check the admin's
//! privileges, count the managed databases, and report `Ready` (with `serverVersion`,
//! `databaseCount`, `observedGeneration`). Admin and CA Secrets must be in the operator's
//! namespace (`Config::operator_namespace`; elsewhere: Stalled, AdminSecretInvalid, unless an
//! installation in that namespace already reports on it); that
//! namespace's Secrets are watched (metadata only), so a fixed password is picked up at once; `owns` cannot map namespaced Secrets to a
//! cluster-scoped owner (kube-rs/kube#293), hence `watches` with a mapper.
pub mod connect;
pub mod probe;
pub mod registry;
pub mod spec;
pub mod status;

use std::sync::Arc;

use futures::StreamExt;
use futures::future::{BoxFuture, Shared};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use self::connect::ServerProblem;
use self::probe::{missing_privileges, probe};
use self::status::{Health, desired_status};
use super::Context;
use super::events::{self, reasons as event_reasons};
use super::metrics::Kind;
use super::status_patch::apply_status;
use crate::api::DatabaseServer;
use crate::api::conditions::{self, find_condition, reasons, types};
use crate::api::validation::{describe, validate_database_server};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing the status of DatabaseServer {name}: {source}")]
    Status { name: String, source: kube::Error },
    #[error("DatabaseServer {name}: {source}")]
    Server { name: String, source: ServerProblem },
    #[error("reading DatabaseServer {name}: {source}")]
    Read { name: String, source: kube::Error },
}

impl Error {
    /// The category in `servicedb_reconcile_errors_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Status { .. } | Error::Read { .. } => "KubernetesApi",
            Error::Server { source, .. } => source.reason(),
        }
    }
}

/// Runs the controller until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: Shared<BoxFuture<'static, ()>>) {
    let client = ctx.client.clone();
    let controller = Controller::new(
        Api::<DatabaseServer>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = controller.store();
    let synced = ctx.config.health.synced_when(controller.store());
    // Admin and CA Secrets must live in the operator's namespace (connect refuses others),
    // so only that namespace is watched, metadata only: least privilege under a chart that
    // watches one namespace.
    let secrets = Api::<PartialObjectMeta<Secret>>::namespaced(client, &operator_namespace(&ctx));
    let run = controller
        .with_config(controller::Config::default().concurrency(ctx.config.concurrency))
        .watches(secrets, watcher::Config::default(), move |secret| {
            let (ns, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
            store
                .state()
                .into_iter()
                .filter(|d| uses_secret(d, &ns, &name))
                .map(|d| ObjectRef::from_obj(&*d))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(server = %obj.name, "reconciled"),
                Err(controller::Error::ObjectNotFound(obj)) => {
                    tracing::debug!(server = %obj.name, "gone before its reconcile")
                }
                Err(e) => tracing::warn!(error = %e, "DatabaseServer reconcile failed"),
            }
        });
    futures::join!(run, synced);
}

/// Where admin and CA Secrets must live: the configured operator namespace, else the
/// client's default namespace.
pub fn operator_namespace(ctx: &Context) -> String {
    ctx.config
        .operator_namespace
        .clone()
        .unwrap_or_else(|| ctx.client.default_namespace().to_string())
}

/// Whether the Secret `ns/name` holds the DatabaseServer's admin credentials or CA.
pub fn uses_secret(dbs: &DatabaseServer, ns: &str, name: &str) -> bool {
    let admin = &dbs.spec.admin_secret_ref;
    (admin.namespace == ns && admin.name == name)
        || dbs
            .spec
            .ca_secret_ref
            .as_ref()
            .is_some_and(|ca| ca.namespace == ns && ca.name == name)
}

fn error_policy(dbs: Arc<DatabaseServer>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(server = %dbs.name_any(), error = %error, "will retry");
    ctx.retry_after_failure(&dbs.uid().unwrap_or_default())
}

#[tracing::instrument(skip_all, fields(server = %dbs.name_any()))]
async fn reconcile(dbs: Arc<DatabaseServer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = dbs.uid().unwrap_or_default();
    let started = std::time::Instant::now();
    let limit = ctx.config.reconcile_timeout;
    let api = Api::<DatabaseServer>::all(ctx.client.clone());
    let work = async {
        let latest = super::freshness::latest(&api, dbs.clone(), &ctx.written)
            .await
            .map_err(|source| Error::Read {
                name: dbs.name_any(),
                source,
            })?;
        match latest {
            Some(dbs) => reconcile_server(&dbs, &ctx).await,
            // Gone meanwhile: its deletion event brings what is left to do.
            None => Ok(Action::await_change()),
        }
    };
    let result = match crate::budget::bounded(limit, work).await {
        Some(result) => result,
        None => Err(Error::Server {
            name: dbs.name_any(),
            source: ServerProblem::Unavailable {
                message: format!(
                    "checking the server took longer than {}; it is retried",
                    humantime::format_duration(limit)
                ),
            },
        }),
    };
    ctx.metrics.reconciled(
        Kind::DatabaseServer,
        started.elapsed(),
        result.as_ref().err().map(Error::reason),
    );
    if result.is_ok() {
        ctx.failures.reset(&uid);
    }
    result
}

async fn reconcile_server(dbs: &DatabaseServer, ctx: &Context) -> Result<Action, Error> {
    let name = dbs.name_any();
    if dbs.meta().deletion_timestamp.is_some() {
        ctx.servers.remove(&name);
        return Ok(Action::await_change());
    }
    if spec::secrets_outside(dbs, &operator_namespace(ctx)).is_some()
        && status::reported(dbs.status.as_ref(), dbs.metadata.generation)
    {
        // Not ours to read; the installation in that namespace (or our earlier report of
        // the misplaced Secret) has said what there is to say about this generation.
        return Ok(Action::await_change());
    }
    let uid = dbs.uid().unwrap_or_default();
    let (health, outcome) = check(dbs, ctx).await;
    write_status(dbs, ctx, &health).await?;
    match outcome {
        Outcome::Resync => Ok(ctx.resync(&uid)),
        Outcome::AwaitChange => Ok(Action::await_change()),
        Outcome::Retry(source) => Err(Error::Server { name, source }),
    }
}

enum Outcome {
    Resync,
    AwaitChange,
    Retry(ServerProblem),
}

/// Validates, connects (or reuses the connection) and probes.
async fn check(dbs: &DatabaseServer, ctx: &Context) -> (Health, Outcome) {
    if let Err(errors) = validate_database_server(dbs) {
        let health = Health::Stalled {
            reason: reasons::INVALID_SPEC.into(),
            message: describe(&errors),
        };
        return (health, Outcome::AwaitChange);
    }
    let server = match connect::connect(ctx, dbs).await {
        Ok(server) => server,
        Err(problem) => {
            let (reason, message) = (problem.reason().to_string(), problem.to_string());
            return match problem {
                // The Secret watch brings the fix.
                ServerProblem::NeedsChange { .. } => {
                    (Health::Stalled { reason, message }, Outcome::AwaitChange)
                }
                ServerProblem::Refused { .. } => {
                    (Health::Stalled { reason, message }, Outcome::Retry(problem))
                }
                ServerProblem::Unavailable { .. } | ServerProblem::Kube { .. } => (
                    Health::Retrying { reason, message },
                    Outcome::Retry(problem),
                ),
            };
        }
    };
    match probe(&server).await {
        Ok(p) => match missing_privileges(&p.user, p.privileges) {
            Some(message) => (
                Health::Stalled {
                    reason: reasons::INSUFFICIENT_PRIVILEGES.into(),
                    message: message.clone(),
                },
                Outcome::Retry(ServerProblem::Refused {
                    reason: reasons::INSUFFICIENT_PRIVILEGES,
                    message,
                }),
            ),
            None => (
                Health::Ready {
                    admin: p.user,
                    version: server.version.clone(),
                    database_count: p.database_count,
                },
                Outcome::Resync,
            ),
        },
        Err(message) => {
            // The sessions may be dead; the next attempt logs in afresh.
            ctx.servers.remove(&dbs.name_any());
            let message = format!("checking the server: {message} (retrying)");
            (
                Health::Retrying {
                    reason: reasons::CONNECTION_FAILED.into(),
                    message: message.clone(),
                },
                Outcome::Retry(ServerProblem::Unavailable { message }),
            )
        }
    }
}

/// Writes the status if it changed, with an Event when readiness or its reason changed.
async fn write_status(dbs: &DatabaseServer, ctx: &Context, health: &Health) -> Result<(), Error> {
    let name = dbs.name_any();
    let api = Api::<DatabaseServer>::all(ctx.client.clone());
    let current = dbs.status.as_ref();
    let status = desired_status(current, dbs.metadata.generation, health, &conditions::now());
    let written = apply_status(&api, dbs, current, &status, &ctx.written)
        .await
        .map_err(|source| Error::Status {
            name: name.clone(),
            source,
        })?;
    let before = current.and_then(|s| find_condition(&s.conditions, types::READY));
    let after = find_condition(&status.conditions, types::READY);
    let news =
        written && before.map(|c| (&c.status, &c.reason)) != after.map(|c| (&c.status, &c.reason));
    if let (true, Some(after)) = (news, after) {
        let regarding = dbs.object_ref(&());
        if after.status == "True" {
            events::normal(
                ctx,
                &regarding,
                event_reasons::CONNECTED,
                "Connect",
                after.message.clone(),
            )
            .await;
        } else {
            events::warning(
                ctx,
                &regarding,
                &after.reason,
                "Connect",
                after.message.clone(),
            )
            .await;
        }
    }
    Ok(())
}
