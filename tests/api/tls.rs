//! TLS and HTTP/2: ALPN, HSTS, prior knowledge, certificate reload on SIGHUP.

use crate::common::*;

fn self_signed(
    dir: &std::path::Path,
    tag: &str,
) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.join(format!("{tag}-cert.pem"));
    let key = dir.join(format!("{tag}-key.pem"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    (cert, key, c.cert.der().to_vec())
}

fn tls_client(der: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_der(der).unwrap())
        .tls_info(true)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_http2_and_hsts() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, der) = self_signed(certs.path(), "a");
    let s = TestServer::start_with(|c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
    })
    .await;
    let port = s.url.rsplit(':').next().unwrap().to_owned();
    let r = tls_client(&der)
        .get(format!("https://localhost:{port}/api/v1/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN h2");
    assert!(
        r.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    // Plain HTTP is not served on the TLS port.
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http2_prior_knowledge() {
    let s = TestServer::start().await;
    let c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = c
        .get(format!("{}/api/v1/healthz", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert!(r.headers().get("strict-transport-security").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, key_a, der_a) = self_signed(dir.path(), "a");
    let (cert_b, key_b, der_b) = self_signed(dir.path(), "b");
    let live_cert = dir.path().join("cert.pem");
    let live_key = dir.path().join("key.pem");
    std::fs::copy(&cert_a, &live_cert).unwrap();
    std::fs::copy(&key_a, &live_key).unwrap();
    let mut cmd = posta_cmd(dir.path());
    cmd.env("POSTA_TLS_CERT", &live_cert)
        .env("POSTA_TLS_KEY", &live_key);
    let b = Binary::spawn(cmd);
    let port = b.addr.rsplit(':').next().unwrap().to_owned();
    let url = format!("https://localhost:{port}/api/v1/healthz");
    let peer = |r: &reqwest::Response| {
        r.extensions()
            .get::<reqwest::tls::TlsInfo>()
            .unwrap()
            .peer_certificate()
            .unwrap()
            .to_vec()
    };
    let mut first = None;
    for _ in 0..200 {
        if let Ok(r) = tls_client(&der_a).get(&url).send().await {
            first = Some(peer(&r));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(first.unwrap(), der_a);
    // A connection opened before the reload keeps working afterwards.
    let keep = tls_client(&der_a);
    assert_eq!(keep.get(&url).send().await.unwrap().status(), 200);
    std::fs::copy(&cert_b, &live_cert).unwrap();
    std::fs::copy(&key_b, &live_key).unwrap();
    b.signal(1);
    let mut reloaded = false;
    for _ in 0..200 {
        if let Ok(r) = tls_client(&der_b).get(&url).send().await {
            assert_eq!(peer(&r), der_b);
            reloaded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(reloaded, "new certificate served after SIGHUP");
    assert_eq!(
        keep.get(&url).send().await.unwrap().status(),
        200,
        "old connection survived"
    );
}
