//! `Tenant`: one tenant (a customer, a gym, an affiliate) of one or more PerTenant services,
//! each of which gives it its own database. Namespaced.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::service_database::{ReclaimPolicy, SchemaStatus};

/// Label on a Tenant: `servicedb.io/canary=true` makes its databases go first in a fleet
/// rollout; every canary must succeed before any other tenant is migrated.
pub const CANARY_LABEL: &str = "servicedb.io/canary";

/// One tenant of one or more PerTenant ServiceDatabases in this namespace; each gives it its
/// own database and Secret.
// Every `printcolumn(...)` repeats `type_ = ...`, which clippy mistakes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "servicedb.io",
    version = "v1alpha1",
    kind = "Tenant",
    plural = "tenants",
    namespaced,
    shortname = "tn",
    category = "servicedb",
    status = "TenantStatus",
    derive = "PartialEq",
    doc = "One tenant of one or more PerTenant ServiceDatabases in this namespace; each gives it its own database and Secret.",
    selectable = ".spec.server",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Every database of this tenant is ready"
    ),
    printcolumn(
        name = "Databases",
        type_ = "integer",
        json_path = ".status.databaseCount",
        description = "Databases of this tenant (one per service)"
    ),
    printcolumn(
        name = "Ready Databases",
        type_ = "integer",
        json_path = ".status.readyCount",
        description = "Databases of this tenant that are ready"
    ),
    printcolumn(
        name = "Server",
        type_ = "string",
        json_path = ".spec.server",
        description = "The DatabaseServer this tenant is pinned to, if any",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    /// Names of PerTenant ServiceDatabases in this namespace that get a database for this
    /// tenant.
    #[serde(default)]
    pub services: Vec<String>,

    /// DatabaseServer to put this tenant's databases on. Default: placement picks the
    /// least-loaded server under its `maxDatabases`. Once placed, a database never moves by
    /// itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,

    /// What happens to this tenant's databases and roles when the Tenant is deleted (or a
    /// service is removed from `services`). Retain: they stay. Delete: servicedb drops them.
    /// Default: Retain.
    #[serde(default)]
    pub reclaim_policy: ReclaimPolicy,
}

/// Observed state of a Tenant, written by servicedb.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`: every database of this tenant is ready; `Reconciling` and `Stalled` for
    /// kstatus.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Databases of this tenant (entries of `databases`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_count: Option<i32>,

    /// Databases of this tenant that are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_count: Option<i32>,

    /// One entry per service: where this tenant's database is and its state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<TenantDatabaseStatus>,
}

/// One database of a tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantDatabaseStatus {
    /// The ServiceDatabase this database belongs to.
    pub service: String,

    /// The DatabaseServer it was placed on; placement never changes by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,

    /// The PostgreSQL database, `<databaseName>_<tenant>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,

    /// The app's connection Secret for this tenant, `<secret>-<tenant>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,

    /// Latest applied migration version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_version: Option<String>,

    /// The migrations of this database, when its service has some: versions, the last
    /// migration Job, how it ended and why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaStatus>,

    /// The service's `status.rollout.inputsHash` (migration files and target) the last
    /// migration Job of this database ran for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_inputs: Option<String>,

    /// The service's `servicedb.io/resume` value when the last migration Job started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_resume: Option<String>,

    /// Whether the database, roles, Secret and migrations are all in place.
    #[serde(default)]
    pub ready: bool,

    /// Why it is not ready, if it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
