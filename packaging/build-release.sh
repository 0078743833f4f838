#!/usr/bin/env bash
# Release build: one statically linked x86_64 Linux binary (glibc with crt-static, rustls with
# the ring provider; no OpenSSL anywhere), checked, and its path printed on the last line.
# Usage: packaging/build-release.sh            (build + checks)
#        POSTA_COMMIT=abc123 packaging/build-release.sh   (override the baked-in commit)
# It builds into target/x86_64-unknown-linux-gnu/release (its own directory, kept between
# runs: only what changed is rebuilt; the first run compiles every dependency, several
# minutes on a small machine, then Posta's crate as one fully optimised unit, ~3 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static"
echo "build-release: posta $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1) (commit ${POSTA_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}) for $target, static, into target/$target/release" >&2
cargo build --release --locked --target "$target" >&2
bin="target/$target/release/posta"

fail() { echo "build-release: $*" >&2; exit 1; }
desc=$(file -b "$bin")
grep -Eq "static-pie linked|statically linked" <<<"$desc" || fail "not static: $desc"
if ldd "$bin" >/dev/null 2>&1 && ! ldd "$bin" 2>&1 | grep -q "statically linked"; then
  fail "ldd finds dynamic dependencies"
fi
if cargo tree --locked --target "$target" -i openssl >/dev/null 2>&1; then
  fail "openssl is in the dependency tree"
fi
size=$(stat -c %s "$bin")
max=$((15 * 1024 * 1024))
[ "$size" -le "$max" ] || fail "binary is $size bytes, over 15 MiB"
# It must run from an empty directory with nothing else around.
empty=$(mktemp -d)
(cd "$empty" && "$OLDPWD/$bin" version) >&2 || fail "does not run from an empty directory"
rmdir "$empty" 2>/dev/null || true
echo "build-release: $bin: $desc; $((size / 1024)) KiB" >&2
echo "$bin"
