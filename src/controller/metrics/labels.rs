//! What the series are labelled with: the kinds and outcomes callers name, and the label
//! sets of each family.

use prometheus_client::encoding::EncodeLabelSet;

/// The resource kinds the controllers reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    DatabaseServer,
    ServiceDatabase,
    Tenant,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DatabaseServer => "DatabaseServer",
            Kind::ServiceDatabase => "ServiceDatabase",
            Kind::Tenant => "Tenant",
        }
    }
}

/// How a migration Job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    Succeeded,
    Failed,
}

impl JobOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Succeeded => "succeeded",
            JobOutcome::Failed => "failed",
        }
    }
}

/// One database's schema series: `tenant` is empty for a Shared database.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct SchemaKey {
    pub namespace: String,
    pub name: String,
    pub tenant: String,
    pub database: String,
}

/// What the schema series of one database say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemaState {
    /// The applied version (`servicedb_schema_info`), if any migration was applied.
    pub version: Option<String>,
    /// Migrations not applied yet (`servicedb_schema_pending`), if known.
    pub pending: Option<i64>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub kind: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: &'static str,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SchemaInfoLabels {
    pub namespace: String,
    pub name: String,
    pub tenant: String,
    pub database: String,
    pub version: String,
}

impl SchemaInfoLabels {
    pub fn new(key: &SchemaKey, version: &str) -> SchemaInfoLabels {
        SchemaInfoLabels {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            tenant: key.tenant.clone(),
            database: key.database.clone(),
            version: version.to_string(),
        }
    }
}
