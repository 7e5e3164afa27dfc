#!/usr/bin/env bash
# Web-scale benchmark, seeder side (issue 10). From a clean clone: builds release, generates a
# 50M-row parquet (examples/scale_gen.rs: URLs over 1,000 distinct loopback hosts, nothing is
# downloaded), then measures
#   1. seeding: `ldawt node --seed … --shard-rows 10000 --no-work`: time until its
#      manifest.json exists (hash, read, every shard file written) and the node's peak RSS
#      (VmHWM polled from /proc, kept running 5 s after seeding so the lease database and
#      the swarm are up too);
#   2. finalize: synthetic per-shard results files as workers deliver them
#      (`scale_finalize prepare`), then the seeder's real finalize code on every shard done
#      (`scale_finalize run`: results.parquet + overview.json + report.html) under
#      /usr/bin/time -v;
#   3. the coordinator simulation (examples/scale_sim.rs: 100,000 shards, 200 peers, churn);
# and prints each figure next to its target. Then runs scripts/bench-scale-hosts.sh (the
# many-host download cases) if it exists.
# Usage: scripts/bench-scale.sh   (ROWS=50000000 SHARD_ROWS=10000 HOSTS=1000 SIM_SHARDS=100000
#        SIM_PEERS=200 BENCH_DIR=target/bench-scale; KEEP=1 keeps the ~10 GB of files)
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-50000000}
SHARD_ROWS=${SHARD_ROWS:-10000}
HOSTS=${HOSTS:-1000}
SIM_SHARDS=${SIM_SHARDS:-100000}
SIM_PEERS=${SIM_PEERS:-200}
DIR=${BENCH_DIR:-target/bench-scale}

if [ ! -x /usr/bin/time ]; then
  apt-get install -y time >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y time >/dev/null; }
fi

# PROFILE=debug only to try the script on small ROWS; the figures are release figures.
PROFILE=${PROFILE:-release}
flag=--release; [ "$PROFILE" = release ] || flag=
cargo build $flag --bin ldawt --example scale_gen --example scale_finalize --example scale_sim >&2
BIN=$PWD/target/$PROFILE
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
PARQUET=$DIR/data-$ROWS-$HOSTS.parquet
cleanup() {
  [ -n "${NODE_PID:-}" ] && kill "$NODE_PID" 2>/dev/null || true
  if [ -z "${KEEP:-}" ]; then rm -rf "$DIR/seed-data" "$DIR/seed-out" "$DIR/final-out"; fi
}
trap cleanup EXIT

# --- dataset ------------------------------------------------------------------------------
if [ ! -f "$PARQUET" ]; then
  "$BIN/examples/scale_gen" "$PARQUET" "$ROWS" "$HOSTS"
fi
echo "dataset: $PARQUET ($(du -h "$PARQUET" | cut -f1), $ROWS rows, $HOSTS hosts)"

# --- 1. seeding ---------------------------------------------------------------------------
rm -rf "$DIR/seed-data" "$DIR/seed-out"
LOG=$DIR/seed.log
start=$(date +%s.%N)
"$BIN/ldawt" node --seed "$PARQUET" --shard-rows "$SHARD_ROWS" --no-work \
  --data-dir "$DIR/seed-data" --out "$DIR/seed-out" \
  --listen /ip4/127.0.0.1/tcp/0 --no-mdns --status-addr 127.0.0.1:0 >"$LOG" 2>&1 &
NODE_PID=$!
hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
seed_secs=""
peak_kb=0
deadline=$(( $(date +%s) + 1800 ))
while kill -0 "$NODE_PID" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do
  h=$(hwm "$NODE_PID"); [ -n "$h" ] && [ "$h" -gt "$peak_kb" ] && peak_kb=$h
  if [ -z "$seed_secs" ] && compgen -G "$DIR/seed-data/datasets/*/manifest.json" >/dev/null; then
    seed_secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    settle=$(( $(date +%s) + 5 ))
  fi
  if [ -n "$seed_secs" ] && [ "$(date +%s)" -ge "$settle" ]; then break; fi
  sleep 0.2
done
kill -0 "$NODE_PID" 2>/dev/null || { echo "seeder exited early:"; tail -20 "$LOG"; exit 1; }
h=$(hwm "$NODE_PID"); [ "$h" -gt "$peak_kb" ] && peak_kb=$h
kill -INT "$NODE_PID"; wait "$NODE_PID" || true; NODE_PID=""
[ -n "$seed_secs" ] || { echo "seeding did not finish"; tail -20 "$LOG"; exit 1; }
shards=$(ls "$DIR"/seed-data/datasets/*/ | grep -c '^shard-.*\.rows$')

# --- 2. finalize --------------------------------------------------------------------------
rm -rf "$DIR/final-out"
"$BIN/examples/scale_finalize" prepare "$DIR/seed-data" "$DIR/final-out"
FLOG=$DIR/finalize.log
/usr/bin/time -v "$BIN/examples/scale_finalize" run "$DIR/seed-data" "$DIR/final-out" >"$FLOG" 2>&1 \
  || { cat "$FLOG"; exit 1; }
grep '^finalize:' "$FLOG"
fin_secs=$(awk '/^FINALIZE_SECS/ {print $2}' "$FLOG")
fin_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$FLOG")
merged_mb=$(( $(stat -c %s "$DIR/final-out/results.parquet") / 1048576 ))

# --- 3. coordinator simulation ------------------------------------------------------------
SLOG=$DIR/sim.log
/usr/bin/time -v "$BIN/examples/scale_sim" "$SIM_SHARDS" "$SIM_PEERS" >"$SLOG" 2>&1 \
  || { cat "$SLOG"; exit 1; }
grep '^SIM' "$SLOG"

mb() { echo "$(( $1 / 1024 ))"; }
echo
echo "== bench-scale (seeder side): $ROWS rows, --shard-rows $SHARD_ROWS ($shards shards), $(nproc) cores =="
printf '%-52s %14s   %s\n' "case" "measured" "target"
printf '%-52s %11s MB   %s\n' "seeder peak RSS (node --seed --no-work)" "$(mb "$peak_kb")" "<= 150 MB"
printf '%-52s %12s s   %s\n' "seeding time (start to manifest.json)" "$seed_secs" "<= 90 s"
printf '%-52s %12s s   %s\n' "finalize time (results.parquet $merged_mb MB)" "$fin_secs" "<= 120 s"
printf '%-52s %11s MB   %s\n' "finalize peak RSS" "$(mb "$fin_kb")" "bounded (not O(rows))"
printf '%-52s %14s   %s\n' "sim: lease decisions/s ($SIM_SHARDS shards, $SIM_PEERS peers)" \
  "$(awk '/^SIM_DECISIONS_PER_S/ {print $2}' "$SLOG")" "(reported)"
printf '%-52s %14s   %s\n' "sim: gossip bytes per peer per s" \
  "$(awk '/^SIM_GOSSIP_BYTES_PER_PEER_PER_S/ {print $2}' "$SLOG")" "(reported)"
printf '%-52s %11s MB   %s\n' "sim: peak RSS" \
  "$(mb "$(awk -F': ' '/Maximum resident set size/ {print $2}' "$SLOG")")" "(reported)"
grep '^SIM_MEMORY\|^SIM_OUTCOME' "$SLOG"

if [ -x scripts/bench-scale-hosts.sh ]; then
  echo
  scripts/bench-scale-hosts.sh
fi
