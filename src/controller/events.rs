//! Kubernetes Events through the shared recorder. Best effort: a failed Event is logged and
//! never fails a reconcile (the status carries the same facts).

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};

use super::Context;

/// Event reasons (PascalCase, stable).
pub mod reasons {
    pub const CONNECTED: &str = "Connected";
    pub const CONNECTION_FAILED: &str = "ConnectionFailed";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const ADMIN_SECRET_INVALID: &str = "AdminSecretInvalid";
    pub const INSUFFICIENT_PRIVILEGES: &str = "InsufficientPrivileges";
    pub const PROVISIONED: &str = "Provisioned";
    pub const SECRET_WRITTEN: &str = "SecretWritten";
    pub const PASSWORD_ROTATED: &str = "PasswordRotated";
    pub const CONFLICT: &str = "Conflict";
    pub const SERVER_CHANGED: &str = "ServerChanged";
    pub const SEED_REFUSED: &str = "SeedRefused";
    pub const PROVISIONING_FAILED: &str = "ProvisioningFailed";
    pub const RETAINED: &str = "Retained";
    pub const DROPPED: &str = "Dropped";
    pub const DROP_FAILED: &str = "DropFailed";
    pub const FINALIZER_TIMEOUT: &str = "FinalizerTimeout";
}

pub async fn publish(
    ctx: &Context,
    regarding: &ObjectReference,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: action.to_string(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, regarding).await {
        tracing::warn!(reason, error = %e, "could not publish an Event");
    }
}

/// An Event about a migration Job: `related` names the Job, so Events of different Jobs
/// never collapse into one series (the recorder's key ignores the note).
pub async fn about_job(
    ctx: &Context,
    regarding: &ObjectReference,
    namespace: &str,
    a: &crate::controller::migration::Announcement,
) {
    let event = Event {
        type_: if a.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: a.reason.to_string(),
        note: Some(a.note.clone()),
        action: "Migrate".to_string(),
        secondary: Some(ObjectReference {
            api_version: Some("batch/v1".to_string()),
            kind: Some("Job".to_string()),
            name: Some(a.job.clone()),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        }),
    };
    if let Err(e) = ctx.recorder.publish(&event, regarding).await {
        tracing::warn!(reason = a.reason, error = %e, "could not publish an Event");
    }
}

pub async fn normal(
    ctx: &Context,
    regarding: &ObjectReference,
    reason: &str,
    action: &str,
    note: String,
) {
    publish(ctx, regarding, EventType::Normal, reason, action, note).await;
}

pub async fn warning(
    ctx: &Context,
    regarding: &ObjectReference,
    reason: &str,
    action: &str,
    note: String,
) {
    publish(ctx, regarding, EventType::Warning, reason, action, note).await;
}
