//! Small operating-system glue: systemd readiness notification and the local TLS probe used by
//! `posta healthcheck`.

use std::sync::Arc;

/// Send `READY=1` to systemd (when `NOTIFY_SOCKET` is set) once the returned future is polled,
/// that is, after the listener is bound and the store opened.
pub async fn ready_after_start() {
    #[allow(clippy::disallowed_methods)]
    let sock = std::env::var_os("NOTIFY_SOCKET");
    #[cfg(unix)]
    if let Some(path) = sock {
        let path = std::path::PathBuf::from(path);
        let sent = (|| -> std::io::Result<()> {
            let s = std::os::unix::net::UnixDatagram::unbound()?;
            let bytes = path.as_os_str().as_encoded_bytes();
            if let Some(abs) = bytes.strip_prefix(b"@") {
                #[cfg(target_os = "linux")]
                {
                    use std::os::linux::net::SocketAddrExt;
                    let addr = std::os::unix::net::SocketAddr::from_abstract_name(abs)?;
                    s.send_to_addr(b"READY=1", &addr)?;
                    return Ok(());
                }
            }
            s.send_to(b"READY=1", &path)?;
            Ok(())
        })();
        if let Err(e) = sent {
            tracing::warn!(error = %e, "sd_notify READY=1 failed");
        }
    }
    #[cfg(not(unix))]
    let _ = sock;
}

/// Accept any certificate: the health probe talks to its own server over loopback, possibly
/// with a self-signed certificate, and sends nothing secret.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS stream to the local server for the health probe.
pub async fn local_tls(
    tcp: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("healthcheck tls: {e}"))
}
