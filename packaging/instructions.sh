#!/usr/bin/env bash
# User-space instructions per request, counted by valgrind's callgrind: a measure that, unlike
# req/s and CPU time on a shared VM, does not move between runs, so a change of a few percent
# can be seen. Counts the hello-world baseline (also exchanging /auth/verify's bytes), /healthz,
# /users/me (JWT) and /auth/verify (API key) on a 1 000-user store; caches warm, access log on,
# as in production.
# Usage: packaging/instructions.sh [POSTA_BINARY]   (default: builds target/release/posta)
# Kernel work (half of a request's CPU time) is not counted; see packaging/bench.sh for that.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in valgrind wrk curl; do
  command -v "$tool" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool"; }
done
cargo build --release --locked --bin posta --examples >&2
BIN=${1:-$PWD/target/release/posta}
EX=$PWD/target/release/examples
WORK=$(mktemp -d)
VP=
cleanup() { [ -n "$VP" ] && kill "$VP" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

wait_line() { # file -> the address it listens on (valgrind starts slowly)
  for _ in $(seq 1 1200); do
    # posta's start log line ("posta listening on http://ADDR") or the example's "listening addr=ADDR"
    a=$(sed -nE 's/.*listening (addr=|on https?:\/\/)([^ "]+).*/\2/p' "$1" 2>/dev/null | head -1)
    if [ -n "$a" ]; then echo "$a"; return; fi
    sleep 0.05
  done
  echo "no listening line in $1" >&2; exit 1
}

# Zero the counters after a warm-up, drive wrk for 3 s, dump: instructions / requests.
count() { # pid label url [wrk args...]
  local pid=$1 label=$2 url=$3; shift 3
  wrk -t1 -c4 -d1s "$@" "$url" >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  local n; n=$(wrk -t1 -c4 -d3s "$@" "$url" | awk '/requests in/ {print $1}')
  callgrind_control -d "$pid" >/dev/null 2>&1
  sleep 0.5
  local f; f=$(ls -t "$WORK"/cg.* | head -1)
  local ir; ir=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
  printf '| %s | %d | %d |\n' "$label" "$n" $((ir / n))
  mv "$f" "$WORK/done.$RANDOM"
}

echo "| request | requests counted | instructions per request |"
echo "|---|---|---|"
valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p" "$EX/hello" 127.0.0.1:0 >"$WORK/hello.out" 2>/dev/null &
VP=$!
count "$VP" "hello-world (baseline)" "http://$(wait_line "$WORK/hello.out")/"
kill "$VP"; wait "$VP" 2>/dev/null || true

mkdir -p "$WORK/s"
"$EX/fill_store" "$WORK/s" 1000 >"$WORK/fill" 2>/dev/null
KEY=$(sed -n 's/^key=//p' "$WORK/fill")
# What merely exchanging /auth/verify's bytes costs: its request (path and key) in, its answer out.
valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p" "$EX/hello" 127.0.0.1:0 --verify-bytes >"$WORK/bytes.out" 2>/dev/null &
VP=$!
count "$VP" "hello-world exchanging /auth/verify's bytes (no work)" "http://$(wait_line "$WORK/bytes.out")/api/v1/auth/verify" -H "Authorization: Bearer $KEY"
kill "$VP"; wait "$VP" 2>/dev/null || true
(cd "$WORK/s" && POSTA_DATA_DIR="$WORK/s" POSTA_HOST=127.0.0.1 POSTA_PORT=0 POSTA_AUTH_RATE_LIMIT_ENABLED=false \
  exec valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p" "$BIN" serve >"$WORK/s/stdout" 2>"$WORK/s/stderr") &
VP=$!
URL=http://$(wait_line "$WORK/s/stderr")
until curl -sf "$URL/readyz" >/dev/null; do sleep 0.1; done
TOKEN=$(curl -s "$URL/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"violet-tractor-41-moss"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
count "$VP" "GET /api/v1/healthz" "$URL/api/v1/healthz"
count "$VP" "GET /api/v1/users/me (JWT)" "$URL/api/v1/users/me" -H "Authorization: Bearer $TOKEN"
count "$VP" "GET /api/v1/auth/verify (API key)" "$URL/api/v1/auth/verify" -H "Authorization: Bearer $KEY"
