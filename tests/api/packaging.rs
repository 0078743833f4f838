//! Shipping artefacts: systemd unit (verify + security), Dockerfile paths, .deb contents,
//! readiness notification, forward-auth examples.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    ensure_command("systemd-analyze", "systemd");
    let unit = std::fs::read_to_string(root().join("systemd/posta.service")).unwrap();
    for key in [
        "Type=notify",
        "DynamicUser=yes",
        "StateDirectory=posta",
        "ConfigurationDirectory=posta",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
        "LoadCredential=jwt_secret",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.contains(key), "unit lacks {key:?}");
    }
    // The data directory is in the installed configuration, where host commands see it.
    assert!(
        !unit.contains("POSTA_DATA_DIR"),
        "the unit must not hide data_dir from the CLI"
    );
    // Verify the unit as shipped, pointing ExecStart at the binary just built.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("posta.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/bin/posta", env!("CARGO_BIN_EXE_posta")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("posta.service:"),
        "verify: {text}"
    );
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&copy)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let level = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(level.contains(" OK") || level.contains(" SAFE"), "{level}");
}

#[test]
fn dockerfile_copies_only_what_exists() {
    let text = std::fs::read_to_string(root().join("packaging/Dockerfile")).unwrap();
    let mut local = 0;
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("COPY "))
    {
        let parts: Vec<&str> = line
            .split_whitespace()
            .skip(1)
            .filter(|p| !p.starts_with("--chown"))
            .collect();
        if parts[0].starts_with("--from=") {
            continue;
        }
        for src in &parts[..parts.len() - 1] {
            assert!(root().join(src).exists(), "Dockerfile copies missing {src}");
            local += 1;
        }
    }
    assert!(local >= 4);
    // The binary the build stage copies is the one the release script produces.
    let script = std::fs::read_to_string(root().join("packaging/build-release.sh")).unwrap();
    assert!(
        script.contains("target=x86_64-unknown-linux-gnu")
            && script.contains("target/$target/release/posta")
    );
    assert!(text.contains("cp target/x86_64-unknown-linux-gnu/release/posta /posta"));
    for needle in [
        "FROM scratch",
        "USER 65532:65532",
        "VOLUME /data",
        "POSTA_DATA_DIR=/data",
        "POSTA_HOST=0.0.0.0",
        "EXPOSE 9000",
        "HEALTHCHECK",
        "CMD [\"/posta\", \"healthcheck\"]",
    ] {
        assert!(text.contains(needle), "Dockerfile lacks {needle}");
    }
    let compose = std::fs::read_to_string(root().join("packaging/compose.yml")).unwrap();
    assert!(compose.contains("dockerfile: packaging/Dockerfile") && compose.contains("/data"));
}

#[test]
fn deb_installs_exactly_binary_unit_and_conffile() {
    ensure_command("dpkg-deb", "dpkg");
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(root().join("packaging/build-deb.sh"))
        .arg(env!("CARGO_BIN_EXE_posta"))
        .arg(out_dir.path())
        .env("DEB_COMPRESSION", "none") // the debug binary is large; compression is not under test
        .output()
        .unwrap();
    assert_ok(&out);
    let deb = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(Path::new(&deb).exists());
    let list = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    let files: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|l| !l.starts_with('d'))
        .map(|l| l.split_whitespace().last().unwrap().to_owned())
        .collect();
    assert_eq!(
        files,
        [
            "./etc/posta/config.toml",
            "./lib/systemd/system/posta.service",
            "./usr/bin/posta"
        ]
    );
    let conf = Command::new("dpkg-deb")
        .args(["-I"])
        .arg(&deb)
        .arg("conffiles")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&conf.stdout).trim(),
        "/etc/posta/config.toml"
    );
    // The installed configuration names the service's data directory.
    let x = tempfile::tempdir().unwrap();
    let out = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(x.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let installed = std::fs::read_to_string(x.path().join("etc/posta/config.toml")).unwrap();
    assert!(
        installed.contains("\ndata_dir = \"/var/lib/posta\""),
        "{installed}"
    );
    // And a host command run with it looks there (the path and its source in the message).
    let out = Command::new(x.path().join("usr/bin/posta"))
        .env_clear()
        .args(["--config"])
        .arg(x.path().join("etc/posta/config.toml"))
        .args(["admin", "list-users"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("/var/lib/posta/posta.redb")
            && err.contains("data_dir in"),
        "{err}"
    );
    // The configuration ships owner and group readable; the postinst (run here under a
    // DPKG_ROOT holding a copy of the account files) creates the `posta` group, which the
    // unit's service joins, and gives the file to it.
    let listing = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rw-r----- ") && l.ends_with("./etc/posta/config.toml")),
        "{listing}"
    );
    let unit = std::fs::read_to_string(root().join("systemd/posta.service")).unwrap();
    assert!(unit.contains("\nSupplementaryGroups=posta\n"));
    if is_root() {
        let ctl = tempfile::tempdir().unwrap();
        let out = Command::new("dpkg-deb")
            .arg("-e")
            .arg(&deb)
            .arg(ctl.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        std::fs::create_dir_all(x.path().join("etc")).unwrap();
        for f in ["passwd", "group", "shadow", "gshadow"] {
            let _ = std::fs::copy(Path::new("/etc").join(f), x.path().join("etc").join(f));
        }
        let conf_path = x.path().join("etc/posta/config.toml");
        std::fs::set_permissions(
            &conf_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
        let out = Command::new(ctl.path().join("postinst"))
            .arg("configure")
            .env("DPKG_ROOT", x.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let groups = std::fs::read_to_string(x.path().join("etc/group")).unwrap();
        let gid: u32 = groups
            .lines()
            .find_map(|l| l.strip_prefix("posta:x:"))
            .and_then(|rest| rest.split(':').next())
            .unwrap()
            .parse()
            .unwrap();
        let meta = std::fs::metadata(&conf_path).unwrap();
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        assert_eq!(
            (meta.gid(), meta.permissions().mode() & 0o777),
            (gid, 0o640)
        );
    }
    let pkg = Command::new("dpkg-deb")
        .args(["-f"])
        .arg(&deb)
        .arg("Package")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&pkg.stdout).trim(), "posta");
}

#[test]
fn notifies_systemd_when_ready() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut cmd = posta_cmd(dir.path());
    cmd.env("NOTIFY_SOCKET", &sock_path);
    let b = Binary::spawn(cmd);
    let mut buf = [0u8; 64];
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means serving.
    let r = std::process::Command::new(env!("CARGO_BIN_EXE_posta"))
        .env("POSTA_PORT", b.addr.rsplit(':').next().unwrap())
        .arg("healthcheck")
        .output()
        .unwrap();
    assert!(r.status.success());
}

#[test]
fn credentials_directory_supplies_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(
        creds.join("jwt_secret"),
        "credential-jwt-secret-0123456789abcdef\n",
    )
    .unwrap();
    let out = posta_cmd(dir.path())
        .env("CREDENTIALS_DIRECTORY", &creds)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("jwt_secret = \"********\""));
}

#[test]
fn forward_auth_examples_pass_every_identity_header() {
    for f in ["nginx.conf", "traefik.yml", "Caddyfile"] {
        let text = std::fs::read_to_string(root().join("packaging/forward-auth").join(f))
            .unwrap()
            .to_lowercase();
        assert!(text.contains("/api/v1/auth/verify"), "{f}");
        for h in [
            "x-posta-user-id",
            "x-posta-user-email",
            "x-posta-user-role",
            "x-posta-auth",
            "x-posta-scopes",
        ] {
            assert!(
                text.contains(h) || text.contains(&h.replace('-', "_")),
                "{f} lacks {h}"
            );
        }
    }
}

/// Whether the tests run as root (as `.ci/run` does): the postinst's group creation needs it.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
