//! The ceiling for any HTTP answer on this machine: a bare hyper hello-world with the same
//! server stack as Posta (hyper-util auto builder, HTTP/1.1 keep-alive), used by
//! `packaging/bench.sh` as the baseline. Usage: `hello [ADDR]` (default 127.0.0.1:0).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening addr={}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(|_req: Request<hyper::body::Incoming>| async {
                let mut r = Response::new(Full::new(Bytes::from_static(
                    br#"{"success":true,"data":{"status":"ok"}}"#,
                )));
                r.headers_mut().insert(
                    "content-type",
                    "application/json"
                        .parse()
                        .unwrap_or_else(|_| unreachable!()),
                );
                Ok::<_, Infallible>(r)
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
