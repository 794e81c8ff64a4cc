//! One tenant database: where it is (or goes, `locate`), then claim check, Secrets, database and roles
//! through `controller::provisioning`, then its schema. Reports what happened; failures a
//! retry may cure are also returned, so the reconcile retries with backoff.

use std::sync::Arc;

use kube::{Resource, ResourceExt};

use super::TenantContext;
use super::locate::locate;
use super::migrations;
use super::placement::{Key, server_ready};
use super::status::{DbReport, DbState, MigrationRecord};
use super::verified;
use crate::api::conditions::reasons;
use crate::api::{DATABASE_SERVER_ANNOTATION, JobOutcome, ServiceDatabase, Tenant};
use crate::controller::database_server::connect::{self, ServerProblem};
use crate::controller::database_server::status::not_ready_why;
use crate::controller::events::{self, reasons as event_reasons};
use crate::controller::migration::{self, listed::ListedJobs};
use crate::controller::provisioning::{self, Failure};
use crate::controller::service_database::rotation;
use crate::controller::service_database::secrets::KubeSecrets;
use crate::provision::execute::HistoryWanted;
use crate::provision::server::Server;
use crate::service::Layout;
use k8s_openapi::jiff::Timestamp;

/// The report of one database, the message of a failure worth retrying, and what to
/// announce about its migration Job once the status is written.
pub struct Reconciled {
    pub report: DbReport,
    pub retry: Option<String>,
    pub announcement: Option<migration::Announcement>,
    /// When its next periodic password rotation falls due.
    pub next_due: Option<std::time::Duration>,
}

pub fn key(tenant: &Tenant, service: &str) -> Key {
    (
        tenant.namespace().unwrap_or_default(),
        tenant.name_any(),
        service.to_string(),
    )
}

pub async fn reconcile(tenant: &Tenant, sdb: &ServiceDatabase, tc: &TenantContext) -> Reconciled {
    let name = tenant.name_any();
    let layout = Layout::new(sdb, Some(&name));
    let target = migrations::target(tenant, sdb, &layout);
    // Until the step runs again, what the status knows of the schema stays.
    let known = tenant
        .status
        .as_ref()
        .and_then(|s| s.databases.iter().find(|d| d.service == layout.service));
    let mut report = DbReport {
        service: layout.service.clone(),
        server: None,
        database: Some(layout.database.clone()),
        secret_name: Some(layout.app_secret().name.clone()),
        applied_version: known.and_then(|d| d.applied_version.clone()),
        migration: target
            .as_ref()
            .map(|_| known.and_then(MigrationRecord::of).unwrap_or_default()),
        state: DbState::Ready,
    };
    let done = |mut report: DbReport, state: DbState, retry: Option<String>| {
        report.state = state;
        Reconciled {
            report,
            retry,
            announcement: None,
            next_due: None,
        }
    };
    let key = key(tenant, &layout.service);
    // A pass that cannot get as far as a check leaves none to reuse: the next one checks.
    let unchecked = |report: DbReport, state: DbState, retry: Option<String>| {
        tc.verified.forget(&key);
        done(report, state, retry)
    };
    let secrets = KubeSecrets::new(tc.ctx.client.clone(), super::owner_reference(tenant));
    tracing::debug!(service = %layout.service, "locating");
    let server_name = match locate(tenant, sdb, &layout, &secrets, tc).await {
        Ok(server) => server,
        Err(state) => return unchecked(report, state, None),
    };
    report.server = Some(server_name.clone());
    // Where the database is survives a lost status on its Secrets too (see `locate`).
    secrets.annotate_every_write(DATABASE_SERVER_ANNOTATION, &server_name);
    // The PerTenant ServiceDatabase's rotation policy, on this tenant's Secrets.
    // The owner's rotation waits while a migration Job of this database runs.
    let job = rotation::tenant_migration_job(sdb, &name, known);
    // The database's Jobs, listed before anything reads its history (`migration::listed`).
    let listing = async {
        let t = target.as_ref()?;
        let named: Vec<String> = job
            .iter()
            .cloned()
            .chain(migrations::batches_of(sdb, &name))
            .collect();
        match ListedJobs::list(&tc.ctx.client, t, &named).await {
            Ok(listed) => Some(listed),
            Err(e) => {
                // Provisioning goes on; the migration step lists again and says so.
                tracing::debug!(service = %layout.service, error = %e, "listing the migration Jobs");
                None
            }
        }
    };
    // The Secrets at the same time (a failure here is the rotation's read's to report).
    let names: Vec<&str> = layout.secrets.iter().map(|s| s.name.as_str()).collect();
    let (listed, _) = futures::join!(listing, secrets.fetch_all(&layout.namespace, &names));
    let migrating = match (&listed, job.as_deref()) {
        (Some(listed), Some(job)) => Ok(listed.running(job)),
        _ => rotation::job_running(&tc.ctx.client, &layout.namespace, job.as_deref()).await,
    };
    let prepared = match migrating {
        Ok(migrating) => {
            rotation::prepare(&secrets, sdb, &layout, Timestamp::now(), migrating).await
        }
        Err(e) => Err(e),
    };
    let rotation = match prepared {
        Ok(decision) => decision,
        Err(e) => {
            let message = format!("reading the Secrets of database {}: {e}", layout.database);
            let state = DbState::Waiting {
                reason: reasons::PROVISIONING_FAILED.into(),
                message: format!("{message} (retrying)"),
            };
            return unchecked(report, state, Some(message));
        }
    };
    tracing::debug!(service = %layout.service, server = %server_name, "connecting");
    let server = match connected(tc, &server_name).await {
        Ok(server) => server,
        Err((state, retry)) => return unchecked(report, state, retry),
    };
    let fingerprint = verified::fingerprint(
        tenant,
        sdb,
        tc.server(&server_name).as_deref(),
        &server_name,
        &secrets.fetched_versions(),
    );
    // A check made moments ago still holds, unless this pass has a change to make (a
    // rotation) or a migration may have run since (it creates objects the check must see:
    // the history table the app must not write to, say).
    let reused = (rotation.rotate.is_empty() && job.is_none())
        .then(|| tc.verified.reuse(&key, fingerprint, reuse_window(tc)))
        .flatten();
    // A full check, to record once the pass is over (begun at, saw the history table).
    let mut checked = None;
    // History rows read after `listed`: by this pass's check, or by the check it reuses
    // when no Job has run since (`migration::Prior`).
    let rows;
    let history_seen = match reused {
        Some(check) => {
            tracing::debug!(service = %layout.service, "the last provisioning check holds");
            // Not with batch Jobs: one may exist before the status that names it.
            rows = check
                .history
                .filter(|_| crate::controller::rollout::write::settings(sdb).batch_size == 1)
                .filter(|h| listed.as_ref().is_some_and(|l| l.none_since(&h.ended)))
                .map(|h| h.rows);
            check.history_seen
        }
        None => {
            let began = tokio::time::Instant::now();
            tracing::debug!(service = %layout.service, server = %server_name, "waiting for a turn");
            let turn = tc.ctx.servers.turn(&server_name).await;
            tracing::debug!(service = %layout.service, server = %server_name, "provisioning");
            let history = match listed {
                Some(_) => HistoryWanted::Yes,
                None => HistoryWanted::No,
            };
            let roles = rotation.roles();
            let provisioned =
                provisioning::apply_tenant(&server, &secrets, sdb, &name, &roles, history).await;
            drop(turn);
            let p = match provisioned {
                Ok(p) => p,
                Err(failure) => {
                    return unchecked(report, failed(&failure), failure_retry(&failure));
                }
            };
            let on = format!(
                "database {} of service {} on DatabaseServer {server_name}",
                p.layout.database, p.layout.service
            );
            let regarding = tenant.object_ref(&());
            provisioning::announce(&tc.ctx, &regarding, &p, on).await;
            if let Some(note) = rotation::announcement(&rotation, &p.layout, &p) {
                let reason = event_reasons::PASSWORD_ROTATED;
                events::normal(&tc.ctx, &regarding, reason, "Rotate", note).await;
            }
            // Secrets it wrote have new versions: the next pass checks (and records) again.
            if p.secrets_written.is_empty() {
                checked = Some(began);
            }
            rows = p.history;
            p.history_seen
        }
    };
    // Whether the check followed a listing in which every Job of the database had ended:
    // then it saw all they created (`ListedJobs::settled`).
    let listed_settled = listed.as_ref().map(|l| l.settled(job.as_deref()));
    // Without a listing: only with no Job recorded and none seen moving (the step's own
    // listing came after the check).
    let settled = |job_moved: bool| listed_settled.unwrap_or(job.is_none() && !job_moved);
    let record = |job_moved: bool, running_after: bool, history: Option<verified::History>| {
        match checked {
            // Not while a Job may run, nor by the pass that started one: what a Job creates
            // (the history table the app must not write to, say) is the next check's to see.
            Some(began) if settled(job_moved) && !running_after => {
                tc.verified
                    .record(key.clone(), began, fingerprint, history_seen, history)
            }
            _ if job_moved => tc.verified.forget(&key),
            _ => {}
        }
    };
    let Some(target) = target else {
        record(false, false, None);
        return Reconciled {
            next_due: rotation.next_due,
            ..done(report, DbState::Ready, None)
        };
    };
    let target = migration::MigrationTarget {
        history_seen,
        ..target
    };
    let prior = migration::Prior { listed, rows };
    let m = migrations::migrate(tenant, sdb, &target, &server, tc, prior).await;
    // No schema recorded and no Job in it are the same: no Job moved.
    let last_job = |r: Option<&MigrationRecord>| {
        r.and_then(|r| r.schema.as_ref())
            .map_or((None, None), |s| (s.last_job.clone(), s.last_job_outcome))
    };
    let before = known.and_then(MigrationRecord::of);
    let job_moved = last_job(before.as_ref()) != last_job(Some(&m.record));
    if m.retry.is_some() {
        // The owner's login or the history read failed: look at everything next time.
        tc.verified.forget(&key);
    } else {
        let seen = m.seen;
        let history = seen.rows.map(|rows| verified::History {
            rows,
            ended: seen.ended,
        });
        let running_after = m
            .record
            .schema
            .as_ref()
            .is_some_and(|s| s.last_job_outcome == Some(JobOutcome::Running));
        record(job_moved, running_after, history);
    }
    report.applied_version = m.applied_version;
    report.migration = Some(m.record);
    Reconciled {
        announcement: m.announcement,
        next_due: rotation.next_due,
        ..done(report, m.state, m.retry)
    }
}

/// How old a provisioning check a pass may reuse: half a resync, so the routine resync
/// (0.9 resync or more after the last pass) always checks in full.
fn reuse_window(tc: &TenantContext) -> std::time::Duration {
    tc.ctx.config.resync / 2
}

/// The state a failed provisioning leaves. Pure.
fn failed(failure: &Failure) -> DbState {
    match failure {
        Failure::Permanent { reason, message } => DbState::Stalled {
            reason: reason.to_string(),
            message: message.clone(),
        },
        Failure::Transient { message } => DbState::Waiting {
            reason: reasons::PROVISIONING_FAILED.to_string(),
            message: format!("{message} (retrying)"),
        },
    }
}

/// A failure worth retrying with backoff, as its message. Pure.
fn failure_retry(failure: &Failure) -> Option<String> {
    match failure {
        Failure::Permanent { .. } => None,
        Failure::Transient { message } => Some(message.clone()),
    }
}

/// The connected server, or why not (and whether to retry with backoff).
pub async fn connected(
    tc: &TenantContext,
    name: &str,
) -> Result<Arc<Server>, (DbState, Option<String>)> {
    let Some(dbs) = tc.server(name) else {
        let message = format!(
            "DatabaseServer {name}, where this database is placed, does not exist; waiting for it"
        );
        return Err((
            DbState::Waiting {
                reason: reasons::SERVER_NOT_FOUND.into(),
                message,
            },
            None,
        ));
    };
    if !server_ready(&dbs) {
        let why = not_ready_why(&dbs);
        // Its watch brings the change.
        return Err((
            DbState::Waiting {
                reason: reasons::SERVER_NOT_READY.into(),
                message: format!("waiting for DatabaseServer {name} to be Ready: {why}"),
            },
            None,
        ));
    }
    connect::connect(&tc.ctx, &dbs).await.map_err(|problem| {
        let retry = matches!(
            problem,
            ServerProblem::Unavailable { .. } | ServerProblem::Kube { .. }
        )
        .then(|| problem.to_string());
        (
            DbState::Waiting {
                reason: problem.reason().to_string(),
                message: format!("DatabaseServer {name}: {problem}"),
            },
            retry,
        )
    })
}
