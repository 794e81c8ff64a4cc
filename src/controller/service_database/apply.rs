//! The Apply side of the finalizer: record the new generation, validate, find the server,
//! then claim check, Secrets, database and roles (through `controller::provisioning`), then
//! the migrations (`controller::migration`), then the status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::error::Error;
use super::rotation;
use super::secrets::KubeSecrets;
use super::server::{Unavailable, server_change, server_for};
use super::status::{Progress, desired_status};
use crate::api::conditions::{self, find_condition, reasons, types};
use crate::api::validation::{describe, validate_service_database};
use crate::api::{RETRY_ANNOTATION, ServiceDatabase, ServiceDatabaseStatus, Tenancy};
use crate::controller::Context;
use crate::controller::events::{self, reasons as event_reasons};
use crate::controller::migration::{self, MigrationTarget};
use crate::controller::provisioning::{self, Failure};
use crate::controller::rollout;
use crate::controller::status_patch::{apply_status, merge_status};
use crate::service::Layout;

/// Reason while the migration state cannot be read (the history table, the Jobs).
pub const MIGRATION_CHECK_FAILED: &str = "MigrationCheckFailed";

pub async fn apply(sdb: &ServiceDatabase, ctx: &Context) -> Result<Action, Error> {
    let uid = sdb.uid().unwrap_or_default();
    let mut writer = StatusWriter::new(sdb, ctx);
    // kstatus reads a missing or old observedGeneration as "not looked at yet".
    if sdb.status.as_ref().and_then(|s| s.observed_generation) != sdb.metadata.generation {
        writer.write(&Progress::Started).await?;
    }
    if let Err(errors) = validate_service_database(sdb) {
        writer
            .stall(
                reasons::INVALID_SPEC,
                describe(&errors),
                event_reasons::INVALID_SPEC,
            )
            .await?;
        return Ok(Action::await_change());
    }
    if sdb.spec.tenancy == Tenancy::PerTenant {
        return per_tenant(sdb, ctx, &mut writer).await;
    }
    if let Some(message) = server_change(sdb) {
        writer
            .stall(
                reasons::SERVER_CHANGED,
                message,
                event_reasons::SERVER_CHANGED,
            )
            .await?;
        return Ok(Action::await_change());
    }
    let (server_name, server) = match server_for(ctx, sdb).await {
        Ok(found) => found,
        Err(Unavailable::Waiting { reason, message }) => {
            writer
                .write(&Progress::Waiting {
                    reason: reason.to_string(),
                    message,
                })
                .await?;
            // The DatabaseServer watch brings the change; the resync is a safety net.
            return Ok(ctx.resync(&uid));
        }
        Err(Unavailable::Problem(problem)) => {
            writer
                .write(&Progress::Waiting {
                    reason: problem.reason().to_string(),
                    message: problem.to_string(),
                })
                .await?;
            return Err(Error::Server(problem));
        }
        Err(Unavailable::Kube(e)) => return Err(Error::kube("listing DatabaseServers")(e)),
    };
    let secrets = KubeSecrets::new(ctx.client.clone(), owner_reference(sdb));
    let layout = provisioning::layout(sdb);
    // The owner's rotation waits while the migration Job runs.
    let job = rotation::shared_migration_job(sdb);
    let migrating = rotation::job_running(&ctx.client, &layout.namespace, job.as_deref())
        .await
        .map_err(Error::kube("listing the migration Job"))?;
    let rotation = rotation::prepare(&secrets, sdb, &layout, Timestamp::now(), migrating)
        .await
        .map_err(Error::kube("reading the connection Secrets"))?;
    let turn = ctx.servers.turn(&server_name).await;
    let provisioned = provisioning::apply(&server, &secrets, sdb, &rotation.roles()).await;
    drop(turn);
    match provisioned {
        Ok(done) => {
            let on = format!(
                "database {} on DatabaseServer {server_name}",
                done.layout.database
            );
            provisioning::announce(ctx, &sdb.object_ref(&()), &done, on).await;
            if let Some(note) = rotation::announcement(&rotation, &layout, &done) {
                let regarding = sdb.object_ref(&());
                let reason = event_reasons::PASSWORD_ROTATED;
                events::normal(ctx, &regarding, reason, "Rotate", note).await;
            }
            let migrations = match migration_target(sdb, &done.layout) {
                None => None,
                Some(target) => {
                    let target = MigrationTarget {
                        history_seen: done.history_seen,
                        ..target
                    };
                    let previous = sdb.status.as_ref().and_then(|s| s.schema.as_ref());
                    let step = migration::reconcile(
                        &ctx.client,
                        &server,
                        &target,
                        previous,
                        &ctx.config.migration_image,
                    )
                    .await;
                    let (outcome, announcement) = match step {
                        Ok(done) => done,
                        Err(e) => {
                            // Said in the status (an owner the server refuses from here
                            // would otherwise retry in silence), then retried with backoff.
                            writer
                                .write(&Progress::Waiting {
                                    reason: MIGRATION_CHECK_FAILED.to_string(),
                                    message: format!("{e} (retrying)"),
                                })
                                .await?;
                            return Err(Error::Transient(e.to_string()));
                        }
                    };
                    Some((outcome, announcement, target.namespace))
                }
            };
            let (outcome, announcement) = match migrations {
                Some((o, a, ns)) => (Some(o), a.map(|a| (a, ns))),
                None => (None, None),
            };
            writer
                .write(&Progress::Provisioned {
                    server: server_name,
                    database: done.layout.database.clone(),
                    secret_name: done.layout.app_secret().name.clone(),
                    secrets: done.layout.secrets.iter().map(|s| s.name.clone()).collect(),
                    migrations: outcome.map(Box::new),
                })
                .await?;
            if let Some((a, ns)) = announcement {
                if let Some(outcome) = a.finished() {
                    ctx.metrics.migration_job_finished(outcome);
                }
                events::about_job(ctx, &sdb.object_ref(&()), &ns, &a).await;
            }
            Ok(ctx.resync_within(&uid, rotation.next_due))
        }
        Err(Failure::Permanent { reason, message }) => {
            writer.stall(reason, message, reason).await?;
            Ok(match reason {
                // A SQL failure may be fixed on the server (an extension installed): look
                // again at the next resync.
                reasons::PROVISIONING_FAILED => ctx.resync(&uid),
                _ => Action::await_change(),
            })
        }
        Err(Failure::Transient { message }) => {
            writer
                .write(&Progress::Waiting {
                    reason: reasons::PROVISIONING_FAILED.to_string(),
                    message: format!("{message} (retrying)"),
                })
                .await?;
            Err(Error::Transient(message))
        }
    }
}

/// A PerTenant template: the fleet's rollout decision and counts, from its Tenants (their
/// watch brings news; the resync is a safety net for a ConfigMap edited meanwhile).
async fn per_tenant(
    sdb: &ServiceDatabase,
    ctx: &Context,
    writer: &mut StatusWriter<'_>,
) -> Result<Action, Error> {
    let fleet = rollout::assess(
        &ctx.client,
        &ctx.fleet_tenants,
        &ctx.fleet_jobs,
        sdb,
        &ctx.config.migration_image,
    )
    .await
    .map_err(Error::kube(
        "reading the fleet's Tenants, Jobs and ConfigMaps",
    ))?;
    if let Some(r) = &fleet.rollout {
        tracing::debug!(
            running = r.running,
            admitted = r.admitted.len(),
            at_target = r.at_target,
            "fleet assessed"
        );
    }
    let layout = provisioning::layout(sdb);
    let progress = Progress::PerTenant {
        database: layout.database.clone(),
        secret_name: layout.app_secret().name.clone(),
        fleet: fleet.state.clone(),
    };
    writer.write_fleet(&progress, &fleet).await?;
    let before = sdb.status.as_ref().and_then(|s| s.rollout.as_ref());
    if rollout::newly_paused(before, fleet.rollout.as_ref())
        && let rollout::FleetState::Paused { message } = &fleet.state
    {
        let regarding = sdb.object_ref(&());
        events::warning(
            ctx,
            &regarding,
            rollout::ROLLOUT_PAUSED,
            "Rollout",
            message.clone(),
        )
        .await;
    }
    Ok(ctx.resync_within(&sdb.uid().unwrap_or_default(), fleet.recheck))
}

/// The database of a Shared ServiceDatabase as the migration step sees it; None without
/// migration ConfigMaps.
pub fn migration_target(sdb: &ServiceDatabase, layout: &Layout) -> Option<MigrationTarget> {
    let migrations = sdb.spec.migrations.clone()?;
    if migrations.config_maps.is_empty() {
        return None;
    }
    Some(MigrationTarget {
        namespace: layout.namespace.clone(),
        owner: owner_reference(sdb),
        base_name: sdb.name_any(),
        tenant: None,
        database: layout.database.clone(),
        migrator_secret: layout.migrator_secret().name.clone(),
        migrations,
        retry: sdb.annotations().get(RETRY_ANNOTATION).cloned(),
        history_seen: false,
    })
}

/// The single ownerReference of every Secret: the ServiceDatabase, as controller, so the
/// Secrets are garbage-collected with it.
pub fn owner_reference(sdb: &ServiceDatabase) -> OwnerReference {
    OwnerReference {
        api_version: ServiceDatabase::api_version(&()).to_string(),
        kind: ServiceDatabase::kind(&()).to_string(),
        name: sdb.name_any(),
        uid: sdb.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Writes the status when it changed, remembering what it wrote so that later steps of
/// the same reconcile compare against it.
struct StatusWriter<'a> {
    sdb: &'a ServiceDatabase,
    ctx: &'a Context,
    current: Option<ServiceDatabaseStatus>,
}

impl<'a> StatusWriter<'a> {
    fn new(sdb: &'a ServiceDatabase, ctx: &'a Context) -> Self {
        StatusWriter {
            sdb,
            ctx,
            current: sdb.status.clone(),
        }
    }

    /// Returns whether it wrote.
    async fn write(&mut self, progress: &Progress) -> Result<bool, Error> {
        let status = desired_status(
            self.current.as_ref(),
            self.sdb.metadata.generation,
            progress,
            &conditions::now(),
        );
        let api: Api<ServiceDatabase> = Api::namespaced(
            self.ctx.client.clone(),
            &self.sdb.namespace().unwrap_or_default(),
        );
        let written = apply_status(
            &api,
            self.sdb,
            self.current.as_ref(),
            &status,
            &self.ctx.written,
        )
        .await
        .map_err(Error::kube("writing the ServiceDatabase status"))?;
        self.current = Some(status);
        Ok(written)
    }

    /// The conditions of `progress` with the fleet's counts and decision, in one write (the
    /// tenants it admits wait on it). Returns whether it wrote.
    async fn write_fleet(
        &mut self,
        progress: &Progress,
        fleet: &rollout::Fleet,
    ) -> Result<bool, Error> {
        let mut status = desired_status(
            self.current.as_ref(),
            self.sdb.metadata.generation,
            progress,
            &conditions::now(),
        );
        status.tenants = Some(fleet.summary.clone());
        status.rollout = fleet.rollout.clone();
        if self.current.as_ref() == Some(&status) {
            return Ok(false);
        }
        let api: Api<ServiceDatabase> = Api::namespaced(
            self.ctx.client.clone(),
            &self.sdb.namespace().unwrap_or_default(),
        );
        let body = rollout::status_patch(&status);
        merge_status(&api, &self.sdb.name_any(), &body, &self.ctx.written)
            .await
            .map_err(Error::kube("writing the fleet status"))?;
        tracing::debug!("wrote the fleet status");
        self.current = Some(status);
        Ok(true)
    }

    /// Stalled with an Event, the Event only when the reason or message is new.
    async fn stall(
        &mut self,
        reason: &str,
        message: String,
        event_reason: &str,
    ) -> Result<(), Error> {
        let before = self
            .current
            .as_ref()
            .and_then(|s| find_condition(&s.conditions, types::STALLED))
            .map(|c| (c.reason.clone(), c.message.clone()));
        let progress = Progress::Stalled {
            reason: reason.to_string(),
            message: message.clone(),
        };
        self.write(&progress).await?;
        if before != Some((reason.to_string(), message.clone())) {
            let regarding = self.sdb.object_ref(&());
            events::warning(self.ctx, &regarding, event_reason, "Reconcile", message).await;
        }
        Ok(())
    }
}
