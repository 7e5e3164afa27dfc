#!/usr/bin/env bash
# Upload throughput of `ldawt upload` against `rclone copy` (the reference) into the same
# WebDAV server (`rclone serve webdav`) on loopback, same files, same concurrency. Prints MB/s of
# each and the ratio ldawt/rclone. Usage: scripts/bench-upload.sh [FILES] [MB_PER_FILE] [CONCURRENCY]
# LDAWT_BIN picks the binary (default: target/release/ldawt, else target/debug/ldawt).
set -euo pipefail
cd "$(dirname "$0")/.."
files="${1:-48}" mb="${2:-4}" conc="${3:-8}"
bin="${LDAWT_BIN:-}"
if [ -z "$bin" ]; then
  if [ -x target/release/ldawt ]; then bin=target/release/ldawt; else bin=target/debug/ldawt; fi
fi
command -v rclone >/dev/null || { echo "bench-upload: rclone is not installed (scripts/install-test-deps.sh)" >&2; exit 2; }
[ -x "$bin" ] || { echo "bench-upload: $bin not built (cargo build)" >&2; exit 2; }

work="$(mktemp -d)"
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/src/shards" "$work/dav"
for i in $(seq 1 "$files"); do
  head -c "$((mb * 1000000))" /dev/urandom > "$work/src/shards/shard_$i.tar.gz"
done
total_mb=$((files * mb))
rclone serve webdav --addr 127.0.0.1:0 "$work/dav" --user bench --pass benchpw --config /dev/null \
  > "$work/rclone.log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 1 100); do
  port="$(sed -n 's|.*started on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$work/rclone.log")"
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "bench-upload: rclone serve webdav did not start" >&2; cat "$work/rclone.log" >&2; exit 1; }

now() { date +%s.%N; }
t0=$(now)
LDAWT_PASSWORD=benchpw "$bin" upload --no-progress --to "http://127.0.0.1:$port/ldawt" --user bench \
  --concurrency "$conc" "$work/src/shards" > "$work/ldawt.out"
t1=$(now)
tail -1 "$work/ldawt.out"
export RCLONE_CONFIG_DAV_TYPE=webdav RCLONE_CONFIG_DAV_URL="http://127.0.0.1:$port" \
  RCLONE_CONFIG_DAV_USER=bench RCLONE_CONFIG_DAV_PASS="$(rclone obscure benchpw)"
t2=$(now)
rclone copy --config /dev/null --transfers "$conc" "$work/src/shards" dav:rclone/shards
t3=$(now)
cmp -s <(cd "$work/dav/ldawt/shards" && sha256sum ./* | sort) <(cd "$work/src/shards" && sha256sum ./* | sort) \
  || { echo "bench-upload: uploaded files differ from the sources" >&2; exit 1; }
awk -v bin="$bin" -v mb="$total_mb" -v a="$(echo "$t1 - $t0" | bc)" -v b="$(echo "$t3 - $t2" | bc)" -v n="$files" -v c="$conc" 'BEGIN {
  printf "%d files, %d MB, concurrency %d, binary %s\n", n, mb, c, bin;
  printf "ldawt upload : %6.2f s  %7.1f MB/s\n", a, mb / a;
  printf "rclone copy  : %6.2f s  %7.1f MB/s (reference)\n", b, mb / b;
  printf "ratio ldawt/rclone throughput: %.2f\n", (mb / a) / (mb / b);
}'
