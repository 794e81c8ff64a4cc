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
    pub const CONFLICT: &str = "Conflict";
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
