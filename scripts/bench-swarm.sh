#!/usr/bin/env bash
# Swarm scaling benchmark (issue 3). Builds network namespaces on a private bridge: nginx in
# the hub serving ~20,000 real iNaturalist photo paths (random bytes, 8-16 KB each), a
# --no-work seeder, and 1, 2, 3 workers whose links are each limited to $RATE in both
# directions with `tc qdisc tbf`. For N = 1, 2, 3 it runs the whole dataset and prints the
# aggregate images/s and the scaling efficiency throughput(N) / (N x throughput(1)). Then it
# compares the archive transfer protocol (ldawt-dev transfer-bench, the code path workers use to
# return archives) with raw TCP (iperf3) over the same limited worker uplink.
#
# Needs root, iproute2 (ip, tc), nginx, iperf3, python3 with pyarrow; skips with a reason
# otherwise. Everything lives in namespaces named ldawtb-<pid>-*; they are removed on exit.
# Usage: sudo scripts/bench-swarm.sh   (ROWS=20000 RATE=40mbit SHARD_ROWS=250 PROFILE=release|debug KEEP=1)
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-20000}
RATE=${RATE:-40mbit}
SHARD_ROWS=${SHARD_ROWS:-250}
TRANSFER_MB=${TRANSFER_MB:-40}

skip() { echo "SKIP: bench-swarm: $*" >&2; exit 0; }
[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces)"
for tool in ip tc nginx iperf3 python3; do
  command -v "$tool" >/dev/null 2>&1 || skip "$tool is missing (scripts/install-test-deps.sh installs it)"
done
python3 -c 'import pyarrow' 2>/dev/null || skip "python3 pyarrow is missing (used to write the dataset)"
SUBSET=""
for d in . .. ../.. ../../..; do
  [ -f "$d/shared/data/subset_50k.parquet" ] && SUBSET="$d/shared/data/subset_50k.parquet" && break
done
[ -n "$SUBSET" ] || skip "../shared/data/subset_50k.parquet not found"

# PROFILE=debug reuses the test build (dependencies are optimized there too): the links, not
# the CPU, are the bottleneck of this benchmark.
PROFILE=${PROFILE:-release}
# ldawt-dev (transfer-bench) is a development binary, built only with the dev-tools feature.
if [ "$PROFILE" = release ]; then
  cargo build --release --bin ldawt --features dev-tools --bin ldawt-dev >&2
else
  cargo build --bin ldawt --features dev-tools --bin ldawt-dev >&2
fi
LDAWT=$PWD/target/$PROFILE/ldawt
LDAWT_DEV=$PWD/target/$PROFILE/ldawt-dev

P="ldawtb-$$"
K=$(( $$ % 200 + 20 ))
NET="10.77.$K"
HUB_IP="$NET.254"
SEEDER_IP="$NET.1"
WORK=$(mktemp -d /tmp/ldawt-bench-swarm.XXXXXX)
PIDS=()
MAIN_PID=$$

cleanup() {
  [ "${BASHPID:-$$}" = "$MAIN_PID" ] || return 0
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "$P-s" "$P-w1" "$P-w2" "$P-w3" "$P-hub"; do ip netns del "$ns" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then echo "bench-swarm: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT INT TERM

# Foreground commands only: a backgrounded function would hide the real pid from `kill`.
inns() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }

# --- network: hub bridge (with nginx on it), seeder s, workers w1..w3 ----------------------
ip netns add "$P-hub"
ip -n "$P-hub" link add br0 type bridge
ip -n "$P-hub" addr add "$HUB_IP/24" dev br0
ip -n "$P-hub" link set br0 up
ip -n "$P-hub" link set lo up
i=0
for ns in s w1 w2 w3; do
  i=$((i + 1))
  ip netns add "$P-$ns"
  ip link add veth0 netns "$P-$ns" type veth peer name "p$ns" netns "$P-hub"
  ip -n "$P-hub" link set "p$ns" master br0
  ip -n "$P-hub" link set "p$ns" up
  ip -n "$P-$ns" addr add "$NET.$i/24" dev veth0
  ip -n "$P-$ns" link set veth0 up
  ip -n "$P-$ns" link set lo up
done
for w in w1 w2 w3; do
  # uplink (worker -> anyone) and downlink (hub port -> worker), each $RATE
  inns "$w" tc qdisc add dev veth0 root tbf rate "$RATE" burst 64kbit latency 400ms
  inns hub tc qdisc add dev "p$w" root tbf rate "$RATE" burst 64kbit latency 400ms
done

# --- dataset: real photo paths, random bytes, served by nginx in the hub --------------------
python3 - "$SUBSET" "$ROWS" "$WORK" "http://$HUB_IP" <<'PY'
import os, random, sys, urllib.parse
import pyarrow as pa, pyarrow.parquet as pq
subset, rows, work, base = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
t = pq.read_table(subset, columns=["photo_url", "taxon_name"]).slice(0, rows).to_pydict()
rng = random.Random(7)
urls = []
for u in t["photo_url"]:
    path = urllib.parse.urlparse(u).path
    f = os.path.join(work, "www", path.lstrip("/"))
    os.makedirs(os.path.dirname(f), exist_ok=True)
    with open(f, "wb") as fh:
        fh.write(rng.randbytes(rng.randint(8_000, 16_000)))
    urls.append(base + path)
pq.write_table(pa.table({"photo_url": urls, "taxon_name": t["taxon_name"]}), os.path.join(work, "data.parquet"))
print(f"dataset: {len(urls)} rows", file=sys.stderr)
PY
chmod 755 "$WORK"; chmod -R a+rX "$WORK/www"
DATASET_BYTES=$(du -sb "$WORK/www" | cut -f1)
cat > "$WORK/nginx.conf" <<NGINX
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
daemon off;
events { worker_connections 4096; }
http {
  include /etc/nginx/mime.types;
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  server { listen $HUB_IP:80; root $WORK/www; }
}
NGINX
ip netns exec "$P-hub" nginx -c "$WORK/nginx.conf" &
PIDS+=($!)
sleep 1

# --- scaling runs ---------------------------------------------------------------------------
# Runs the dataset with $1 workers; sets RUN_OK (images stored) and RUN_SECS.
run_swarm() {
  local n=$1 out="$WORK/out-$1" log="$WORK/seeder-$1.log"
  mkdir -p "$out"
  local t0 t1
  t0=$(date +%s.%N)
  timeout 1800 ip netns exec "$P-s" "$LDAWT" --no-progress -v node --seed "$WORK/data.parquet" --url-col photo_url \
    --class-col taxon_name --out "$out" --shard-rows "$SHARD_ROWS" --no-work --no-mdns \
    --listen "/ip4/$SEEDER_IP/tcp/4001" --data-dir "$WORK/seed-data-$n" >"$log" 2>&1 &
  local seeder=$!
  PIDS+=("$seeder")
  local join=""
  for _ in $(seq 1 200); do
    join=$(grep -o "/ip4/$SEEDER_IP/tcp/4001/p2p/[A-Za-z0-9]*" "$log" | head -1 || true)
    [ -n "$join" ] && break
    sleep 0.1
  done
  [ -n "$join" ] || { echo "seeder did not start:" >&2; cat "$log" >&2; exit 1; }
  local workers=()
  for w in $(seq 1 "$n"); do
    # The seeder's swarm key (created in its data dir); the fixture hub has a private address.
    ip netns exec "$P-w$w" "$LDAWT" --no-progress -v node --join "$join" --no-mdns --out "$WORK/wout-$n-$w" \
      --swarm-key "$WORK/seed-data-$n/swarm.key" --allow-private-urls \
      --data-dir "$WORK/wdata-$n-$w" --exit-when-idle 120 >"$WORK/worker-$n-$w.log" 2>&1 &
    workers+=($!)
    PIDS+=($!)
  done
  if ! wait "$seeder"; then echo "seeder failed (N=$n):" >&2; tail -20 "$log" >&2; exit 1; fi
  t1=$(date +%s.%N)
  for pid in "${workers[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  RUN_OK=$(python3 -c "import pyarrow.parquet as pq,sys; t=pq.read_table(sys.argv[1]).to_pydict(); print(sum(1 for s in t['status'] if s=='ok'))" "$out/results.parquet")
  RUN_SECS=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$t0" "$t1")
  rm -rf "$WORK/wout-$n-"* "$WORK/wdata-$n-"*
}

echo "bench-swarm: $ROWS rows ($((DATASET_BYTES / 1000000)) MB), shards of $SHARD_ROWS rows, worker links $RATE each way"
declare -A IPS
for n in 1 2 3; do
  run_swarm "$n"
  IPS[$n]=$(python3 -c "import sys; print(f'{int(sys.argv[1]) / float(sys.argv[2]):.1f}')" "$RUN_OK" "$RUN_SECS")
  echo "N=$n workers: $RUN_OK of $ROWS images ok in ${RUN_SECS}s -> ${IPS[$n]} images/s"
done
python3 - "${IPS[1]}" "${IPS[2]}" "${IPS[3]}" <<'PY'
import sys
t = [float(x) for x in sys.argv[1:]]
for n in (2, 3):
    print(f"scaling efficiency N={n}: {t[n-1] / (n * t[0]):.3f}  (throughput({n}) / ({n} x throughput(1)))")
PY

# --- archive transfer vs raw TCP over the same limited uplink (w1 -> seeder) ----------------
ip netns exec "$P-s" iperf3 -s -B "$SEEDER_IP" -1 >/dev/null 2>&1 &
PIDS+=($!)
sleep 0.5
RAW=$(inns w1 iperf3 -c "$SEEDER_IP" -t 10 -J | python3 -c "import json,sys; print(json.load(sys.stdin)['end']['sum_received']['bits_per_second']/1e6)")
ip netns exec "$P-s" "$LDAWT_DEV" transfer-bench serve --listen "/ip4/$SEEDER_IP/tcp/4100" --dir "$WORK/recv" --count 1 >"$WORK/tb.addr" 2>/dev/null &
PIDS+=($!)
for _ in $(seq 1 50); do [ -s "$WORK/tb.addr" ] && break; sleep 0.1; done
TB=$(inns w1 "$LDAWT_DEV" transfer-bench send --to "$(head -1 "$WORK/tb.addr")" --size-mb "$TRANSFER_MB")
python3 - "$RAW" "$TB" <<'PY'
import json, sys
raw = float(sys.argv[1])
tb = json.loads(sys.argv[2])
mbit = tb["mb_per_s"] * 8
print(f"raw TCP (iperf3, 10 s): {raw:.1f} Mbit/s")
print(f"archive transfer ({tb['bytes'] / 1e6:.0f} MB, sha256-verified): {mbit:.1f} Mbit/s in {tb['seconds']:.1f}s")
print(f"archive transfer / raw TCP: {mbit / raw:.3f}")
PY
