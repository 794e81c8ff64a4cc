//! The Kubernetes API of servicedb: `servicedb.io/v1alpha1` `DatabaseServer` (cluster-scoped),
//! `ServiceDatabase` and `Tenant` (namespaced). Types only, plus the pure helpers that belong
//! to the API contract: conditions, validation, the Secret template language and the CRDs.

pub mod conditions;
pub mod crd;
pub mod database_server;
pub mod schema_check;
pub mod service_database;
pub mod template;
pub mod tenant;
pub mod validation;

pub use database_server::{
    DatabaseServer, DatabaseServerSpec, DatabaseServerStatus, Environment, SecretKeyRef, SecretRef,
    SslMode,
};
pub use service_database::{
    ExtraRoleSpec, JobOutcome, LoginRoleSpec, MigrationJobSpec, MigrationsSpec,
    PasswordRotationSpec, Phase, RESUME_ANNOTATION, ReclaimPolicy, RoleAccess, RolloutBatch,
    RolloutPhase, RolloutSpec, RolloutStatus, SchemaStatus, SecretAccess, SecretSpec, SeedSpec,
    ServiceDatabase, ServiceDatabaseSpec, ServiceDatabaseStatus, Tenancy, TenantsSummary,
};
pub use tenant::{CANARY_LABEL, Tenant, TenantDatabaseStatus, TenantSpec, TenantStatus};
pub use validation::FieldError;

/// API group.
pub const GROUP: &str = "servicedb.io";
/// API version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every servicedb resource.
pub const API_VERSION: &str = "servicedb.io/v1alpha1";
/// Finalizer on resources whose deletion must drop something outside the cluster.
pub const FINALIZER: &str = "servicedb.io/finalizer";
/// Annotation that rotates passwords now when its value changes.
pub const ROTATE_ANNOTATION: &str = "servicedb.io/rotate";
/// Annotation that runs a failed migration again on the same inputs when its value changes.
pub const RETRY_ANNOTATION: &str = "servicedb.io/retry";
/// On a tenant database's Secrets: the DatabaseServer holding the database, so its place is
/// known even when the Tenant's status is lost and that server is down.
pub const DATABASE_SERVER_ANNOTATION: &str = "servicedb.io/database-server";

/// Labels on everything servicedb creates.
pub mod labels {
    /// `app.kubernetes.io/managed-by: servicedb`.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const MANAGED_BY_VALUE: &str = "servicedb";
    /// The ServiceDatabase an object belongs to.
    pub const SERVICE_DATABASE: &str = "servicedb.io/service-database";
    /// The Tenant an object belongs to, where there is one.
    pub const TENANT: &str = "servicedb.io/tenant";
    /// On migration Jobs: the hash of their inputs (the end of the Job's name).
    pub const MIGRATION_INPUTS: &str = "servicedb.io/migration-inputs";
}
