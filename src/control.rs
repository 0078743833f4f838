//! The local control socket (`<data_dir>/posta.sock`, mode 0600): lets `posta backup` and
//! `posta export` read a consistent snapshot while the server holds the database lock.
//! Access is governed by file-system permissions on the data directory.
//!
//! Protocol: the client sends one line (`backup` or `export`); the server answers
//! `OK <length>\n` followed by exactly that many bytes, or `ERR <message>\n`.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::state::AppState;

/// The socket's path for a data directory.
#[must_use]
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("posta.sock")
}

/// Produce the snapshot bytes for a command.
async fn answer(state: &AppState, cmd: &str) -> Result<Vec<u8>, String> {
    match cmd {
        "backup" => {
            let tmp = state
                .cfg
                .data_dir
                .join(format!("backup-{}.redb.tmp", uuid::Uuid::new_v4()));
            let store = state.store.clone();
            let t2 = tmp.clone();
            let res = tokio::task::spawn_blocking(move || store.backup_to(&t2))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
            let bytes = match res {
                Ok(()) => tokio::fs::read(&tmp).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            let _ = tokio::fs::remove_file(&tmp).await;
            bytes
        }
        "export" => state
            .store
            .read(crate::domain::export::jsonl)
            .map(String::into_bytes)
            .map_err(|e| e.to_string()),
        other => Err(format!("unknown command {other:?}")),
    }
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
            let reply = answer(&state, &cmd).await;
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
