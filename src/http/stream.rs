//! Answers with a body that keeps coming: the admin's live audit event stream (Server-Sent
//! Events). A handler returns an ordinary response carrying a [`Stream`] extension; the
//! connection turns it into a streaming body ([`into_body`]) that also keeps the connection's
//! request "in flight" for its watchdog until it ends.
//!
//! Events are sent unnamed (no `event:` line), so a browser's `EventSource` delivers them to
//! its `message` listener, which is what Posta's dashboard listens to.
//!
//! A stream is bounded: in number (a semaphore in the state: 503 beyond it), in time (it ends
//! after [`MAX_LIFETIME`]; `EventSource` reconnects with `Last-Event-ID` and misses nothing),
//! in memory (a slow reader whose queue fills is ended the same way), and ends at shutdown.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{Either, Full};
use hyper::body::Frame;
use tokio::sync::mpsc;

use super::response::{self, Resp};
use super::view::EventView;
use crate::domain::audit;
use crate::error::{Error, Result};
use crate::state::AppState;

/// A stream ends after this long; the client reconnects where it left off.
const MAX_LIFETIME: Duration = Duration::from_secs(3600);
/// A comment line this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(20);
/// Frames a reader may fall behind before its stream is ended.
const QUEUE: usize = 64;
/// Events read from the store per wake-up.
const BATCH: usize = 100;

/// What the server sends: a whole body at once, or a stream.
pub type Body = Either<Full<Bytes>, StreamBody>;

/// The receiving end of a stream, riding in a response's extensions (which must be `Clone`).
#[derive(Clone)]
pub struct Stream(Arc<Mutex<Option<mpsc::Receiver<Bytes>>>>);

/// Turn a handler's response into the body the connection sends; `hold` (the connection's
/// in-flight mark) lives as long as a stream does.
pub fn into_body<H: Send + 'static>(resp: Resp, hold: Option<H>) -> Response<Body> {
    let (mut parts, full) = resp.into_parts();
    let rx = parts
        .extensions
        .remove::<Stream>()
        .and_then(|s| s.0.lock().ok().and_then(|mut g| g.take()));
    match rx {
        Some(rx) => Response::from_parts(
            parts,
            Either::Right(StreamBody {
                rx,
                _hold: hold.map(|h| Box::new(h) as Box<dyn Send>),
            }),
        ),
        None => Response::from_parts(parts, Either::Left(full)),
    }
}

/// A body fed by a task through a bounded queue; it ends when the task drops its sender.
pub struct StreamBody {
    rx: mpsc::Receiver<Bytes>,
    _hold: Option<Box<dyn Send>>,
}

impl hyper::body::Body for StreamBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .rx
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// `GET /admin/events/stream`: every audit event from now on (or after `Last-Event-ID`), as
/// `id:`/`data: <event JSON>` frames.
pub fn events(state: &AppState, last_event_id: Option<&str>) -> Result<Resp> {
    let Ok(permit) = state.event_streams.clone().try_acquire_owned() else {
        return Err(Error::Unavailable);
    };
    let start = match last_event_id.map(str::trim).filter(|s| !s.is_empty()) {
        Some(id) => id
            .parse::<u64>()
            .map_err(|_| Error::BadRequest("Last-Event-ID must be an event id".into()))?,
        None => audit::last_id(state)?,
    };
    let (tx, rx) = mpsc::channel(QUEUE);
    let st = state.clone();
    tokio::spawn(async move {
        let _permit = permit;
        feed(st, start, tx).await;
    });
    let mut r = response::ok_raw(StatusCode::OK, "text/event-stream", "");
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx would otherwise buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r.extensions_mut()
        .insert(Stream(Arc::new(Mutex::new(Some(rx)))));
    Ok(r)
}

async fn feed(state: AppState, mut last: u64, tx: mpsc::Sender<Bytes>) {
    let mut commits = state.store.watch_commits();
    let mut closing = state.closing.subscribe();
    let deadline = tokio::time::sleep(MAX_LIFETIME);
    tokio::pin!(deadline);
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.tick().await;
    if tx
        .send(Bytes::from_static(b"retry: 5000\n: connected\n\n"))
        .await
        .is_err()
    {
        return;
    }
    loop {
        // Whatever was committed before (or while) waiting is read now.
        let events = match audit::after(&state, last, BATCH) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "event stream: reading the audit log failed");
                return;
            }
        };
        let more = events.len() == BATCH;
        for entry in &events {
            let id = entry.event.id;
            last = id;
            let json = match serde_json::to_string(&EventView::from(entry)) {
                Ok(j) => j,
                Err(_) => continue,
            };
            let frame = format!("id: {id}\ndata: {json}\n\n");
            // A reader that fell this far behind is dropped; it reconnects from `last`.
            if tx.try_send(Bytes::from(frame)).is_err() {
                return;
            }
        }
        if more {
            continue;
        }
        tokio::select! {
            changed = commits.changed() => if changed.is_err() { return },
            _ = closing.wait_for(|c| *c) => return,
            () = &mut deadline => return,
            () = tx.closed() => return,
            _ = keep_alive.tick() => {
                if tx.try_send(Bytes::from_static(b": keep-alive\n\n")).is_err() {
                    return;
                }
            }
        }
    }
}
