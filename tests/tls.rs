//! Every libpq sslmode against a PostgreSQL serving TLS with a certificate from a test CA:
//! what is verified, and that verification failures really fail.

mod support;

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use servicedb::embedded::ServerAccount;
use servicedb::pg::ConnectOptions;
use support::postgres::server as pg;

fn write(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    ServerAccount::detect().unwrap().hand_over(path).unwrap();
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// Whether a connection with these URL parameters succeeds, and over TLS.
async fn try_connect(host: &str, params: &str) -> Result<bool, String> {
    let url = format!(
        "postgresql://{}:{}@{host}:{}/postgres?{params}",
        pg().admin_user(),
        pg().admin_password(),
        pg().port()
    );
    let client = ConnectOptions::from_url(&url)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

/// Locks libpq's sslmode semantics over rustls: disable is plain, prefer and require
/// encrypt without verifying, verify-ca checks the chain only, verify-full the chain and the
/// host name; a wrong CA or host name is refused.
#[tokio::test]
async fn every_sslmode_means_what_libpq_says() {
    let dir = tempfile::tempdir().unwrap().keep();
    ServerAccount::detect().unwrap().hand_over(&dir).unwrap();
    let ca = new_ca("servicedb test CA");
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let (cert_path, key_path, ca_path, other_ca_path) = (
        dir.join("server.crt"),
        dir.join("server.key"),
        dir.join("ca.pem"),
        dir.join("other-ca.pem"),
    );
    write(&cert_path, &cert.pem(), 0o644);
    write(&key_path, &key.serialize_pem(), 0o600);
    write(&ca_path, &ca.pem(), 0o644);
    write(&other_ca_path, &new_ca("someone else").pem(), 0o644);

    // Before TLS is on, prefer falls back to plain text (require and verify-* never do).
    assert_eq!(try_connect("127.0.0.1", "sslmode=prefer").await, Ok(false));
    assert!(try_connect("127.0.0.1", "sslmode=require").await.is_err());

    let su = pg().superuser_client("postgres").await;
    for (name, value) in [("ssl_cert_file", &cert_path), ("ssl_key_file", &key_path)] {
        su.batch_execute(&format!("ALTER SYSTEM SET {name} = '{}'", value.display()))
            .await
            .unwrap();
    }
    su.batch_execute("ALTER SYSTEM SET ssl = on").await.unwrap();
    su.batch_execute("SELECT pg_reload_conf()").await.unwrap();
    // The reload is asynchronous: wait until new sessions see it.
    support::kube::eventually("ssl on after reload", || async {
        let c = pg().superuser_client("postgres").await;
        let on: String = c.query_one("SHOW ssl", &[]).await.unwrap().get(0);
        (on == "on").then_some(())
    })
    .await;

    let ca = ca_path.display();
    let other = other_ca_path.display();
    assert_eq!(try_connect("127.0.0.1", "sslmode=disable").await, Ok(false));
    assert_eq!(try_connect("127.0.0.1", "sslmode=prefer").await, Ok(true));
    assert_eq!(try_connect("127.0.0.1", "sslmode=require").await, Ok(true));
    assert_eq!(
        try_connect("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")).await,
        Ok(true)
    );
    assert_eq!(
        try_connect(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}")
        )
        .await,
        Ok(true)
    );

    let wrong_name = try_connect(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    )
    .await;
    assert!(
        wrong_name
            .as_ref()
            .is_err_and(|e| e.contains("certificate")),
        "{wrong_name:?}"
    );
    let wrong_ca = try_connect(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={other}"),
    )
    .await;
    assert!(
        wrong_ca.as_ref().is_err_and(|e| e.contains("certificate")),
        "{wrong_ca:?}"
    );
    // require with a CA behaves as verify-ca, as in libpq.
    let require_wrong_ca =
        try_connect("127.0.0.1", &format!("sslmode=require&sslrootcert={other}")).await;
    assert!(require_wrong_ca.is_err(), "{require_wrong_ca:?}");
}

/// A man in the middle with its own certificate answers `sslmode=require` (which verifies
/// no certificate) and asks for the password in cleartext. servicedb requires SCRAM channel
/// binding over unverified TLS, so it refuses and never sends the password; the error says
/// how to fix the setup.
#[tokio::test]
async fn a_man_in_the_middle_asking_for_cleartext_gets_no_password() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mitm = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        // SSLRequest: length 8, code 80877103; say yes and do TLS.
        let mut request = [0u8; 8];
        tcp.read_exact(&mut request).await.unwrap();
        tcp.write_all(b"S").await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let mut len = [0u8; 4];
        tls.read_exact(&mut len).await.unwrap();
        let mut startup = vec![0u8; u32::from_be_bytes(len) as usize - 4];
        tls.read_exact(&mut startup).await.unwrap();
        // AuthenticationCleartextPassword.
        tls.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3])
            .await
            .unwrap();
        tls.flush().await.unwrap();
        // Whatever comes back: a password message ('p') would be the leak.
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tls.read_to_end(&mut reply),
        )
        .await;
        reply
    });
    let url = format!(
        "postgresql://servicedb_admin:the-secret-password@127.0.0.1:{port}/postgres?sslmode=require"
    );
    let err = ConnectOptions::from_url(&url)
        .unwrap()
        .connect()
        .await
        .expect_err("a cleartext request over unverified TLS is refused")
        .to_string();
    assert!(err.contains("channel binding"), "{err}");
    assert!(
        err.contains("verify-full"),
        "the error says how to fix it: {err}"
    );
    let reply = mitm.await.unwrap();
    assert!(
        !String::from_utf8_lossy(&reply).contains("the-secret-password"),
        "the password reached the man in the middle"
    );
    assert!(reply.first() != Some(&b'p'), "a password message was sent");
}
