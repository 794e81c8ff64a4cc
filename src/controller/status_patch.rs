//! Writing `.status` through the status subresource, only when it changed (so a
//! controller's own write re-triggers it once and never loops).
//!
//! A JSON merge patch of the whole status: it replaces the condition list as computed. (With
//! server-side apply, a condition dropped from the applied list must vanish; the test fake
//! leaves an empty `{}` item behind instead, which no client can decode.)

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::freshness::Written;

/// The field manager of everything servicedb applies.
pub const FIELD_MANAGER: &str = "servicedb";

/// Applies `status` when it differs from `current`; returns whether it wrote. The version
/// written is recorded in `written` (see [`freshness`](super::freshness)).
pub async fn apply_status<K, S>(
    api: &Api<K>,
    obj: &K,
    current: Option<&S>,
    status: &S,
    written: &Written,
) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(false);
    }
    if tracing::enabled!(tracing::Level::TRACE) {
        tracing::trace!(
            name = %obj.name_any(),
            from = %serde_json::to_string(&current).unwrap_or_default(),
            to = %serde_json::to_string(status).unwrap_or_default(),
            "writing status"
        );
    }
    merge_status(api, &obj.name_any(), &json!({ "status": status }), written).await?;
    Ok(true)
}

/// A JSON merge patch of the status subresource under servicedb's field manager; the
/// version it made is recorded in `written`.
pub async fn merge_status<K>(
    api: &Api<K>,
    name: &str,
    body: &serde_json::Value,
    written: &Written,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let patched = api.patch_status(name, &params, &Patch::Merge(body)).await?;
    written.record(
        &patched.uid().unwrap_or_default(),
        patched.resource_version(),
    );
    Ok(())
}
