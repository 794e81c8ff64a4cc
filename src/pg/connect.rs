//! Connection options as libpq users expect them: a `postgresql://` URL (or `DATABASE_URL`), or
//! the `PG*` environment variables, with every libpq `sslmode` honoured over rustls.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::task::JoinHandle;
use tokio_postgres::config::{ChannelBinding, Host, SslMode as WireSslMode};
use tokio_postgres::{Client, Config, NoTls};

/// libpq's `sslmode`; also the `sslMode` of a DatabaseServer, spelled the same way.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = ConnectError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "disable" => SslMode::Disable,
            // libpq's `allow` tries plain first; TLS-first is the safer reading of the same wish.
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(ConnectError::Invalid(format!(
                    "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )));
            }
        })
    }
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl SslMode {
    /// The value as libpq spells it (`verify-full`).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid connection settings: {0}")]
    Invalid(String),
    #[error("cannot read the CA certificate {path}: {source}")]
    Ca {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("cannot connect to {target}: {}", super::describe_pg(.source))]
    Connect {
        target: String,
        source: tokio_postgres::Error,
    },
}

/// Everything needed to open a connection.
#[derive(Clone)]
pub struct ConnectOptions {
    pub config: Config,
    pub ssl_mode: SslMode,
    /// PEM CA bundle that the server certificate must chain to.
    pub ca_pem: Option<Vec<u8>>,
    /// `sslrootcert=system`: the system's CA store, never `~/.postgresql/root.crt`.
    pub system_roots: bool,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password that Config's own Debug would show.
        f.debug_struct("ConnectOptions")
            .field("target", &self.describe())
            .field("ssl_mode", &self.ssl_mode)
            .finish()
    }
}

/// Splits `sslmode` and `sslrootcert` out of a URL's query or a libpq `key=value` string:
/// tokio-postgres knows only some sslmodes, so these are handled here and the rest is left
/// to it.
fn take_tls_params(conninfo: &str) -> (String, Option<String>, Option<String>) {
    if !conninfo.contains("://") {
        return take_tls_params_kv(conninfo);
    }
    let Some((base, query)) = conninfo.split_once('?') else {
        return (conninfo.to_string(), None, None);
    };
    let (mut mode, mut root) = (None, None);
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        match k {
            "sslmode" => mode = Some(v),
            "sslrootcert" => root = Some(v),
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, mode, root)
}

/// The same for `host=... sslmode=...` (values optionally single-quoted, `\` escaping).
fn take_tls_params_kv(conninfo: &str) -> (String, Option<String>, Option<String>) {
    let (mut mode, mut root) = (None, None);
    let mut kept = Vec::new();
    let mut chars = conninfo.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        if key.is_empty() {
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        chars.next_if_eq(&'=');
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        match key.as_str() {
            "sslmode" => mode = Some(value),
            "sslrootcert" => root = Some(value),
            _ => kept.push(format!(
                "{key}='{}'",
                value.replace('\\', "\\\\").replace('\'', "\\'")
            )),
        }
    }
    (kept.join(" "), mode, root)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl ConnectOptions {
    /// From a `postgresql://` or `postgres://` URL (a `jdbc:` prefix, as Flyway users have, is
    /// accepted), or a libpq `key=value` string.
    pub fn from_url(url: &str) -> Result<ConnectOptions, ConnectError> {
        Self::from_url_with_env(url, |_| None)
    }

    /// As `from_url`, with libpq's `PGSSLMODE` and `PGSSLROOTCERT` as defaults for what the
    /// URL does not say (so a Job can add a CA to credentials from a Secret).
    pub fn from_url_with_env(
        url: &str,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<ConnectOptions, ConnectError> {
        let url = url.trim().strip_prefix("jdbc:").unwrap_or(url.trim());
        let (rest, mode, root) = take_tls_params(url);
        let mode = mode.or_else(|| get("PGSSLMODE"));
        let root = root.or_else(|| get("PGSSLROOTCERT"));
        let config = Config::from_str(&rest)
            .map_err(|e| ConnectError::Invalid(format!("cannot parse the database URL: {e}")))?;
        Self::build(config, mode.as_deref(), root)
    }

    /// From libpq's environment variables (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD,
    /// PGSSLMODE, PGSSLROOTCERT, PGAPPNAME, PGCONNECT_TIMEOUT), with libpq's defaults.
    pub fn from_libpq_env(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<ConnectOptions, ConnectError> {
        let mut config = Config::new();
        let host = get("PGHOST").unwrap_or_else(|| "localhost".to_string());
        for h in host.split(',') {
            config.host(h);
        }
        if let Some(port) = get("PGPORT") {
            let port = port
                .parse()
                .map_err(|_| ConnectError::Invalid(format!("PGPORT {port:?} is not a port")))?;
            config.port(port);
        }
        let user = get("PGUSER")
            .or_else(|| get("USER"))
            .ok_or_else(|| ConnectError::Invalid("no user: set PGUSER".into()))?;
        config.dbname(get("PGDATABASE").unwrap_or_else(|| user.clone()));
        config.user(&user);
        if let Some(pw) = get("PGPASSWORD") {
            config.password(pw);
        }
        if let Some(app) = get("PGAPPNAME") {
            config.application_name(&app);
        }
        if let Some(t) = get("PGCONNECT_TIMEOUT") {
            let secs: u64 = t.parse().map_err(|_| {
                ConnectError::Invalid(format!(
                    "PGCONNECT_TIMEOUT {t:?} is not a number of seconds"
                ))
            })?;
            config.connect_timeout(Duration::from_secs(secs));
        }
        Self::build(config, get("PGSSLMODE").as_deref(), get("PGSSLROOTCERT"))
    }

    /// What a command line gets: an explicit URL (flag or DATABASE_URL), else the libpq variables.
    pub fn from_url_or_env(url: Option<&str>) -> Result<ConnectOptions, ConnectError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        match url {
            Some(url) if !url.is_empty() => Self::from_url_with_env(url, env),
            _ => Self::from_libpq_env(env),
        }
    }

    fn build(
        mut config: Config,
        mode: Option<&str>,
        root: Option<String>,
    ) -> Result<ConnectOptions, ConnectError> {
        let ssl_mode = mode.map(SslMode::from_str).transpose()?.unwrap_or_default();
        let system_roots = root.as_deref() == Some("system");
        let ca_pem = match root {
            Some(path) if !path.is_empty() && path != "system" => {
                let path = PathBuf::from(path);
                Some(std::fs::read(&path).map_err(|source| ConnectError::Ca { path, source })?)
            }
            _ => None,
        };
        if config.get_application_name().is_none() {
            config.application_name("servicedb");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        Ok(ConnectOptions {
            config,
            ssl_mode,
            ca_pem,
            system_roots,
        })
    }

    /// `user@host:port/dbname`, never the password: for messages and logs.
    pub fn describe(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_string(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!(
            "{}@{}:{}/{}",
            self.config.get_user().unwrap_or(""),
            host,
            port,
            self.config.get_dbname().unwrap_or("")
        )
    }

    /// Opens a connection and drives it on the current runtime.
    pub async fn connect(&self) -> Result<Client, ConnectError> {
        Ok(self.connect_driven().await?.0)
    }

    /// Opens a connection, returning the task that drives it.
    pub async fn connect_driven(&self) -> Result<(Client, JoinHandle<()>), ConnectError> {
        let prepared = self.prepare()?;
        prepared
            .connect_with(&self.config)
            .await
            .map_err(|e| prepared.explain(self, e))
    }

    /// The TLS setup worked out once, for opening many connections with it (pools, probes).
    pub fn prepare(&self) -> Result<Prepared, ConnectError> {
        let tls = match self.ssl_mode {
            SslMode::Disable => None,
            _ => Some(tokio_postgres_rustls::MakeRustlsConnect::new(
                self.tls_config()?,
            )),
        };
        Ok(Prepared {
            tls,
            ssl_mode: self.ssl_mode,
            // Authenticated: the name is checked, or the chain leads to a CA given for this
            // server (any publicly trusted certificate would pass verify-ca on system roots).
            verified: self.ssl_mode == SslMode::VerifyFull || self.ca_pem.is_some(),
        })
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig, ConnectError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // libpq: require (and prefer) only encrypt, unless a root certificate is given, in which
        // case require behaves as verify-ca.
        let (verify_chain, check_name) = match self.ssl_mode {
            SslMode::VerifyFull => (true, true),
            SslMode::VerifyCa => (true, false),
            _ => (self.ca_pem.is_some(), false),
        };
        let inner = if verify_chain {
            let roots = Arc::new(self.root_store()?);
            Some(
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    roots,
                    provider.clone(),
                )
                .build()
                .map_err(|e| ConnectError::Tls(e.to_string()))?,
            )
        } else {
            None
        };
        let verifier = Arc::new(Verifier {
            inner,
            check_name,
            provider: provider.clone(),
        });
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ConnectError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(config)
    }

    fn root_store(&self) -> Result<RootCertStore, ConnectError> {
        let mut store = RootCertStore::empty();
        let pem = match &self.ca_pem {
            Some(pem) => Some(pem.clone()),
            None if self.system_roots => None,
            None => std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".postgresql/root.crt"))
                .and_then(|p| std::fs::read(p).ok()),
        };
        match pem {
            Some(pem) => {
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| ConnectError::Tls(format!("bad CA PEM: {e}")))?;
                    store
                        .add(cert)
                        .map_err(|e| ConnectError::Tls(format!("bad CA certificate: {e}")))?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = store.add(cert);
                }
            }
        }
        if store.is_empty() {
            return Err(ConnectError::Tls(
                "no CA certificate to verify the server with: set sslrootcert".into(),
            ));
        }
        Ok(store)
    }
}

/// Connection settings with TLS prepared: opens connections for any user and database.
#[derive(Clone)]
pub struct Prepared {
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    ssl_mode: SslMode,
    /// The certificate chain is checked, so the server is authenticated.
    verified: bool,
}

impl Prepared {
    /// Connects with `config` (its own sslmode is ignored).
    ///
    /// Over TLS whose certificate is not verified (`prefer`, `require`), SCRAM channel binding
    /// is required: otherwise a man in the middle could present any certificate, ask for
    /// cleartext authentication and get the password. `verify-ca`/`verify-full` already
    /// authenticate the server, so there binding is used when offered.
    pub async fn connect_with(
        &self,
        config: &Config,
    ) -> Result<(Client, JoinHandle<()>), tokio_postgres::Error> {
        let mut config = config.clone();
        let Some(tls) = &self.tls else {
            config.ssl_mode(WireSslMode::Disable);
            let (client, conn) = config.connect(NoTls).await?;
            return Ok((client, spawn_connection(conn)));
        };
        config.ssl_mode(WireSslMode::Require);
        config.channel_binding(if self.verified {
            ChannelBinding::Prefer
        } else {
            ChannelBinding::Require
        });
        match config.connect(tls.clone()).await {
            Ok((client, conn)) => Ok((client, spawn_connection(conn))),
            // `prefer` falls back to plain text only when the server has no TLS at all.
            Err(e) if self.ssl_mode == SslMode::Prefer && is_no_tls(&e) => {
                config.ssl_mode(WireSslMode::Disable);
                config.channel_binding(ChannelBinding::Prefer);
                let (client, conn) = config.connect(NoTls).await?;
                Ok((client, spawn_connection(conn)))
            }
            Err(e) => Err(e),
        }
    }

    /// The error as a person can act on it.
    pub fn explain(&self, options: &ConnectOptions, e: tokio_postgres::Error) -> ConnectError {
        if self.tls.is_some() && !self.verified && is_binding_refused(&e) {
            return ConnectError::Tls(format!(
                "{}: the server did not offer SCRAM channel binding over TLS, so its identity \
                 is unproven and the password was not sent; verify its certificate \
                 (sslmode verify-full with a CA) or use scram-sha-256 authentication for this user",
                options.describe()
            ));
        }
        ConnectError::Connect {
            target: options.describe(),
            source: e,
        }
    }
}

fn spawn_connection<S, T>(conn: tokio_postgres::Connection<S, T>) -> JoinHandle<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connection closed");
        }
    })
}

/// tokio-postgres says so in words only.
fn is_no_tls(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_none() && super::describe_pg(e).contains("server does not support TLS")
}

fn is_binding_refused(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_none() && super::describe_pg(e).contains("channel binding")
}

/// Certificate checks per sslmode: none (encryption only), chain only, or chain and name.
#[derive(Debug)]
struct Verifier {
    inner: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(inner) = &self.inner else {
            return Ok(ServerCertVerified::assertion());
        };
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_with_every_sslmode_and_encoded_credentials() {
        for (mode, want) in [
            ("disable", SslMode::Disable),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::VerifyCa),
            ("verify-full", SslMode::VerifyFull),
        ] {
            let o = ConnectOptions::from_url(&format!(
                "postgresql://us%40er:p%40ss%3Aw@db.example:6432/shop?sslmode={mode}&application_name=x"
            ))
            .unwrap();
            assert_eq!(o.ssl_mode, want);
            assert_eq!(o.config.get_user(), Some("us@er"));
            assert_eq!(o.config.get_password(), Some(&b"p@ss:w"[..]));
            assert_eq!(o.config.get_application_name(), Some("x"));
            assert_eq!(o.describe(), "us@er@db.example:6432/shop");
        }
        assert!(ConnectOptions::from_url("postgresql://h/db?sslmode=sometimes").is_err());
    }

    #[test]
    fn jdbc_urls_and_missing_ca_files() {
        let o = ConnectOptions::from_url("jdbc:postgresql://h:5433/db?user=u&password=p").unwrap();
        assert_eq!(o.config.get_user(), Some("u"));
        assert_eq!(o.ssl_mode, SslMode::Prefer);
        let err = ConnectOptions::from_url("postgresql://h/db?sslrootcert=/nonexistent/ca.pem")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }

    /// A key=value string's sslmode is honoured, never silently downgraded to prefer.
    #[test]
    fn key_value_strings_keep_their_sslmode() {
        let o = ConnectOptions::from_url(
            "host=db port=5433 user=u password='p w\\'x' dbname=d sslmode=verify-full",
        )
        .unwrap();
        assert_eq!(o.ssl_mode, SslMode::VerifyFull);
        assert_eq!(o.config.get_password(), Some(&b"p w'x"[..]));
        assert_eq!(o.describe(), "u@db:5433/d");
        assert!(ConnectOptions::from_url("host=db sslmode=sometimes").is_err());
    }

    #[test]
    fn pgsslmode_is_the_default_for_urls() {
        let env = |k: &str| (k == "PGSSLMODE").then(|| "verify-ca".to_string());
        let o = ConnectOptions::from_url_with_env("postgresql://u@h/d", env).unwrap();
        assert_eq!(o.ssl_mode, SslMode::VerifyCa);
        let o =
            ConnectOptions::from_url_with_env("postgresql://u@h/d?sslmode=disable", env).unwrap();
        assert_eq!(o.ssl_mode, SslMode::Disable);
    }

    #[test]
    fn libpq_environment() {
        let env = |k: &str| {
            match k {
                "PGHOST" => Some("10.0.0.1"),
                "PGPORT" => Some("6543"),
                "PGUSER" => Some("migrator"),
                "PGPASSWORD" => Some("secret"),
                "PGSSLMODE" => Some("verify-full"),
                _ => None,
            }
            .map(String::from)
        };
        let o = ConnectOptions::from_libpq_env(env).unwrap();
        assert_eq!(o.describe(), "migrator@10.0.0.1:6543/migrator");
        assert_eq!(o.ssl_mode, SslMode::VerifyFull);
        assert!(!format!("{o:?}").contains("secret"));
    }
}
