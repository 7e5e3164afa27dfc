#!/usr/bin/env bash
# Many-host download benchmark (issue 10, "many hosts with bounded resources"), one command:
#   scripts/bench-scale-hosts.sh
# 1. nginx listening on 0.0.0.0 serves 2,000 synthetic JPEGs (20–250 KB, mean ≈ 80 KB), as in
#    scripts/bench-download.sh; every 127.a.b.c reaches it, so each address is a distinct host.
# 2. Three URL lists are built from ../shared/data/subset_50k.parquet (real paths) with
#    `ldawt fixture-server --rebase-parquet … --hosts N`: each row's host is one of N loopback
#    addresses (a hash of the row number, so a host's rows are spread over the list).
# 3. `ldawt download` (release, defaults: --concurrency 128) runs on each: 1 host (the
#    reference), 10,000 hosts, 100,000 hosts. A poller reads /proc/PID/fd and
#    /proc/PID/status every 50 ms: max open fds and peak RSS; `connect` failures come from the
#    run's overview (error_breakdown). Each figure is printed next to its target.
# 4. Where the time goes: ldawt's CPU seconds (user + sys, from rusage) and nginx's (its
#    workers' /proc stat) per 1,000 rows, and the TCP connections nginx accepted (stub_status)
#    per row: a cold host costs a connect, a handshake and a close on both sides.
# Env: BENCH_ROWS_1 / BENCH_ROWS_10K (20,000 each), BENCH_ROWS_100K (200,000; 0 leaves that
# case out), LDAWT_BIN (a release binary to measure instead of building one).
# Paired mode, when BENCH_BASELINE_BIN (another release binary) is set: instead of the above,
# BENCH_PAIRS rounds (default 3), each running the 1-host and the 10,000-host case with both
# binaries, alternating which binary goes first; each run's 10,000-host / 1-host ratio, CPU and
# connections per row, and per binary the median ratio. The machine's speed drifts, so only
# ratios measured side by side compare two binaries.
# Needs: cargo, python3 (stdlib only), nginx (installed from Debian when root).
set -euo pipefail
. "$(dirname "$0")/lib/bench.sh"
bench_init  # cd to the repository; ROOT, DATA (the real rows)
ROWS_1=${BENCH_ROWS_1:-20000}
ROWS_10K=${BENCH_ROWS_10K:-20000}
ROWS_100K=${BENCH_ROWS_100K:-200000}

bench_need nginx

bench_binary
BIN=$LDAWT_BIN

bench_workdir hosts

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0",0)); print(s.getsockname()[1])')
"$BIN" fixture-server --write-pool "$WORK/www" >/dev/null
# worker_connections well above ldawt's needs: a refused connection must be ldawt's doing.
bench_nginx "$WORK" "0.0.0.0:$PORT backlog=4096" 127.9.8.7 65536 200000 \
  "location = /nginx-status { stub_status; }"

for spec in "1 $ROWS_1" "10000 $ROWS_10K" "100000 $ROWS_100K"; do
  read -r hosts rows <<<"$spec"
  [ "$rows" -gt 0 ] || continue
  "$BIN" fixture-server --rebase-parquet "$DATA" "$WORK/h$hosts.parquet" --rows "$rows" \
    --base-url "http://127.0.0.1:$PORT" --hosts "$hosts" >/dev/null
done

# Runs `ldawt download` on one list; prints "wall ok failed connect_failures rss_mb max_fds rc
# ldawt_cpu_s nginx_cpu_s connections".
run_case() {
  local hosts=$1 bin=${2:-$BIN} out=$WORK/out-$1
  mkdir -p "$out"
  python3 - "$bin" "$WORK/h$hosts.parquet" "$out/h.tar" "$(cat "$WORK/nginx.pid")" "$PORT" <<'PY'
import json, os, resource, subprocess, sys, time, urllib.request
binary, parquet, archive, master, port = sys.argv[1:]
def nginx_cpu():
    total = 0
    for p in os.listdir("/proc"):
        try:
            fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == master:  # ppid: a worker of this nginx
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")
def accepted():
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/nginx-status").read().decode()
    return int(text.splitlines()[2].split()[0])
cpu0, acc0 = nginx_cpu(), accepted()
t = time.monotonic()
p = subprocess.Popen([binary, "download", "--no-progress", "--input", parquet, "--output", archive],
                     stdout=subprocess.DEVNULL)
max_fds, hwm_kb = 0, 0
while p.poll() is None:
    try:
        max_fds = max(max_fds, len(os.listdir(f"/proc/{p.pid}/fd")))
        with open(f"/proc/{p.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm_kb = max(hwm_kb, int(line.split()[1]))
    except (FileNotFoundError, ProcessLookupError):
        pass
    time.sleep(0.05)
wall = time.monotonic() - t
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
ldawt_cpu = usage.ru_utime + usage.ru_stime
nginx_used, conns = nginx_cpu() - cpu0, accepted() - acc0 - 1
rss_kb = max(hwm_kb, usage.ru_maxrss)
doc = json.load(open(archive[: -len(".tar")] + ".overview.json"))
s, errors = doc["download_summary"], doc["error_breakdown"]
if errors:
    print(f"bench: errors {errors}", file=sys.stderr)
print(f"{wall:.3f} {s['successful_downloads']} {s['failed_downloads']} {errors.get('connect', 0)} "
      f"{rss_kb / 1024:.1f} {max_fds} {p.returncode} {ldawt_cpu:.2f} {nginx_used:.2f} {conns}")
PY
  rm -rf "$out"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average at start: $(cut -d' ' -f1-3 /proc/loadavg), ulimit -n $(ulimit -n)"
if [ -n "${BENCH_BASELINE_BIN:-}" ]; then
  PAIRS=${BENCH_PAIRS:-3}
  echo "paired: baseline $BENCH_BASELINE_BIN, new $BIN, $PAIRS rounds; rows: 1 host $ROWS_1, 10,000 hosts $ROWS_10K"
  LINES=()
  for ((r = 1; r <= PAIRS; r++)); do
    order=("baseline $BENCH_BASELINE_BIN" "new $BIN")
    if ((r % 2 == 0)); then order=("new $BIN" "baseline $BENCH_BASELINE_BIN"); fi
    for entry in "${order[@]}"; do
      read -r name bin <<<"$entry"
      echo "bench: round $r, $name…" >&2
      one=$(run_case 1 "$bin")
      many=$(run_case 10000 "$bin")
      LINES+=("$r $name $one $many")
    done
  done
  python3 - "$ROWS_1" "$ROWS_10K" "${LINES[@]}" <<'PY'
import statistics, sys
rows1, rows10k = int(sys.argv[1]), int(sys.argv[2])
ratios = {}
print(f"\n{'round':<6}{'binary':<10}{'1 host img/s':>13}{'10k img/s':>10}{'ratio':>7}"
      f"{'CPU-s/1k 1h':>12}{'CPU-s/1k 10k':>13}{'nginx/1k 10k':>13}{'conn/row 10k':>13}{'RSS 10k':>8}{'failed':>7}")
for line in sys.argv[3:]:
    f = line.split()
    r, name, one, many = f[0], f[1], f[2:12], f[12:22]
    ips1 = int(one[1]) / float(one[0])
    ips10 = int(many[1]) / float(many[0])
    ratio = ips10 / ips1
    ratios.setdefault(name, []).append(ratio)
    print(f"{r:<6}{name:<10}{ips1:>13.0f}{ips10:>10.0f}{ratio:>7.2f}"
          f"{1000 * float(one[7]) / rows1:>12.3f}{1000 * float(many[7]) / rows10k:>13.3f}"
          f"{1000 * float(many[8]) / rows10k:>13.3f}{int(many[9]) / rows10k:>13.3f}{float(many[4]):>8.1f}"
          f"{int(one[2]) + int(many[2]):>7}")
print()
for name, rs in ratios.items():
    print(f"median 10,000-host / 1-host ratio, {name}: {statistics.median(rs):.2f} ({', '.join(f'{x:.2f}' for x in rs)})")
PY
  echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  exit 0
fi
declare -A R
for hosts in 1 10000 100000; do
  if [ "$hosts" = 100000 ] && [ "$ROWS_100K" -eq 0 ]; then
    R[$hosts]="1 0 0 0 0 0 skipped 0 0 0"
    continue
  fi
  echo "bench: ldawt download over $hosts host(s)…" >&2
  R[$hosts]=$(run_case "$hosts")
done
python3 - "${R[1]}" "${R[10000]}" "${R[100000]}" "$ROWS_1" "$ROWS_10K" "$ROWS_100K" <<'PY'
import sys
cases = [("1 host (reference)", sys.argv[1], int(sys.argv[4])),
         ("10,000 hosts", sys.argv[2], int(sys.argv[5])),
         ("100,000 hosts", sys.argv[3], int(sys.argv[6]))]
parsed, cost = [], []
for name, line, rows in cases:
    wall, ok, failed, connect, rss, fds, rc, lcpu, ncpu, conns = line.split()
    parsed.append((name, rows, float(wall), int(ok), int(failed), int(connect), float(rss), int(fds), rc))
    cost.append((name, rows, float(lcpu), float(ncpu), int(conns)))
ref = parsed[0][3] / parsed[0][2]
print(f"\n{'case':<20} {'rows':>8} {'images/s':>9} {'vs 1 host':>9} {'peak RSS MB':>12} {'max fds':>8} {'connect fail':>12} {'failed':>7}")
for name, rows, wall, ok, failed, connect, rss, fds, rc in parsed:
    ips = ok / wall
    print(f"{name:<20} {rows:>8} {ips:>9.0f} {ips / ref:>9.2f} {rss:>12.1f} {fds:>8} {connect:>12} {failed:>7}  (exit {rc}, {wall:.1f} s)")
print(f"\n{'case':<20} {'ldawt CPU-s/1k rows':>20} {'nginx CPU-s/1k rows':>20} {'connections/row':>16}")
for name, rows, lcpu, ncpu, conns in cost:
    rows = rows or 1
    print(f"{name:<20} {1000 * lcpu / rows:>20.3f} {1000 * ncpu / rows:>20.3f} {conns / rows:>16.3f}")
n10, n100 = parsed[1], parsed[2]
def verdict(ok):
    return "met" if ok else "MISSED"
print("\ntargets:")
r10 = (n10[3] / n10[2]) / ref
print(f"  10,000 hosts ≥ 0.8 × the 1-host rate: {r10:.2f} × ({verdict(r10 >= 0.8)})")
if n100[1]:
    print(f"  100,000 hosts peak RSS ≤ 150 MB: {n100[6]:.1f} MB ({verdict(n100[6] <= 150)})")
    print(f"  100,000 hosts open fds ≤ 4,096: {n100[7]} ({verdict(n100[7] <= 4096)})")
conn = sum(p[5] for p in parsed)
print(f"  no connect failures: {conn} ({verdict(conn == 0)})")
PY
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
