//! Getting a connected `Server` for a DatabaseServer: read its admin (and CA) Secret, reuse
//! the registry's connection or log in afresh. Used by both controllers.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;

use super::registry::ServerKey;
use super::spec::{admin_credentials, secrets_outside, server_spec};
use crate::api::DatabaseServer;
use crate::api::conditions::reasons;
use crate::controller::Context;
use crate::controller::provisioning;
use crate::pg::ErrorClass;
use crate::provision::server::{Server, ServerError};

/// Why there is no connected server, sorted by what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ServerProblem {
    /// The spec or a Secret must change (condition reason in `reason`).
    #[error("{message}")]
    NeedsChange {
        reason: &'static str,
        message: String,
    },
    /// The server refused the login or the admin lacks privileges: a person must act,
    /// but the fix may be made on the server side, so it is retried with backoff.
    #[error("{message}")]
    Refused {
        reason: &'static str,
        message: String,
    },
    /// May go away by itself (unreachable, shutting down): retried with backoff.
    #[error("{message}")]
    Unavailable { message: String },
    #[error("reading Secret {secret}: {source}")]
    Kube { secret: String, source: kube::Error },
}

impl ServerProblem {
    pub fn reason(&self) -> &'static str {
        match self {
            ServerProblem::NeedsChange { reason, .. } | ServerProblem::Refused { reason, .. } => {
                reason
            }
            ServerProblem::Unavailable { .. } | ServerProblem::Kube { .. } => {
                reasons::CONNECTION_FAILED
            }
        }
    }
}

async fn read_secret(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<Secret>, ServerProblem> {
    Api::<Secret>::namespaced(ctx.client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|source| ServerProblem::Kube {
            secret: format!("{namespace}/{name}"),
            source,
        })
}

/// The connected server for `dbs` (which must have passed validation).
pub async fn connect(ctx: &Context, dbs: &DatabaseServer) -> Result<Arc<Server>, ServerProblem> {
    let name = dbs.name_any();
    if let Some(message) = secrets_outside(dbs, &super::operator_namespace(ctx)) {
        return Err(ServerProblem::NeedsChange {
            reason: reasons::ADMIN_SECRET_INVALID,
            message,
        });
    }
    let admin_ref = &dbs.spec.admin_secret_ref;
    let admin_secret = read_secret(ctx, &admin_ref.namespace, &admin_ref.name).await?;
    let admin = admin_credentials(
        admin_ref,
        admin_secret.as_ref().and_then(|s| s.data.as_ref()),
    )
    .map_err(|message| ServerProblem::NeedsChange {
        reason: reasons::ADMIN_SECRET_INVALID,
        message,
    })?;
    let (ca_pem, ca_version) = match &dbs.spec.ca_secret_ref {
        None => (None, None),
        Some(ca) => {
            let secret = read_secret(ctx, &ca.namespace, &ca.name).await?;
            let pem = secret
                .as_ref()
                .and_then(|s| s.data.as_ref())
                .and_then(|d| d.get(&ca.key))
                .map(|b| b.0.clone())
                .ok_or_else(|| ServerProblem::NeedsChange {
                    reason: reasons::ADMIN_SECRET_INVALID,
                    message: format!(
                        "spec.caSecretRef: no key {:?} in Secret {}/{}",
                        ca.key, ca.namespace, ca.name
                    ),
                })?;
            (Some(pem), secret.and_then(|s| s.metadata.resource_version))
        }
    };
    let key = ServerKey {
        generation: dbs.metadata.generation,
        admin_secret_version: admin_secret.and_then(|s| s.metadata.resource_version),
        ca_secret_version: ca_version,
    };
    if let Some(server) = ctx.servers.get(&name, &key) {
        return Ok(server);
    }
    let _connecting = ctx.servers.connecting(&name).await;
    if let Some(server) = ctx.servers.get(&name, &key) {
        return Ok(server);
    }
    let spec = server_spec(dbs, &admin, ca_pem, &ctx.installation).map_err(|message| {
        ServerProblem::NeedsChange {
            reason: reasons::INVALID_SPEC,
            message,
        }
    })?;
    let target = format!("{}:{} as {}", dbs.spec.host, dbs.spec.port, admin.username);
    let server = provisioning::connect(spec)
        .await
        .map_err(|e| classify(e, &target, dbs))?;
    let server = Arc::new(server);
    ctx.servers.insert(&name, key, server.clone());
    tracing::info!(server = %name, version = %server.version, "connected");
    Ok(server)
}

/// A message a person can act on, by what went wrong.
fn classify(e: ServerError, target: &str, dbs: &DatabaseServer) -> ServerProblem {
    let secret = format!(
        "{}/{}",
        dbs.spec.admin_secret_ref.namespace, dbs.spec.admin_secret_ref.name
    );
    match &e {
        ServerError::Connect { source, .. } => match (source.class(), source.sqlstate()) {
            // invalid_password, invalid_authorization_specification
            (_, Some("28P01" | "28000")) => ServerProblem::Refused {
                reason: reasons::CONNECTION_FAILED,
                message: format!(
                    "cannot log in to {target}: {source}; fix the username and password in Secret {secret}"
                ),
            },
            (ErrorClass::Permanent, _) => ServerProblem::Refused {
                reason: reasons::CONNECTION_FAILED,
                message: format!("cannot connect to {target}: {source}"),
            },
            (ErrorClass::Transient, _) => ServerProblem::Unavailable {
                message: format!(
                    "cannot reach {target}: {source}; check spec.host and spec.port and that the server is up (retrying)"
                ),
            },
        },
        ServerError::Catalog { source, .. } if source.class() == ErrorClass::Transient => {
            ServerProblem::Unavailable {
                message: format!("{e} (retrying)"),
            }
        }
        ServerError::Catalog { .. } => ServerProblem::Refused {
            reason: reasons::INSUFFICIENT_PRIVILEGES,
            message: format!(
                "{e}; the admin in Secret {secret} needs LOGIN CREATEROLE CREATEDB (not superuser)"
            ),
        },
        ServerError::TooOld { .. } => ServerProblem::Refused {
            reason: reasons::CONNECTION_FAILED,
            message: e.to_string(),
        },
        ServerError::Busy { .. } => ServerProblem::Unavailable {
            message: format!("{e} (retrying)"),
        },
    }
}
