//! From a DatabaseServer and its Secrets' data to the core's `ServerSpec`. Pure.
//!
//! `dev` builds the same thing from manifests (`src/dev/servers.rs`, private there); the two
//! should share one function in the core (e.g. `ServerSpec::from_database_server`).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;

use crate::api::database_server::{ADMIN_PASSWORD_KEY, ADMIN_USERNAME_KEY};
use crate::api::{DatabaseServer, SecretRef};
use crate::provision::server::ServerSpec;

/// The admin's credentials as read from `spec.adminSecretRef`.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for AdminCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The admin credentials in a Secret's data, or what a person must fix.
pub fn admin_credentials(
    secret_ref: &SecretRef,
    data: Option<&BTreeMap<String, ByteString>>,
) -> Result<AdminCredentials, String> {
    let name = format!("{}/{}", secret_ref.namespace, secret_ref.name);
    let Some(data) = data else {
        return Err(format!(
            "spec.adminSecretRef: Secret {name} does not exist; create it with the keys \
             {ADMIN_USERNAME_KEY} and {ADMIN_PASSWORD_KEY}"
        ));
    };
    let key = |k: &str| -> Result<String, String> {
        let value = data.get(k).ok_or_else(|| {
            format!("spec.adminSecretRef: Secret {name} has no key {k:?}; it needs {ADMIN_USERNAME_KEY} and {ADMIN_PASSWORD_KEY}")
        })?;
        let text = String::from_utf8(value.0.clone()).map_err(|_| {
            format!("spec.adminSecretRef: key {k:?} of Secret {name} is not UTF-8 text")
        })?;
        if text.is_empty() {
            return Err(format!(
                "spec.adminSecretRef: key {k:?} of Secret {name} is empty"
            ));
        }
        Ok(text)
    };
    Ok(AdminCredentials {
        username: key(ADMIN_USERNAME_KEY)?,
        password: key(ADMIN_PASSWORD_KEY)?,
    })
}

/// Why the DatabaseServer's Secrets cannot be read: `adminSecretRef` or `caSecretRef`
/// names a namespace other than the operator's. Admin credentials stay in the operator's
/// namespace (DESIGN's safety rules), which is also the only namespace whose Secrets the
/// chart lets the DatabaseServer controller read; None when both are there.
pub fn secrets_outside(server: &DatabaseServer, operator_namespace: &str) -> Option<String> {
    let admin = &server.spec.admin_secret_ref;
    let refs = std::iter::once(("spec.adminSecretRef", &admin.namespace, &admin.name)).chain(
        server
            .spec
            .ca_secret_ref
            .as_ref()
            .map(|ca| ("spec.caSecretRef", &ca.namespace, &ca.name)),
    );
    let problems: Vec<String> = refs
        .filter(|(_, ns, _)| ns.as_str() != operator_namespace)
        .map(|(field, ns, name)| {
            format!(
                "{field}.namespace: Secret {ns}/{name} is outside the operator's namespace \
                 {operator_namespace}; admin and CA Secrets must live there (create the Secret \
                 in {operator_namespace} and set {field}.namespace: {operator_namespace})"
            )
        })
        .collect();
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// Whether this installation provisions on the server: its admin and CA Secrets are in
/// the operator's namespace. Another installation in the same cluster (one per namespace)
/// reports its own servers Ready, but this one cannot log in there.
pub fn is_ours(server: &DatabaseServer, operator_namespace: &str) -> bool {
    secrets_outside(server, operator_namespace).is_none()
}

/// The core's view of the server. `ca_pem`: the `caSecretRef` key's content, if any.
pub fn server_spec(
    server: &DatabaseServer,
    admin: &AdminCredentials,
    ca_pem: Option<Vec<u8>>,
    installation: &str,
) -> Result<ServerSpec, String> {
    crate::service::server_spec::from_database_server(
        server,
        &admin.username,
        &admin.password,
        ca_pem,
        installation,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_ref() -> SecretRef {
        SecretRef {
            namespace: "servicedb-system".into(),
            name: "pg-admin".into(),
        }
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn missing_secret_or_key_says_which_and_what_to_add() {
        let err = admin_credentials(&secret_ref(), None).unwrap_err();
        assert!(
            err.contains("Secret servicedb-system/pg-admin does not exist"),
            "{err}"
        );
        let err =
            admin_credentials(&secret_ref(), Some(&data(&[("username", "admin")]))).unwrap_err();
        assert!(err.contains("has no key \"password\""), "{err}");
        let ok = admin_credentials(
            &secret_ref(),
            Some(&data(&[("username", "admin"), ("password", "pw")])),
        )
        .unwrap();
        assert_eq!(ok.username, "admin");
        assert!(!format!("{ok:?}").contains("pw"));
    }

    /// Locks "admin credentials stay in the operator's namespace": a Secret reference to
    /// any other namespace is refused, naming the field, the Secret and where it must be.
    #[test]
    fn secrets_must_live_in_the_operator_namespace() {
        let mut dbs = DatabaseServer::new("main", Default::default());
        dbs.spec.admin_secret_ref = secret_ref();
        assert_eq!(secrets_outside(&dbs, "servicedb-system"), None);
        let err = secrets_outside(&dbs, "ops").unwrap();
        assert!(
            err.starts_with(
                "spec.adminSecretRef.namespace: Secret servicedb-system/pg-admin is outside \
                 the operator's namespace ops"
            ),
            "{err}"
        );
        assert!(
            err.contains("set spec.adminSecretRef.namespace: ops"),
            "{err}"
        );
        dbs.spec.ca_secret_ref = Some(crate::api::database_server::SecretKeyRef {
            namespace: "shop".into(),
            name: "pg-ca".into(),
            key: "ca.crt".into(),
        });
        let err = secrets_outside(&dbs, "servicedb-system").unwrap();
        assert!(
            err.starts_with("spec.caSecretRef.namespace: Secret shop/pg-ca"),
            "{err}"
        );
        assert!(!err.contains("adminSecretRef"), "{err}");
    }

    #[test]
    fn client_endpoint_defaults_to_the_admin_endpoint() {
        let mut dbs = DatabaseServer::new("main", Default::default());
        dbs.spec.host = "pg.db.svc".into();
        let admin = AdminCredentials {
            username: "a".into(),
            password: "b".into(),
        };
        let spec = server_spec(&dbs, &admin, None, "test").unwrap();
        assert_eq!(
            (spec.client_host.as_str(), spec.client_port),
            ("pg.db.svc", 5432)
        );
        dbs.spec.client_host = Some("pooler".into());
        dbs.spec.client_port = Some(6432);
        let spec = server_spec(&dbs, &admin, None, "test").unwrap();
        assert_eq!(
            (spec.client_host.as_str(), spec.client_port),
            ("pooler", 6432)
        );
        assert_eq!(spec.name, "main");
    }
}
