//! The key files beside the store, and the passphrase-encrypted backup that carries them.
//!
//! A store is useless without its encryption key (TOTP and provider secrets are sealed with
//! it) and its sessions need the JWT secret: `backup --with-keys` puts both and a snapshot in
//! one `age` file (scrypt passphrase recipient), so a copied backup reveals no secret and a
//! restore on a new host needs nothing else. `rotate-keys` writes the new key files beside the
//! old ones before the store commits, and renames them after; a start-up after a crash in
//! between finishes (or undoes) the rename by the store's key check value.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;

use crate::auth::crypto;
use crate::config::Config;
use crate::domain::keys;
use crate::store::{self, Store};

/// First line of the plaintext inside the `age` file, then one JSON line, then the snapshot.
const MAGIC: &[u8] = b"posta-backup-with-keys v1\n";
/// How an `age` file begins (what `restore` looks for to ask for a passphrase).
const AGE_HEADER: &[u8] = b"age-encryption.org/v1\n";
/// A shorter passphrase is refused when writing: the archive holds the keys to everything.
pub const MIN_PASSPHRASE: usize = 12;

/// The keys a data directory's store goes with.
pub struct Keys {
    /// The 32-byte encryption key.
    pub encryption: [u8; 32],
    /// The JWT secret's bytes (a 32-byte key file, or POSTA_JWT_SECRET's text).
    pub jwt: Vec<u8>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys([redacted])")
    }
}

/// Path of the encryption key file in the data directory.
#[must_use]
pub fn encryption_key_file(cfg: &Config) -> PathBuf {
    cfg.data_dir.join("encryption.key")
}

/// Path of the JWT key file in the data directory.
#[must_use]
pub fn jwt_key_file(cfg: &Config) -> PathBuf {
    cfg.data_dir.join("jwt.key")
}

fn read_key_file(path: &Path) -> Result<[u8; 32], String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    crypto::parse_key(&text).ok_or_else(|| format!("{} is malformed", path.display()))
}

/// The keys in use, from the configuration (environment, credentials) or the key files;
/// never made up.
pub fn current(cfg: &Config) -> Result<Keys, String> {
    let encryption = match &cfg.encryption_key {
        Some(s) => crypto::parse_key(s.expose()).ok_or("encryption_key is not 32 bytes")?,
        None => read_key_file(&encryption_key_file(cfg))?,
    };
    let jwt = match &cfg.jwt_secret {
        Some(s) => s.expose().as_bytes().to_vec(),
        None => read_key_file(&jwt_key_file(cfg))?.to_vec(),
    };
    Ok(Keys { encryption, jwt })
}

/// Replace `path` with `content` (0600) so that a reader sees the old file or the new one.
pub fn write_key_file(path: &Path, content: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("key.tmp");
    store::write_private(&tmp, content).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
    sync_dir(path)
}

fn sync_dir(path: &Path) -> Result<(), String> {
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("{}: {e}", dir.display())),
        None => Ok(()),
    }
}

/// Read a passphrase from a file (its first line) or, without one, from standard input.
pub fn read_passphrase(file: Option<&Path>) -> Result<SecretString, String> {
    let mut text = String::new();
    match file {
        Some(p) => {
            text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprint!("passphrase (one line): ");
            }
            std::io::BufRead::read_line(&mut std::io::stdin().lock(), &mut text)
                .map_err(|e| format!("reading the passphrase from standard input: {e}"))?;
        }
    }
    let line = text.lines().next().unwrap_or("").to_owned();
    if line.is_empty() {
        return Err("no passphrase (first line of --passphrase-file, or of standard input)".into());
    }
    Ok(SecretString::from(line))
}

/// Encrypt a snapshot and its keys under a passphrase.
pub fn seal(snapshot: &[u8], k: &Keys, passphrase: SecretString) -> Result<Vec<u8>, String> {
    use age::secrecy::ExposeSecret;
    if passphrase.expose_secret().chars().count() < MIN_PASSPHRASE {
        return Err(format!(
            "the passphrase must be at least {MIN_PASSPHRASE} characters: this file holds the keys to every secret in the store"
        ));
    }
    let header = serde_json::json!({
        "encryption_key": crypto::to_hex(&k.encryption),
        "jwt_secret": crypto::to_hex(&k.jwt),
        "store_bytes": snapshot.len(),
        "posta_version": crate::version::VERSION,
    });
    let mut out = Vec::with_capacity(snapshot.len() + 1024);
    let mut w = age::Encryptor::with_user_passphrase(passphrase)
        .wrap_output(&mut out)
        .map_err(|e| e.to_string())?;
    w.write_all(MAGIC)
        .and_then(|()| w.write_all(header.to_string().as_bytes()))
        .and_then(|()| w.write_all(b"\n"))
        .and_then(|()| w.write_all(snapshot))
        .map_err(|e| e.to_string())?;
    w.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

/// Whether `file` begins as an `age` file (a backup written with `--with-keys`).
pub fn is_sealed(file: &Path) -> Result<bool, String> {
    let mut head = [0u8; AGE_HEADER.len()];
    let mut f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let n = f.read(&mut head).map_err(|e| e.to_string())?;
    Ok(n == head.len() && head == AGE_HEADER)
}

/// Decrypt a `--with-keys` backup: its keys and the snapshot's bytes.
pub fn open(file: &Path, passphrase: SecretString) -> Result<(Keys, Vec<u8>), String> {
    let f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let d = age::Decryptor::new(std::io::BufReader::new(f))
        .map_err(|e| format!("{} is not a readable age file: {e}", file.display()))?;
    let mut identity = age::scrypt::Identity::new(passphrase);
    // The writer's work factor targets about a second on its machine; allow a slower reader.
    identity.set_max_work_factor(22);
    let mut r = d
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .map_err(|e| format!("cannot decrypt {}: {e}", file.display()))?;
    let mut plain = Vec::new();
    r.read_to_end(&mut plain)
        .map_err(|e| format!("cannot decrypt {}: {e}", file.display()))?;
    let rest = plain
        .strip_prefix(MAGIC)
        .ok_or("not a posta backup with keys (unknown content)")?;
    let nl = rest
        .iter()
        .position(|b| *b == b'\n')
        .ok_or("a posta backup with keys without its header")?;
    let (head, body) = rest.split_at(nl);
    let body = body.get(1..).unwrap_or_default();
    let h: serde_json::Value =
        serde_json::from_slice(head).map_err(|e| format!("backup header: {e}"))?;
    let hex = |name: &str| -> Result<Vec<u8>, String> {
        let s = h[name]
            .as_str()
            .ok_or(format!("backup header: no {name}"))?;
        crypto::from_hex(s).ok_or(format!("backup header: {name} is not hex"))
    };
    let encryption: [u8; 32] = hex("encryption_key")?
        .try_into()
        .map_err(|_| "backup header: encryption_key is not 32 bytes")?;
    let jwt = hex("jwt_secret")?;
    if h["store_bytes"].as_u64() != Some(body.len() as u64) {
        return Err("the backup is truncated (its snapshot is shorter than recorded)".into());
    }
    Ok((Keys { encryption, jwt }, body.to_vec()))
}

/// Put restored keys where the server will look: key files in the data directory, or, when
/// the configuration sets a key, check that it is the same. Returns what to tell the operator.
pub fn install(cfg: &Config, k: &Keys) -> Result<Vec<String>, String> {
    let mut said = Vec::new();
    match &cfg.encryption_key {
        Some(s) => {
            if crypto::parse_key(s.expose()) != Some(k.encryption) {
                return Err("the configured encryption key (POSTA_ENCRYPTION_KEY or the encryption_key credential) is not the one in this backup: set it to the backup's key, or unset it so that restore writes encryption.key".into());
            }
            said.push("the configured encryption key is the backup's".to_owned());
        }
        None => {
            let path = encryption_key_file(cfg);
            keep_previous(&path, &k.encryption)?;
            write_key_file(&path, crypto::to_hex(&k.encryption).as_bytes())?;
            said.push(format!("encryption key written to {}", path.display()));
        }
    }
    match (&cfg.jwt_secret, <[u8; 32]>::try_from(k.jwt.as_slice())) {
        (Some(s), _) if s.expose().as_bytes() == k.jwt.as_slice() => {
            said.push("the configured JWT secret is the backup's".to_owned());
        }
        (Some(_), _) => said.push(
            "POSTA_JWT_SECRET differs from the backup's: the backup's sessions will not verify (users sign in again)".to_owned(),
        ),
        (None, Ok(key)) => {
            let path = jwt_key_file(cfg);
            write_key_file(&path, crypto::to_hex(&key).as_bytes())?;
            said.push(format!("JWT key written to {}", path.display()));
        }
        (None, Err(_)) => said.push(
            "the backup's JWT secret came from POSTA_JWT_SECRET: set the same value for its sessions to stay valid".to_owned(),
        ),
    }
    Ok(said)
}

/// Before replacing a different encryption key file, keep it as `encryption.key.previous`:
/// backups taken under it still need it.
fn keep_previous(path: &Path, new: &[u8; 32]) -> Result<(), String> {
    match read_key_file(path) {
        Ok(old) if &old != new => {
            let prev = path.with_extension("key.previous");
            std::fs::rename(path, &prev).map_err(|e| format!("{}: {e}", prev.display()))?;
            sync_dir(path)
        }
        _ => Ok(()),
    }
}

fn pending(path: &Path) -> PathBuf {
    path.with_extension("key.new")
}

/// `rotate-keys`, first step when the keys live in the data directory: write the new key
/// files beside the current ones.
pub fn stage(cfg: &Config, encryption: &[u8; 32], jwt: Option<&[u8; 32]>) -> Result<(), String> {
    write_key_file(
        &pending(&encryption_key_file(cfg)),
        crypto::to_hex(encryption).as_bytes(),
    )?;
    if let Some(j) = jwt {
        write_key_file(&pending(&jwt_key_file(cfg)), crypto::to_hex(j).as_bytes())?;
    }
    Ok(())
}

/// `rotate-keys`, last step (and start-up after a crash): when the store is sealed under the
/// staged encryption key, the staged files replace the current ones (the old encryption key
/// kept as `encryption.key.previous` for older backups); otherwise the store never committed
/// the rotation and the staged files go. Returns whether a staged rotation was completed.
pub fn settle(cfg: &Config, store: &Store) -> Result<bool, String> {
    let enc = encryption_key_file(cfg);
    let jwt = jwt_key_file(cfg);
    let (staged_enc, staged_jwt) = (pending(&enc), pending(&jwt));
    if !staged_enc.exists() {
        return Ok(false);
    }
    let committed = match read_key_file(&staged_enc) {
        Ok(key) => keys::store_is_sealed_with(store, key).map_err(|e| e.to_string())?,
        Err(_) => false,
    };
    if committed {
        let prev = enc.with_extension("key.previous");
        if enc.exists() {
            std::fs::rename(&enc, &prev).map_err(|e| format!("{}: {e}", prev.display()))?;
        }
        std::fs::rename(&staged_enc, &enc).map_err(|e| format!("{}: {e}", enc.display()))?;
        if staged_jwt.exists() {
            std::fs::rename(&staged_jwt, &jwt).map_err(|e| format!("{}: {e}", jwt.display()))?;
        }
    } else {
        let _ = std::fs::remove_file(&staged_enc);
        let _ = std::fs::remove_file(&staged_jwt);
    }
    sync_dir(&enc)?;
    Ok(committed)
}
