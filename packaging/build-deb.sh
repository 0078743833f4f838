#!/usr/bin/env bash
# Build posta_<version>_amd64.deb around a binary (default: the static release build).
# Installs exactly /usr/bin/posta, /lib/systemd/system/posta.service and
# /etc/posta/config.toml (a conffile). Usage: packaging/build-deb.sh [BINARY] [OUTDIR]
# DEB_COMPRESSION=xz (default), gzip or none.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/x86_64-unknown-linux-gnu/release/posta}
out=${2:-$root/target/deb}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
[ -x "$bin" ] || { echo "build-deb: $bin is not an executable (run packaging/build-release.sh)" >&2; exit 1; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
install -D -m 0755 "$bin" "$stage/usr/bin/posta"
install -D -m 0644 "$root/systemd/posta.service" "$stage/lib/systemd/system/posta.service"
# The installed configuration names the service's data directory, so that host commands
# (`sudo posta admin …`, `posta backup`) read the same store as the service.
install -d "$stage/etc/posta"
sed 's|^data_dir = "./data" |data_dir = "/var/lib/posta"|' "$root/config.toml.example" > "$stage/etc/posta/config.toml"
# Owner and group read it: the postinst gives it the `posta` group, which the service joins
# (SupplementaryGroups=posta), so a secret written into it stays hidden from other users.
chmod 0640 "$stage/etc/posta/config.toml"
grep -q '^data_dir = "/var/lib/posta"' "$stage/etc/posta/config.toml" || { echo "build-deb: data_dir not set in the installed config" >&2; exit 1; }
mkdir -p "$stage/DEBIAN"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: posta
Version: $version
Architecture: amd64
Maintainer: Posta maintainers <posta@localhost>
Section: net
Priority: optional
Description: Posta authentication appliance
 Users, passwords, TOTP, JWT sessions, API keys, OAuth/OIDC single sign-on and
 forward auth for the Posta email platform, in one static binary.
CONTROL
echo "/etc/posta/config.toml" > "$stage/DEBIAN/conffiles"
cat > "$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
# DPKG_ROOT: dpkg's installation root (empty for the running system).
root="${DPKG_ROOT:-}"
if [ "$1" = "configure" ]; then
  # The service runs as a dynamic user that joins this group to read /etc/posta/config.toml.
  if ! grep -q '^posta:' "$root/etc/group"; then
    if [ -n "$root" ]; then groupadd --system --prefix "$root" posta; else groupadd --system posta; fi
  fi
  # On the first installation only: afterwards the operator's owner and mode stand.
  if [ -z "$2" ]; then
    gid=$(awk -F: '$1 == "posta" { print $3 }' "$root/etc/group")
    chgrp "$gid" "$root/etc/posta/config.toml"
    chmod 0640 "$root/etc/posta/config.toml"
  fi
  if [ -z "$root" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
  fi
fi
POSTINST
chmod 0755 "$stage/DEBIAN/postinst"
mkdir -p "$out"
deb="$out/posta_${version}_amd64.deb"
dpkg-deb --root-owner-group -Z"${DEB_COMPRESSION:-xz}" --build "$stage" "$deb" >&2
echo "$deb"
