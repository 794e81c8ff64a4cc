//! The Apply side of the finalizer: record the new generation, validate, offboard the
//! services no longer listed, then each listed service's database (its status entry
//! written as soon as it changed), then the status.

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;

use super::TenantContext;
use super::cleanup::offboard;
use super::database;
use super::error::Error;
use super::services::{removed, resolve};
use super::status::{DbReport, DbState, MigrationRecord, Progress, desired_status};
use crate::api::conditions::{self, reasons};
use crate::api::validation::{describe, validate_tenant};
use crate::api::{Tenant, TenantStatus};
use crate::controller::backoff::until_deadline;
use crate::controller::events::{self, reasons as event_reasons};
use crate::controller::status_patch::apply_status;

pub async fn apply(tenant: &Tenant, tc: &TenantContext) -> Result<Action, Error> {
    let mut writer = StatusWriter::new(tenant, tc);
    // kstatus reads a missing or old observedGeneration as "not looked at yet".
    if tenant.status.as_ref().and_then(|s| s.observed_generation) != tenant.metadata.generation {
        writer.write(&Progress::Started).await?;
    }
    if let Err(errors) = validate_tenant(tenant) {
        let message = describe(&errors);
        if writer
            .write(&Progress::Invalid {
                message: message.clone(),
            })
            .await?
        {
            let regarding = kube::Resource::object_ref(tenant, &());
            events::warning(
                &tc.ctx,
                &regarding,
                event_reasons::INVALID_SPEC,
                "Reconcile",
                message,
            )
            .await;
        }
        return Ok(Action::await_change());
    }

    let mut reports = Vec::new();
    let mut retry = None;
    for gone in removed(tenant) {
        if let Err(message) = offboard(tenant, &gone, tc).await {
            // Kept in the status until it is done.
            reports.push(DbReport {
                service: gone.service.clone(),
                server: gone.server.clone(),
                database: gone.database.clone(),
                secret_name: gone.secret_name.clone(),
                applied_version: gone.applied_version.clone(),
                migration: MigrationRecord::of(&gone),
                state: DbState::Waiting {
                    reason: reasons::DELETE_FAILED.into(),
                    message: format!("offboarding (removed from spec.services): {message}"),
                },
            });
            retry = Some(message);
        }
    }
    let ns = tenant.namespace().unwrap_or_default();
    let mut announcements = Vec::new();
    let mut next_due: Option<std::time::Duration> = None;
    for (i, service) in tenant.spec.services.iter().enumerate() {
        let found = tc.service(&ns, service);
        let reconciled = match resolve(tenant, service, found.as_deref()) {
            Ok(sdb) => database::reconcile(tenant, sdb, tc).await,
            Err(state) => database::Reconciled {
                report: unresolved(tenant, service, state),
                retry: None,
                announcement: None,
                next_due: None,
            },
        };
        if let Some(message) = reconciled.retry {
            retry = Some(message);
        }
        announcements.extend(reconciled.announcement);
        next_due = match (next_due, reconciled.next_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Recorded now (written only if it changed), so a reconcile cut short by its
        // timeout on a later database keeps this one's placement; the last one is written
        // with the rest just below.
        if i + 1 < tenant.spec.services.len() {
            writer
                .write(&Progress::Partial(Box::new(reconciled.report.clone())))
                .await?;
        }
        reports.push(reconciled.report);
    }
    writer.write(&Progress::Databases(reports)).await?;
    // After the status that records them, so each is made once.
    let regarding = kube::Resource::object_ref(tenant, &());
    for a in announcements {
        if let Some(outcome) = a.finished() {
            tc.ctx.metrics.migration_job_finished(outcome);
        }
        events::about_job(&tc.ctx, &regarding, &ns, &a).await;
    }
    match retry {
        Some(message) => Err(Error::Transient(message)),
        // The routine resync (also how a tenant waiting for room looks again: room comes
        // back with no event the watches pass) is the paced sweeper's; only a deadline (a
        // password rotation) is a requeue, kept even when a resync would come first: under
        // overload the resync stretches, a rotation must not.
        None => Ok(until_deadline(next_due).map_or_else(Action::await_change, Action::requeue)),
    }
}

/// The report of a service that cannot be reconciled: what the status already knows of
/// its database (a placement is never forgotten), with the reason.
fn unresolved(tenant: &Tenant, service: &str, state: DbState) -> DbReport {
    let known = tenant
        .status
        .as_ref()
        .and_then(|s| s.databases.iter().find(|d| d.service == service));
    DbReport {
        service: service.to_string(),
        server: known.and_then(|d| d.server.clone()),
        database: known.and_then(|d| d.database.clone()),
        secret_name: known.and_then(|d| d.secret_name.clone()),
        applied_version: known.and_then(|d| d.applied_version.clone()),
        migration: known.and_then(MigrationRecord::of),
        state,
    }
}

/// Writes the status when it changed, remembering what it wrote.
struct StatusWriter<'a> {
    tenant: &'a Tenant,
    tc: &'a TenantContext,
    current: Option<TenantStatus>,
}

impl<'a> StatusWriter<'a> {
    fn new(tenant: &'a Tenant, tc: &'a TenantContext) -> Self {
        StatusWriter {
            tenant,
            tc,
            current: tenant.status.clone(),
        }
    }

    /// Returns whether it wrote.
    async fn write(&mut self, progress: &Progress) -> Result<bool, Error> {
        let status = desired_status(
            self.current.as_ref(),
            self.tenant.metadata.generation,
            progress,
            &conditions::now(),
        );
        let api: Api<Tenant> = Api::namespaced(
            self.tc.ctx.client.clone(),
            &self.tenant.namespace().unwrap_or_default(),
        );
        let written = apply_status(
            &api,
            self.tenant,
            self.current.as_ref(),
            &status,
            &self.tc.ctx.written,
        )
        .await
        .map_err(Error::kube("writing the Tenant status"))?;
        self.current = Some(status);
        Ok(written)
    }
}
