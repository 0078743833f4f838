//! Command line: `serve` (default), `version`, `check-config`, `healthcheck`, and `admin`
//! maintenance commands that work on the data directory while the server is stopped.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::clock::SystemClock;
use crate::config::Config;
use crate::control::HostCommand;
use crate::domain::user;
use crate::log_sink::{FlushGuard, LogSink};
use crate::state::AppState;
use crate::store::{self, Store};

#[derive(Parser)]
#[command(name = "posta", version = crate::version::VERSION, about = "Posta authentication appliance")]
struct Cli {
    /// Configuration file (default: /etc/posta/config.toml when it exists).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (the default).
    Serve,
    /// Print version and commit.
    Version,
    /// Print the effective configuration with secrets masked, and exit non-zero if invalid.
    CheckConfig,
    /// Exit 0 when the local server answers /api/v1/healthz.
    Healthcheck,
    /// Account maintenance, with the server running (through its control socket) or stopped
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Write a consistent copy of the store to FILE (safe while the server runs).
    Backup {
        /// Destination; must not exist.
        file: PathBuf,
        /// Put the encryption key and JWT secret in too, the whole file encrypted (age, scrypt)
        /// with a passphrase read from --passphrase-file or standard input.
        #[arg(long)]
        with_keys: bool,
        /// Read the passphrase from this file's first line instead of standard input.
        #[arg(long, requires = "with_keys")]
        passphrase_file: Option<PathBuf>,
    },
    /// Put a backup back as the store (server stopped); a backup written with --with-keys
    /// asks for its passphrase and puts its keys back too.
    Restore {
        /// A file written by `posta backup`.
        file: PathBuf,
        /// Replace an existing store.
        #[arg(long)]
        force: bool,
        /// Read the passphrase of a --with-keys backup from this file instead of standard input.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Replace the encryption key (every sealed secret re-sealed in one transaction) and the
    /// JWT secret (every session ends). Server stopped.
    RotateKeys {
        /// The new encryption key (64 hex characters) when the key is configured through
        /// POSTA_ENCRYPTION_KEY or a credential; otherwise one is generated into the data
        /// directory.
        #[arg(long)]
        new_encryption_key_file: Option<PathBuf>,
    },
    /// Rewrite the store compactly to reclaim free space (server stopped).
    Compact,
    /// Write users (with their argon2 password hashes), keys (hashes only), providers (no
    /// secrets) and settings as JSON lines.
    Export {
        /// Output format (only `jsonl`).
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Write to this file (created owner-only, 0600; it must not exist) instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AdminCmd {
    /// Create a user.
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "user")]
        role: String,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password (read from stdin with --password-stdin, else generated and printed).
    ResetPassword {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change a user's role.
    SetRole {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
    },
    /// List users.
    ListUsers,
    /// Turn off a user's two-factor authentication (lost device).
    #[command(name = "disable-2fa")]
    Disable2fa {
        #[arg(long)]
        email: String,
    },
    /// Print a one-time password reset link to hand to the user (mailed too when mail is
    /// configured); works with the server running or stopped.
    ResetLink {
        #[arg(long)]
        email: String,
    },
    /// Remove every passkey of a user (a lost device); works with the server running or
    /// stopped.
    RemovePasskeys {
        #[arg(long)]
        email: String,
    },
    /// Send a test message through the configured SMTP relay, now (not through the outbox):
    /// proves the smtp_* settings.
    SendTestMail {
        #[arg(long)]
        to: String,
    },
}

/// Entry point of the binary.
#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Cmd::Version) = cli.cmd {
        println!(
            "posta {} (commit {})",
            crate::version::VERSION,
            crate::version::COMMIT
        );
        return ExitCode::SUCCESS;
    }
    let journal = crate::log_sink::stderr_is_journal();
    let (cfg, warnings) = match Config::load(cli.config.as_deref()) {
        Ok(x) => x,
        Err(e) => {
            fatal(journal, &e);
            return ExitCode::from(2);
        }
    };
    if let Some(Cmd::CheckConfig) = cli.cmd {
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        match &cfg.provenance.file {
            Some(f) => println!("# configuration file: {}", f.display()),
            None => println!(
                "# no configuration file ({} does not exist; defaults and POSTA_* variables only)",
                crate::config::DEFAULT_CONFIG_PATH
            ),
        }
        println!("# data_dir from {}", cfg.provenance.data_dir);
        print!("{}", cfg.masked_toml());
        println!("# configuration is valid");
        return ExitCode::SUCCESS;
    }
    let log_guard = init_logging(&cfg, journal);
    for w in warnings {
        tracing::warn!("{w}");
    }
    // Store writes are what runs on the blocking pool, and redb takes one writer at a time: a
    // few threads keep it busy. Without a cap a login storm started hundreds, each leaving
    // a malloc arena behind (BENCHMARKS.md, memory).
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(8)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            fatal(journal, &format!("cannot start runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    // Only `serve` creates a store (and `restore` puts a backup in place): any other command
    // on a missing one says where it looked and why there, and creates nothing.
    let needs_store = matches!(
        cli.cmd,
        Some(
            Cmd::Admin(
                AdminCmd::CreateUser { .. }
                    | AdminCmd::ResetPassword { .. }
                    | AdminCmd::SetRole { .. }
                    | AdminCmd::ListUsers
                    | AdminCmd::Disable2fa { .. }
                    | AdminCmd::ResetLink { .. }
                    | AdminCmd::RemovePasskeys { .. }
            ) | Cmd::Backup { .. }
                | Cmd::Export { .. }
                | Cmd::Compact
                | Cmd::RotateKeys { .. }
        )
    );
    if needs_store && !cfg.db_path().exists() {
        drop(log_guard);
        fatal(
            journal,
            &format!(
                "no store at {} (data_dir from {}; configuration file: {}); only `posta serve` creates one. Point --config or POSTA_DATA_DIR at the server's data directory",
                cfg.db_path().display(),
                cfg.provenance.data_dir,
                cfg.provenance
                    .file
                    .as_deref()
                    .map_or_else(|| "none".to_owned(), |f| f.display().to_string()),
            ),
        );
        return ExitCode::FAILURE;
    }
    let result = match cli.cmd {
        None | Some(Cmd::Serve) => rt.block_on(serve(cfg)),
        Some(Cmd::Healthcheck) => rt.block_on(healthcheck(&cfg)),
        Some(Cmd::Admin(a)) => rt.block_on(admin(cfg, a)),
        Some(Cmd::Backup {
            file,
            with_keys,
            passphrase_file,
        }) => rt.block_on(backup(
            &cfg,
            &file,
            with_keys.then_some(passphrase_file.as_deref()),
        )),
        Some(Cmd::Restore {
            file,
            force,
            passphrase_file,
        }) => restore(&cfg, &file, force, passphrase_file.as_deref()),
        Some(Cmd::RotateKeys {
            new_encryption_key_file,
        }) => rt.block_on(rotate_keys(cfg, new_encryption_key_file.as_deref())),
        Some(Cmd::Export { format, output }) => {
            rt.block_on(export(&cfg, &format, output.as_deref()))
        }
        Some(Cmd::Compact) => Store::compact_file(&cfg.db_path())
            .map(|(b, a)| println!("compacted {}: {b} -> {a} bytes", cfg.db_path().display()))
            .map_err(|e| e.to_string()),
        Some(Cmd::Version | Cmd::CheckConfig) => Ok(()),
    };
    // Whatever was logged before the failure is written before the failure is reported.
    drop(log_guard);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            fatal(journal, &e);
            ExitCode::FAILURE
        }
    }
}

/// Report why the command failed, as an error to the journal when stderr is the journal.
fn fatal(journal: bool, e: &dyn std::fmt::Display) {
    let prefix = if journal { "<3>" } else { "" };
    eprintln!("{prefix}posta: {e}");
}

/// Logs go to stderr through [`LogSink`]: requests never wait on write(2), lines are never
/// dropped, and the returned guard writes what is left when dropped. When stderr is the
/// journal, each line carries its priority.
fn init_logging(cfg: &Config, journal: bool) -> Option<FlushGuard> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&cfg.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = cfg.log_format == "json";
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let b = tracing_subscriber::fmt().with_env_filter(filter);
    let (sink, guard) = match LogSink::new(std::io::stderr(), journal) {
        Ok(x) => x,
        Err(e) => {
            // Cannot start the writer thread: log synchronously rather than not at all.
            eprintln!("posta: log writer thread: {e}; writing logs synchronously");
            let b = b.with_writer(std::io::stderr);
            if json {
                b.json().flatten_event(true).init();
            } else {
                b.with_ansi(colour).init();
            }
            return None;
        }
    };
    if json || !colour {
        // The hand-formatted access line matches these layouts (but has no colours).
        crate::http::access_log::install(sink.clone(), json);
    }
    let b = b.with_writer(sink);
    if json {
        b.json().flatten_event(true).init();
    } else {
        b.with_ansi(colour).init();
    }
    Some(guard)
}

async fn serve(cfg: Config) -> Result<(), String> {
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (host/port): {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let scheme = if cfg.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(addr = %local, version = crate::version::VERSION, "posta listening on {scheme}://{local}");
    if !local.ip().is_loopback() && cfg.tls_cert.is_none() && cfg.trusted_proxies.trim().is_empty()
    {
        tracing::warn!(
            "listening on {local} without TLS and without POSTA_TRUSTED_PROXIES: passwords and sessions cross the network in clear unless a TLS-terminating proxy is in front (list it in POSTA_TRUSTED_PROXIES), or set POSTA_TLS_CERT and POSTA_TLS_KEY"
        );
    }
    let ready = crate::notify::ready_after_start();
    crate::run(cfg, listener, async move {
        ready.await;
        shutdown_signal().await;
    })
    .await
    .map_err(|e| e.to_string())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        match (term, int) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! {
                    _ = t.recv() => tracing::info!("SIGTERM received"),
                    _ = i.recv() => tracing::info!("SIGINT received"),
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn healthcheck(cfg: &Config) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = match cfg.host.as_str() {
        "0.0.0.0" => "127.0.0.1",
        "::" => "::1",
        h => h,
    };
    let addr = if host.contains(':') {
        format!("[{host}]:{}", cfg.port)
    } else {
        format!("{host}:{}", cfg.port)
    };
    let req = format!("GET /api/v1/healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let fut = async {
        let tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        if cfg.tls_cert.is_some() {
            let mut s = crate::notify::local_tls(tcp).await?;
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let _ = s.read_to_end(&mut buf).await;
        } else {
            let mut s = tcp;
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(buf)
    };
    let scheme = if cfg.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://{addr}/api/v1/healthz");
    let buf = tokio::time::timeout(std::time::Duration::from_secs(5), fut)
        .await
        .map_err(|_| format!("healthcheck: {url} did not answer in 5 s"))?
        .map_err(|e| format!("healthcheck: {url}: {e}"))?;
    let head = String::from_utf8_lossy(&buf);
    if head.starts_with("HTTP/1.1 200") {
        println!("ok");
        Ok(())
    } else {
        Err(format!(
            "healthcheck: unexpected answer from {url}: {}",
            head.lines().next().unwrap_or("")
        ))
    }
}

fn read_password(from_stdin: bool) -> Result<(String, bool), String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let pw = line.trim_end_matches(['\r', '\n']).to_owned();
        if pw.is_empty() {
            return Err("--password-stdin: no password on the first line of stdin".into());
        }
        Ok((pw, false))
    } else {
        Ok((user::generate_password().map_err(|e| e.to_string())?, true))
    }
}

/// `posta admin …`: the same use case as the HTTP API, run here when the server is stopped
/// and by the server (over its control socket) when it holds the store.
async fn admin(cfg: Config, cmd: AdminCmd) -> Result<(), String> {
    let mut generated = None;
    let mut password = |from_stdin: bool| -> Result<String, String> {
        let (pw, made) = read_password(from_stdin)?;
        if made {
            generated = Some(pw.clone());
        }
        Ok(pw)
    };
    let cmd = match cmd {
        AdminCmd::CreateUser {
            email,
            name,
            role,
            password_stdin,
        } => HostCommand::CreateUser {
            email,
            name,
            role,
            password: password(password_stdin)?,
        },
        AdminCmd::ResetPassword {
            email,
            password_stdin,
        } => HostCommand::ResetPassword {
            email,
            password: password(password_stdin)?,
        },
        AdminCmd::SetRole { email, role } => HostCommand::SetRole { email, role },
        AdminCmd::ListUsers => HostCommand::ListUsers,
        AdminCmd::Disable2fa { email } => HostCommand::Disable2fa { email },
        AdminCmd::ResetLink { email } => HostCommand::ResetLink { email },
        AdminCmd::RemovePasskeys { email } => HostCommand::RemovePasskeys { email },
        // Needs no store: the relay alone.
        AdminCmd::SendTestMail { to } => return send_test_mail(&cfg, &to).await,
    };
    let out = match Store::open(&cfg.db_path()) {
        Ok(store) => {
            // A host command never makes keys: missing ones are an error, not new keys.
            let state = AppState::open(cfg, store, Arc::new(SystemClock), false)
                .map_err(|e| e.to_string())?;
            crate::control::execute(&state, cmd).await?
        }
        #[cfg(unix)]
        Err(store::OpenError::Locked(_)) => {
            let line = serde_json::to_string(&cmd).map_err(|e| e.to_string())?;
            let bytes = crate::control::request(&cfg.data_dir, &format!("admin {line}")).await?;
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Err(e) => return Err(e.to_string()),
    };
    print!("{out}");
    if let Some(pw) = generated {
        println!("password: {pw}");
    }
    Ok(())
}

/// `posta admin send-test-mail --to ADDR`: one message through the relay, and what it said.
async fn send_test_mail(cfg: &Config, to: &str) -> Result<(), String> {
    let relay = crate::mail::Relay::from_config(cfg)?
        .ok_or("no SMTP relay is configured (set smtp_host, smtp_from and web_url)")?;
    let now = crate::clock::Clock::now(&SystemClock);
    let m = crate::model::Mail {
        id: 0,
        kind: "test".into(),
        to: to.to_owned(),
        subject: "Posta: test message".into(),
        text: "This message proves that Posta can send mail through its SMTP relay.\n".into(),
        html: "<p>This message proves that Posta can send mail through its SMTP relay.</p>".into(),
        created_at: now,
        attempts: 0,
        next_attempt_at: now,
    };
    relay.send(&m).await.map_err(|e| {
        format!(
            "the relay {} {}:{} did not take the message ({}): {}",
            if e.permanent { "refused" } else { "at" },
            cfg.smtp_host.as_deref().unwrap_or_default(),
            cfg.smtp_port,
            if e.permanent {
                "permanent"
            } else {
                "temporary, or unreachable"
            },
            e.reason
        )
    })?;
    println!(
        "test message to {to} accepted by {}:{}",
        cfg.smtp_host.as_deref().unwrap_or_default(),
        cfg.smtp_port
    );
    Ok(())
}

/// A consistent snapshot of the store: directly when no server runs, else through the
/// running server's control socket.
async fn snapshot_bytes(cfg: &Config, cmd: &str) -> Result<Vec<u8>, String> {
    match Store::open_read_only(&cfg.db_path()) {
        Ok(snap) => snap
            .read(|tx| Ok(crate::control::answer(tx, cmd, &cfg.data_dir)))
            .map_err(|e| e.to_string())
            .and_then(|r| r),
        #[cfg(unix)]
        Err(store::OpenError::Locked(_)) => crate::control::request(&cfg.data_dir, cmd).await,
        // After a crash: recover the last committed state as the server would at start-up,
        // then answer from it (no server runs, or the open would report the lock).
        Err(store::OpenError::NeedsRecovery(_)) => Store::open(&cfg.db_path())
            .map_err(|e| e.to_string())?
            .read(|tx| Ok(crate::control::answer(tx, cmd, &cfg.data_dir)))
            .map_err(|e| e.to_string())
            .and_then(|r| r),
        Err(e) => Err(e.to_string()),
    }
}

/// `with_keys`: `Some(passphrase file or stdin)` for an encrypted backup with the keys.
async fn backup(
    cfg: &Config,
    file: &std::path::Path,
    with_keys: Option<Option<&std::path::Path>>,
) -> Result<(), String> {
    if file.exists() {
        return Err(format!("{} already exists", file.display()));
    }
    // Ask first: a wrong passphrase file fails before any work.
    let sealed = match with_keys {
        Some(p) => Some((
            crate::keyring::current(cfg)?,
            crate::keyring::read_passphrase(p)?,
        )),
        None => None,
    };
    let bytes = snapshot_bytes(cfg, "backup").await?;
    // Verified as a store before it is written: the plain snapshot is checked where the store
    // itself lives (an encrypted backup's plaintext never touches the destination's disk).
    let check = match &sealed {
        Some(_) => cfg.data_dir.join("backup-check.redb.tmp"),
        None => file.with_extension("partial"),
    };
    // Owner-only, as the store itself: a backup holds the same password hashes.
    store::write_private(&check, &bytes[..]).map_err(|e| format!("{}: {e}", check.display()))?;
    let verified = Store::open_read_only(&check)
        .map_err(|e| e.to_string())
        .and_then(|s| {
            s.read(|tx| Ok((store::user::count(tx)?, store::meta::key_check(tx)?)))
                .map_err(|e| e.to_string())
        })
        .map_err(|e| format!("verifying the backup: {e}"));
    let Ok((users, kcv)) = verified else {
        let _ = std::fs::remove_file(&check);
        return verified.map(|_| ());
    };
    if let Some((keys, passphrase)) = sealed {
        let _ = std::fs::remove_file(&check);
        if kcv.is_some()
            && !crate::domain::keys::is_check_value_of(kcv, keys.encryption)
                .map_err(|e| e.to_string())?
        {
            return Err(crate::auth::crypto::WRONG_KEY.into());
        }
        let archive = crate::keyring::seal(&bytes, &keys, passphrase)?;
        let partial = file.with_extension("partial");
        store::write_private(&partial, &archive[..])
            .map_err(|e| format!("{}: {e}", partial.display()))?;
        std::fs::rename(&partial, file).map_err(|e| e.to_string())?;
        println!(
            "backup with keys written to {} ({users} users; encrypted with your passphrase: without it the file is useless, keep it apart from the file)",
            file.display()
        );
        return Ok(());
    }
    std::fs::rename(&check, file).map_err(|e| e.to_string())?;
    println!("backup written to {} ({users} users)", file.display());
    println!(
        "the keys are not in it: keep {} and {} (or your POSTA_ENCRYPTION_KEY / POSTA_JWT_SECRET) with it, or use --with-keys",
        crate::keyring::encryption_key_file(cfg).display(),
        crate::keyring::jwt_key_file(cfg).display()
    );
    Ok(())
}

fn restore(
    cfg: &Config,
    file: &std::path::Path,
    force: bool,
    passphrase_file: Option<&std::path::Path>,
) -> Result<(), String> {
    let dest = cfg.db_path();
    if dest.exists() {
        if !force {
            return Err(format!(
                "{} exists; pass --force to replace it",
                dest.display()
            ));
        }
        // Fails with a clear message while a server holds the store.
        drop(Store::open(&dest).map_err(|e| e.to_string())?);
    }
    let with_keys = if crate::keyring::is_sealed(file)? {
        let passphrase = crate::keyring::read_passphrase(passphrase_file)?;
        Some(crate::keyring::open(file, passphrase)?)
    } else {
        None
    };
    store::private_dir(&cfg.data_dir).map_err(|e| e.to_string())?;
    let tmp = dest.with_extension("redb.restore");
    // Owner-only whatever the backup file's mode (`fs::copy` would carry it over).
    match &with_keys {
        Some((_, snapshot)) => store::write_private(&tmp, &snapshot[..]),
        None => std::fs::File::open(file).and_then(|from| store::write_private(&tmp, from)),
    }
    .map_err(|e| format!("copy: {e}"))?;
    // The backup must be a readable posta store this binary understands, sealed under the
    // keys that came with it.
    let installed = (|| {
        let (users, kcv) = Store::open_read_only(&tmp)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                s.read(|tx| Ok((store::user::count(tx)?, store::meta::key_check(tx)?)))
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| format!("not a usable backup: {e}"))?;
        let mut said = Vec::new();
        if let Some((keys, _)) = &with_keys {
            if kcv.is_some()
                && !crate::domain::keys::is_check_value_of(kcv, keys.encryption)
                    .map_err(|e| e.to_string())?
            {
                return Err("the backup's keys do not match its store".to_owned());
            }
            said = crate::keyring::install(cfg, keys)?;
        }
        Ok((users, said))
    })();
    let (users, said) = match installed {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, &dest).map_err(|e| format!("rename: {e}"))?;
    println!(
        "restored {} ({users} users) into {}",
        file.display(),
        dest.display()
    );
    for line in &said {
        println!("{line}");
    }
    if with_keys.is_none() {
        println!(
            "the keys travel with the store: put the encryption key it was used with at {} (or set POSTA_ENCRYPTION_KEY), and its {} (or POSTA_JWT_SECRET) for sessions to survive; the server refuses to start with another encryption key",
            crate::keyring::encryption_key_file(cfg).display(),
            crate::keyring::jwt_key_file(cfg).display()
        );
    }
    Ok(())
}

/// `posta rotate-keys`: the server stopped, the store opened here.
async fn rotate_keys(cfg: Config, new_key_file: Option<&std::path::Path>) -> Result<(), String> {
    use crate::keyring;
    let store = match Store::open(&cfg.db_path()) {
        Ok(s) => s,
        Err(store::OpenError::Locked(_)) => {
            return Err("the server holds the store: stop it (systemctl stop posta, docker stop posta), run rotate-keys, and start it again".into());
        }
        Err(e) => return Err(e.to_string()),
    };
    let in_files = cfg.encryption_key.is_none();
    if in_files {
        keyring::settle(&cfg, &store)?;
    }
    let new_key = match new_key_file {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            crate::auth::crypto::parse_key(&text)
                .ok_or_else(|| format!("{} does not hold 64 hex characters", p.display()))?
        }
        None if in_files => crate::auth::crypto::random_bytes::<32>().map_err(|e| e.to_string())?,
        None => {
            return Err("the encryption key is configured (POSTA_ENCRYPTION_KEY or the encryption_key credential): write a new key (openssl rand -hex 32) to a file, pass it with --new-encryption-key-file, and configure it before the next start".into());
        }
    };
    let new_jwt = match cfg.jwt_secret {
        Some(_) => None,
        None => Some(crate::auth::crypto::random_bytes::<32>().map_err(|e| e.to_string())?),
    };
    let jwt_file = keyring::jwt_key_file(&cfg);
    let cfg2 = cfg.clone();
    let state =
        AppState::open(cfg2, store, Arc::new(SystemClock), false).map_err(|e| e.to_string())?;
    crate::domain::keys::check(&state)
        .await
        .map_err(|e| e.to_string())?;
    if in_files {
        keyring::stage(&cfg, &new_key, new_jwt.as_ref())?;
    }
    let done = crate::domain::keys::rotate(&state, new_key)
        .await
        .map_err(|e| e.to_string())?;
    if in_files {
        keyring::settle(&cfg, &state.store)?;
    } else if let Some(j) = &new_jwt {
        keyring::write_key_file(&jwt_file, crate::auth::crypto::to_hex(j).as_bytes())?;
    }
    println!(
        "keys rotated: {} TOTP secrets and {} provider secrets re-sealed, {} sessions ended (everyone signs in again; recovery codes stay valid)",
        done.totp, done.provider_secrets, done.sessions
    );
    if in_files {
        println!(
            "new keys in {} and {}; the old encryption key is kept as {} because backups taken before now need it: delete it once they are gone (or if it leaked, after taking a new backup)",
            keyring::encryption_key_file(&cfg).display(),
            jwt_file.display(),
            keyring::encryption_key_file(&cfg)
                .with_extension("key.previous")
                .display()
        );
    } else {
        println!(
            "configure the new encryption key (POSTA_ENCRYPTION_KEY or the encryption_key credential) before the next start: the server refuses the old one"
        );
    }
    if new_jwt.is_none() {
        println!("set POSTA_JWT_SECRET to a new value before the next start");
    }
    Ok(())
}

async fn export(
    cfg: &Config,
    format: &str,
    output: Option<&std::path::Path>,
) -> Result<(), String> {
    if format != "jsonl" {
        return Err(format!("unknown format {format:?} (only jsonl)"));
    }
    let bytes = snapshot_bytes(cfg, "export").await?;
    if let Some(path) = output {
        if path.exists() {
            return Err(format!("{} already exists", path.display()));
        }
        // Owner-only, as the store: the export holds the password hashes.
        store::write_private(path, &bytes[..]).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("export written to {}", path.display());
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())
}
