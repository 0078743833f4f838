//! The local control socket (`<data_dir>/posta.sock`, mode 0600): lets `posta backup` and
//! `posta export` read a consistent snapshot while the server holds the database lock.
//! Access is governed by file-system permissions on the data directory.
//!
//! Protocol: the client sends one line (`backup` or `export`); the server answers
//! `OK <length>\n` followed by exactly that many bytes, or `ERR <message>\n`.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::state::AppState;
use crate::store::ReadTransaction;

/// The socket's path for a data directory.
#[must_use]
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("posta.sock")
}

/// The answer to a command, from one read transaction: the same whether the CLI reads the file
/// itself (server stopped) or the server answers over the socket.
pub fn answer(tx: &ReadTransaction, cmd: &str, scratch_dir: &Path) -> Result<Vec<u8>, String> {
    match cmd {
        "backup" => crate::store::snapshot_bytes(tx, scratch_dir),
        "export" => crate::domain::export::jsonl(tx).map(String::into_bytes),
        other => return Err(format!("unknown command {other:?}")),
    }
    .map_err(|e| e.to_string())
}

/// Serve the control socket until the task is aborted.
#[cfg(unix)]
pub async fn serve(state: AppState) {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(&state.cfg.data_dir);
    // We hold the database lock, so any socket file left here is stale.
    let _ = std::fs::remove_file(&path);
    let listener = match tokio::net::UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "control socket unavailable; online backup disabled");
            return;
        }
    };
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut line = String::new();
            if BufReader::new(r).read_line(&mut line).await.is_err() {
                return;
            }
            let cmd = line.trim().to_owned();
            tracing::info!(command = %cmd, "control socket request");
            let st = state.clone();
            let reply = tokio::task::spawn_blocking(move || {
                st.store
                    .read(|tx| Ok(answer(tx, &cmd, &st.cfg.data_dir)))
                    .map_err(|e| e.to_string())
                    .and_then(|r| r)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            let _ = match reply {
                Ok(bytes) => {
                    let head = format!("OK {}\n", bytes.len());
                    match w.write_all(head.as_bytes()).await {
                        Ok(()) => w.write_all(&bytes).await,
                        Err(e) => Err(e),
                    }
                }
                Err(e) => w.write_all(format!("ERR {e}\n").as_bytes()).await,
            };
            let _ = w.shutdown().await;
        });
    }
}

/// Remove the socket file (at shutdown).
pub fn cleanup(data_dir: &Path) {
    let _ = std::fs::remove_file(socket_path(data_dir));
}

/// Client side: ask the running server for `cmd`'s bytes.
#[cfg(unix)]
pub async fn request(data_dir: &Path, cmd: &str) -> Result<Vec<u8>, String> {
    let path = socket_path(data_dir);
    let mut s = tokio::net::UnixStream::connect(&path).await.map_err(|e| {
        format!(
            "the server holds the database, but its control socket {} is not reachable: {e}",
            path.display()
        )
    })?;
    s.write_all(format!("{cmd}\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    let mut head = String::new();
    r.read_line(&mut head).await.map_err(|e| e.to_string())?;
    if let Some(msg) = head.strip_prefix("ERR ") {
        return Err(msg.trim().to_owned());
    }
    let len: usize = head
        .strip_prefix("OK ")
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("unexpected answer {head:?}"))?;
    let mut buf = Vec::with_capacity(len);
    r.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
    if buf.len() != len {
        return Err(format!("truncated answer: {} of {len} bytes", buf.len()));
    }
    Ok(buf)
}
