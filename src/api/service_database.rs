//! `ServiceDatabase`: one service's database, its roles, its Secrets and its schema version.
//! Namespaced.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One service's PostgreSQL database (or, with `tenancy: PerTenant`, the template for one
/// database per Tenant), its roles, its connection Secret and its schema version.
// Every `printcolumn(...)` repeats `type_ = ...`, which clippy mistakes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "servicedb.io",
    version = "v1alpha1",
    kind = "ServiceDatabase",
    plural = "servicedatabases",
    namespaced,
    shortname = "sdb",
    category = "servicedb",
    status = "ServiceDatabaseStatus",
    derive = "PartialEq",
    doc = "One service's PostgreSQL database (or, with tenancy PerTenant, one database per Tenant), its roles, its connection Secret and its schema version.",
    selectable = ".spec.server",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Database, roles, Secret and migrations are all in place"
    ),
    printcolumn(
        name = "Database",
        type_ = "string",
        json_path = ".status.database",
        description = "The PostgreSQL database (for PerTenant: the base of the tenant databases' names)"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.schema.appliedVersion",
        description = "Latest applied migration version"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Where servicedb is with this database"
    ),
    printcolumn(
        name = "Tenants",
        type_ = "integer",
        json_path = ".status.tenants.total",
        description = "PerTenant: tenant databases of this service"
    ),
    printcolumn(
        name = "At Target",
        type_ = "integer",
        json_path = ".status.tenants.atTargetVersion",
        description = "PerTenant: tenant databases at the target version"
    ),
    printcolumn(
        name = "Rollout",
        type_ = "string",
        json_path = ".status.rollout.phase",
        description = "PerTenant: Progressing, Paused or Complete"
    ),
    printcolumn(
        name = "Ready Tenants",
        type_ = "integer",
        json_path = ".status.tenants.ready",
        description = "PerTenant: tenant databases that are ready",
        priority = 1
    ),
    printcolumn(
        name = "Failed Tenants",
        type_ = "integer",
        json_path = ".status.tenants.failed",
        description = "PerTenant: tenant databases whose migration failed on the current inputs",
        priority = 1
    ),
    printcolumn(
        name = "Server",
        type_ = "string",
        json_path = ".status.server",
        description = "The DatabaseServer holding the database",
        priority = 1
    ),
    printcolumn(
        name = "Secret",
        type_ = "string",
        json_path = ".status.secretName",
        description = "The app's connection Secret",
        priority = 1
    ),
    printcolumn(
        name = "Target",
        type_ = "string",
        json_path = ".status.schema.targetVersion",
        description = "Migration version servicedb is moving the schema to",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDatabaseSpec {
    /// Name of the DatabaseServer to create the database on. Default: the DatabaseServer
    /// marked `default: true`. Moving a database to another server is not supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,

    /// Name of the PostgreSQL database: lower-case letters, digits and `_`, starting with a
    /// letter, at most 63 bytes. Default: `<namespace>_<name>` with `-` turned into `_`.
    /// With `tenancy: PerTenant`, each tenant's database is `<databaseName>_<tenant>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,

    /// Shared: one database for the service. PerTenant: one database per Tenant that lists
    /// this service, all migrated to the same version. Default: Shared.
    #[serde(default)]
    pub tenancy: Tenancy,

    /// Settings of the owner role (`<database>_owner`), which owns the database and every
    /// object in it. Only the migration Job logs in as it, with the `<name>-migrator` Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<LoginRoleSpec>,

    /// Settings of the app role (`<database>_app`), whose credentials are in the app Secret:
    /// it reads and writes data but cannot change the schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<LoginRoleSpec>,

    /// PostgreSQL extensions to create in the database, e.g. `pgcrypto`. The server must
    /// have them available and allow the owner to create them (trusted extensions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,

    /// Schemas to create, owned by the owner role, besides `public`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,

    /// Extra login roles, each with its own Secret: `read` (SELECT only), `write` (like the
    /// app role) or `owner` (a member of the owner role).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<ExtraRoleSpec>,

    /// The app's connection Secret, written in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretSpec>,

    /// SQL migrations, Flyway-named, from ConfigMaps; run as a Kubernetes Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations: Option<MigrationsSpec>,

    /// Rotate the passwords of this database's roles periodically. The annotation
    /// `servicedb.io/rotate: <any new value>` rotates them at once. Default: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_rotation: Option<PasswordRotationSpec>,

    /// What happens to the database and its roles when this resource is deleted. Retain: they
    /// stay. Delete: servicedb drops the database and the roles it created. Default: Retain.
    #[serde(default)]
    pub reclaim_policy: ReclaimPolicy,
}

/// Settings of a login role.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginRoleSpec {
    /// Most concurrent connections of this role: -1 for no limit, else 1 to 10000.
    /// Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_limit: Option<i32>,
}

/// An extra login role of a database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtraRoleSpec {
    /// Short name of the role; the PostgreSQL role is `<database>_<name>`. Lower-case
    /// letters, digits and `_`, starting with a letter; not `owner` or `app`.
    pub name: String,

    /// read: SELECT on tables and sequences. write: SELECT, INSERT, UPDATE, DELETE, like the
    /// app role. owner: member of the owner role, so it may change the schema.
    pub access: RoleAccess,

    /// Most concurrent connections: -1 for no limit, else 1 to 10000. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_limit: Option<i32>,

    /// Name of this role's Secret. Default: `<metadata.name>-db-<name>` (with `_` as `-`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// The app's connection Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretSpec {
    /// Name of the Secret. Default: `<metadata.name>-db`. (The owner's Secret, for the
    /// migration Job, is always `<metadata.name>-migrator`.) With `tenancy: PerTenant`, each
    /// tenant's Secret is `<name>-<tenant>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// Whose credentials the Secret holds. write: the app role (no DDL). owner: the owner
    /// role, for apps that run their own migrations. Default: write.
    #[serde(default)]
    pub access: SecretAccess,

    /// Extra keys to write, besides the standard ones (host, port, dbname, username, user,
    /// password, uri, jdbc-uri, pgpass, DATABASE_URL, PGHOST, PGPORT, PGDATABASE, PGUSER,
    /// PGPASSWORD, PGSSLMODE). Values may use the placeholders `{{ host }}`, `{{ port }}`,
    /// `{{ database }}`, `{{ username }}`, `{{ password }}` and `{{ sslmode }}`, e.g.
    /// `jdbc:postgresql://{{ host }}:{{ port }}/{{ database }}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub template: BTreeMap<String, String>,
}

/// SQL migrations of a database.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationsSpec {
    /// ConfigMaps in this namespace whose keys are migration files: `V<version>__<description>.sql`
    /// (versioned) and `R__<description>.sql` (repeatable), as Flyway names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_maps: Vec<String>,

    /// Apply migrations up to this version, e.g. `"7"` or `"2.1"` (quote it in YAML). Default:
    /// all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<String>,

    /// Seed data: SQL files run after the migrations, only on a DatabaseServer whose
    /// `environment` is `local`; elsewhere servicedb refuses with a condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<SeedSpec>,

    /// How the migration Job runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<MigrationJobSpec>,

    /// With `tenancy: PerTenant`: how a new version rolls out across the tenants' databases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSpec>,
}

/// Seed data, for local development only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeedSpec {
    /// ConfigMaps in this namespace whose keys are seed SQL files, Flyway-named like the
    /// migrations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_maps: Vec<String>,
}

/// The migration Job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationJobSpec {
    /// Container image that runs `servicedb migrate apply`. Default: the operator's own image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// ServiceAccount of the Job's pod. Default: the namespace's `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,

    /// CPU and memory of the migration container. Default: none set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Retries before the Job counts as failed. Default: 2 (a migration that fails on its
    /// SQL fails the same way every time; retries are for a connection that dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,

    /// Seconds the Job may run before it is stopped. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,

    /// Seconds a finished Job is kept before Kubernetes deletes it (its outcome stays in
    /// `status.schema`). Default: 86400 (one day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i32>,
}

/// Annotation on a PerTenant ServiceDatabase: a new value resumes a paused rollout (failed
/// tenants are retried and the failure budget starts again).
pub const RESUME_ANNOTATION: &str = "servicedb.io/resume";

/// Fleet rollout of a new schema version across tenant databases. Tenants labelled
/// `servicedb.io/canary=true` go first, and all of them must succeed before any other
/// starts; the rest follow in name order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Tenant databases migrated at the same time. Default: 1.
    #[serde(default = "default_max_parallel")]
    pub max_parallel: i32,

    /// Failed tenant migrations tolerated before the rollout pauses (RolloutPaused); it
    /// resumes when the migrations, the targetVersion or the `servicedb.io/resume`
    /// annotation change. Default: 0 (pause at the first failure).
    #[serde(default)]
    pub max_failures: i32,

    /// Tenant databases one migration Job migrates in turn (each with its own migrator
    /// credentials, each reported on its own), so a large fleet needs fewer pods: at most
    /// maxParallel such Jobs run at once, and maxFailures counts tenant databases.
    /// The ServiceDatabase starts these batch Jobs (listed in `status.rollout.batches`);
    /// new tenants still get a Job of their own. 1 to 100. Default: 1.
    #[serde(default = "default_batch_size")]
    pub batch_size: i32,
}

impl Default for RolloutSpec {
    fn default() -> Self {
        RolloutSpec {
            max_parallel: default_max_parallel(),
            max_failures: 0,
            batch_size: default_batch_size(),
        }
    }
}

/// Periodic password rotation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordRotationSpec {
    /// Rotate passwords this often, e.g. `720h` or `30days`; at least 1h.
    pub every: String,
}

/// One database for the service, or one per tenant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Tenancy {
    #[default]
    Shared,
    PerTenant,
}

/// What an extra role may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleAccess {
    Read,
    Write,
    Owner,
}

/// Whose credentials the app Secret holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SecretAccess {
    #[default]
    Write,
    Owner,
}

/// What happens to what servicedb created when the resource is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ReclaimPolicy {
    #[default]
    Retain,
    Delete,
}

/// Observed state of a ServiceDatabase, written by servicedb.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDatabaseStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// A one-word summary: Pending, Provisioning, Migrating, Ready, Failed or Deleting; the
    /// conditions say more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// `Ready` (everything below is true), `DatabaseReady`, `SecretReady`,
    /// `MigrationsApplied`; `Reconciling` and `Stalled` for kstatus.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The DatabaseServer holding the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,

    /// The PostgreSQL database; with PerTenant, the base of the tenant databases' names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,

    /// The app's connection Secret (with PerTenant, the base of the tenant Secrets' names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,

    /// The schema's migration state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaStatus>,

    /// With PerTenant: how many tenant databases exist, are ready, and are at the target
    /// version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenants: Option<TenantsSummary>,

    /// With PerTenant: the fleet rollout of the current migrations and target version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
}

/// Migration state of a database, read from its `flyway_schema_history`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemaStatus {
    /// Latest successfully applied versioned migration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_version: Option<String>,

    /// Version being applied: `migrations.targetVersion`, else the latest available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<String>,

    /// Migrations available but not applied yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<i32>,

    /// Name of the most recent migration Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_job: Option<String>,

    /// Hash of what the most recent Job ran with (database, migration files, target
    /// version, `servicedb.io/retry`), as in its name: a Job is created only for inputs
    /// that have not run yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_job_inputs: Option<String>,

    /// How the most recent Job ended: Running, Succeeded or Failed. A Failed Job is not run
    /// again until the migration files, the target version or `servicedb.io/retry` change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_job_outcome: Option<JobOutcome>,

    /// Why the last migration failed, if it did: file, line, SQLSTATE and message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

// How a migration Job ended. (A `//` comment: a doc comment here would replace the field's
// description in the CRD.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum JobOutcome {
    /// Created and not finished yet.
    Running,
    /// Complete: every migration up to the target applied.
    Succeeded,
    /// Failed: `lastError` says why.
    Failed,
}

/// Tenant databases of a PerTenant service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantsSummary {
    /// Tenant databases of this service.
    #[serde(default)]
    pub total: i32,
    /// Tenant databases that are Ready.
    #[serde(default)]
    pub ready: i32,
    /// Tenant databases at the target version.
    #[serde(default)]
    pub at_target_version: i32,
    /// Tenant databases whose migration failed on the current inputs.
    #[serde(default)]
    pub failed: i32,
}

/// Where the fleet rollout of one set of inputs (migrations and target) stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Hash of the migrations and target version being rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs_hash: Option<String>,

    /// The version the fleet is moving to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<String>,

    /// Progressing: tenants are being migrated. Paused: more than maxFailures failed; change
    /// the migrations, the target or the `servicedb.io/resume` annotation to go on.
    /// Complete: every tenant is at the target or failed within the budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RolloutPhase>,

    /// Tenant databases in the rollout.
    #[serde(default)]
    pub total: i32,

    /// Tenant databases at the target version.
    #[serde(default)]
    pub at_target: i32,

    /// Tenant databases whose migration is running.
    #[serde(default)]
    pub running: i32,

    /// Tenant databases whose migration failed on these inputs (since the last resume).
    #[serde(default)]
    pub failed: i32,

    /// The first failed tenants by name (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_tenants: Vec<String>,

    /// Tenants allowed to run their migration now (running ones included; at most
    /// maxParallel): the one decision the Tenant controller follows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admitted: Vec<String>,

    /// The `servicedb.io/resume` value this rollout has acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,

    /// With batchSize above 1: the batch Jobs whose tenants are migrated together, while
    /// a Job runs or its tenants have not all recorded how it ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batches: Vec<RolloutBatch>,
}

/// One batch Job of a fleet rollout and the tenants it migrates, in turn.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutBatch {
    /// The Job's name.
    pub job: String,
    /// Its tenants, in the order it migrates them.
    pub tenants: Vec<String>,
}

// Where a fleet rollout stands. (A `//` comment, so the field's description stays.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum RolloutPhase {
    Progressing,
    Paused,
    Complete,
}

// A one-word summary of a ServiceDatabase. (A `//` comment: a doc comment here would replace
// the `status.phase` field's description in the CRD.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Accepted, nothing done yet (waiting for a server, for example).
    Pending,
    /// Creating or repairing the database, roles or Secrets.
    Provisioning,
    /// A migration Job (or a tenant rollout) is running.
    Migrating,
    /// Everything is in place at the target version.
    Ready,
    /// Something needs a person: an invalid spec, a conflict, a failed migration.
    Failed,
    /// Being deleted.
    Deleting,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Provisioning => "Provisioning",
            Phase::Migrating => "Migrating",
            Phase::Ready => "Ready",
            Phase::Failed => "Failed",
            Phase::Deleting => "Deleting",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ServiceDatabaseSpec {
    /// The app Secret's `access`: write unless `secret.access` says owner.
    pub fn secret_access(&self) -> SecretAccess {
        self.secret.as_ref().map(|s| s.access).unwrap_or_default()
    }

    /// `secret.template`, empty when unset.
    pub fn secret_template(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.secret.as_ref().map_or(&EMPTY, |s| &s.template)
    }
}

fn default_max_parallel() -> i32 {
    1
}

fn default_batch_size() -> i32 {
    1
}
