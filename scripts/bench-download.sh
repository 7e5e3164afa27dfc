#!/usr/bin/env bash
# Download benchmark (issue 2), one command from a clean clone:
#   scripts/bench-download.sh
# 1. nginx on loopback serves 2,000 synthetic JPEGs (20–250 KB, mean ≈ 80 KB); iNaturalist
#    paths /photos/<id>/medium.<ext> map to pool/<last 3 digits of id>.<jpg|jpeg>.
# 2. A 10,000-row parquet is built from ../shared/data/subset_50k.parquet (real rows), its
#    hosts rewritten to that nginx.
# 3. In the same run: wrk -t2 -c64 over the same paths (the machine's limit), then
#    `ldawt download` (release) to a plain .tar and to a .tar.gz; images/s, MB/s, CPU-s per
#    1,000 images, peak RSS and ldawt/wrk.
# 4. Resize case (issue 11), same nginx and the same rows: img2dataset 1.47 (pip-installed into
#    a venv by this script, $BENCH_VENV, default target/bench-venv) and `ldawt download`, both
#    with resize_mode border, 256 px, jpg q95, webdataset output; images/s and CPU-s per 1,000
#    images for both, the ratios, and ldawt's own no-resize webdataset rate beside it. The
#    synthetic pool above is not decodable, so this case serves 1,000 real JPEGs (640x480,
#    500x375, 480x640, 800x533; q90, mean ~90 KB, drawn with OpenCV) under /real/.
# 5. WAN-like case: ldawt's own fixture server adding 200 ms before every first byte, one host,
#    per-host cap = concurrency (128), against the ideal concurrency / latency; and LDAWT's
#    per-host cap of 20 for comparison.
# 6. Regression check (issue 9), only when BENCH_BASELINE_REV (a git revision, built into
#    target/baseline by this script) or BENCH_BASELINE_BIN (a built binary) is set: the plain
#    .tar case of step 3 run BENCH_PAIRS times (default 3) for both binaries, alternating which
#    goes first, with each pair's ratio new/baseline and the median ratio — the VM's speed
#    drifts, so only paired runs compare two binaries. BENCH_PAIRED_ONLY=1 stops after it.
# LDAWT_BIN measures a given release binary instead of building one.
# Needs: cargo, python3 (stdlib and venv), nginx and wrk (installed from Debian when root), and
# PyPI for img2dataset and its numpy/OpenCV (which also draw the decodable images of case 4;
# BENCH_SKIP_IMG2DATASET=1 leaves img2dataset's own run out).
# BENCH_ONLY=resize runs case 4 alone; BENCH_RESIZE_RUNS=N (default 1) runs its img2dataset /
# ldawt pair N times, alternately, each ldawt line compared with the img2dataset run just before.
set -euo pipefail
. "$(dirname "$0")/lib/bench.sh"
bench_init  # cd to the repository; ROOT, DATA (the real rows)
ROWS=${BENCH_ROWS:-10000}
ONLY=${BENCH_ONLY:-}
case "$ONLY" in ""|resize) ;; *) echo "bench: BENCH_ONLY=$ONLY: only 'resize' is known" >&2; exit 2 ;; esac
RESIZE_RUNS=${BENCH_RESIZE_RUNS:-1}
WAN_ROWS=${BENCH_WAN_ROWS:-6000}

bench_need nginx wrk

if [ -n "${LDAWT_BIN:-}" ]; then
  BIN=$LDAWT_BIN  # a release binary to measure instead of building one
else
  echo "bench: building the release binary (cargo build --release)…" >&2
  cargo build --release --quiet
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/ldawt
fi
BASE_BIN=${BENCH_BASELINE_BIN:-}
if [ -z "$BASE_BIN" ] && [ -n "${BENCH_BASELINE_REV:-}" ]; then
  BASE_SRC=$ROOT/target/baseline/src-$(git rev-parse --short "$BENCH_BASELINE_REV")
  if [ ! -f "$BASE_SRC/Cargo.toml" ]; then
    mkdir -p "$BASE_SRC" && git archive "$BENCH_BASELINE_REV" | tar -x -C "$BASE_SRC"
  fi
  echo "bench: building the baseline $BENCH_BASELINE_REV (release)…" >&2
  CARGO_TARGET_DIR=$ROOT/target/baseline/target cargo build --release --quiet --bin ldawt \
    --manifest-path "$BASE_SRC/Cargo.toml"
  BASE_BIN=$ROOT/target/baseline/target/release/ldawt
fi
[ -z "$BASE_BIN" ] || [ -x "$BASE_BIN" ] || { echo "bench: baseline binary $BASE_BIN missing" >&2; exit 2; }

VENV=${BENCH_VENV:-$ROOT/target/bench-venv}
if [ ! -x "$VENV/bin/img2dataset" ] && [ -z "${BENCH_PAIRED_ONLY:-}" ]; then
  echo "bench: installing img2dataset 1.47.0 into $VENV…" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q img2dataset==1.47.0 >&2
fi

WORK=$(mktemp -d /tmp/ldawt-bench.XXXXXX)
chmod 755 "$WORK"  # nginx workers run as an unprivileged user
FX_PID=""
cleanup() {
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  [ -n "$FX_PID" ] && kill "$FX_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
"$BIN" fixture-server --write-pool "$WORK/www" >&2
bench_nginx "$WORK" "127.0.0.1:$PORT" 127.0.0.1 4096 "" \
  'location ~ "^/real/photos/[0-9]*([0-9][0-9][0-9])/[A-Za-z]+\.[A-Za-z]+$" { try_files /real/$1.jpg =404; }'

"$BIN" fixture-server --rebase-parquet "$DATA" "$WORK/bench.parquet" --rows "$ROWS" \
  --base-url "http://127.0.0.1:$PORT" --paths-out "$WORK/paths.txt" >&2
cat > "$WORK/paths.lua" <<LUA
local paths = {}
for line in io.lines("$WORK/paths.txt") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i + 1
  if i > #paths then i = 1 end
  return wrk.format("GET", paths[i])
end
LUA

# Runs a command, prints "wall_s user_s sys_s maxrss_kib exit_code" (python3 stdlib rusage).
measure() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
wall = time.monotonic() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{wall:.3f} {ru.ru_utime:.3f} {ru.ru_stime:.3f} {ru.ru_maxrss} {rc}")
PY
}
ok_of() {
  python3 -c "
import json, sys
doc = json.load(open(sys.argv[1]))
d = doc['download_summary']
if doc['error_breakdown']:
    print('bench: errors:', doc['error_breakdown'], file=sys.stderr)
print(d['successful_downloads'], d['total_bytes'])" "$1"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -z "$ONLY" ]; then
echo "bench: wrk -t2 -c64 -d10s over the same $ROWS paths…" >&2
WRK_RPS=$(wrk -t2 -c64 -d10s -s "$WORK/paths.lua" "http://127.0.0.1:$PORT" | awk '/Requests\/sec/ {print $2}')

printf '\n%-34s %9s %9s %12s %9s %9s\n' "case" "images/s" "MB/s" "CPU-s/1k img" "RSS MB" "vs wrk"
printf '%-34s %9.0f %9s %12s %9s %9s\n' "wrk -t2 -c64 (nginx, loopback)" "$WRK_RPS" "-" "-" "-" "1.00"
report() { # name archive-path measured-line
  local name=$1 archive=$2; read -r wall user sys rss rc <<<"$3"
  local stem=${archive%.tar.gz}; stem=${stem%.tar}
  read -r ok bytes <<<"$(ok_of "$stem.overview.json")"
  python3 - "$name" "$wall" "$user" "$sys" "$rss" "$ok" "$bytes" "${4:-}" "$rc" <<'PY'
import sys
name, wall, user, sys_, rss, ok, nbytes, ref, rc = sys.argv[1:]
wall, user, sys_, rss, ok, nbytes = float(wall), float(user), float(sys_), int(rss), int(ok), int(nbytes)
ips = ok / wall
ratio = f"{ips / float(ref):.2f}" if ref else "-"
cpu = (user + sys_) / max(ok, 1) * 1000
print(f"{name:<34} {ips:9.0f} {nbytes / 1e6 / wall:9.1f} {cpu:12.3f} {rss / 1024:9.1f} {ratio:>9}  (ok {ok}, exit {rc}, {wall:.2f} s)")
PY
}
for out in bench.tar bench.tar.gz; do
  rm -rf "$WORK/out/"*
  line=$(measure "$BIN" download --no-progress --input "$WORK/bench.parquet" --output "$WORK/out/$out")
  report "ldawt download → $out" "$WORK/out/$out" "$line" "$WRK_RPS"
done
fi

if [ -n "$BASE_BIN" ]; then
  PAIRS=${BENCH_PAIRS:-3}
  printf '\n%-34s %9s %9s %12s %9s %9s\n' "paired: baseline vs this build" "images/s" "MB/s" "CPU-s/1k img" "RSS MB" "vs wrk"
  : > "$WORK/pairs.txt"
  for i in $(seq "$PAIRS"); do
    order=(base new); [ $((i % 2)) -eq 0 ] && order=(new base)
    for which in "${order[@]}"; do
      bin=$BIN; [ "$which" = base ] && bin=$BASE_BIN
      rm -rf "$WORK/out/"*
      line=$(measure "$bin" download --no-progress --input "$WORK/bench.parquet" --output "$WORK/out/bench.tar")
      row=$(report "pair $i: $which" "$WORK/out/bench.tar" "$line" "$WRK_RPS")
      echo "$row"
      echo "$i $which $(awk '{print $4}' <<<"$row")" >> "$WORK/pairs.txt"
    done
  done
  python3 - "$WORK/pairs.txt" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    i, which, ips = line.split()
    runs.setdefault(i, {})[which] = float(ips)
ratios = [r["new"] / r["base"] for r in runs.values() if r.get("base")]
print("pair ratios new/baseline: " + ", ".join(f"{x:.2f}" for x in ratios)
      + f"; median {statistics.median(ratios):.2f}")
PY
  [ -z "${BENCH_PAIRED_ONLY:-}" ] || exit 0
fi

# Resize: img2dataset and ldawt, border 256 jpg q95, webdataset output, same rows, decodable images.
"$VENV/bin/python" - "$WORK/www/real" <<'PY'
import os, sys
import cv2, numpy as np
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(11)
for i in range(1000):
    w, h = [(640, 480), (500, 375), (480, 640), (800, 533)][i % 4]
    img = cv2.resize(rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8), (w, h),
                     interpolation=cv2.INTER_CUBIC)
    img = cv2.add(img, rng.integers(0, 16, (h, w, 3), dtype=np.uint8))
    cv2.imwrite(os.path.join(out, f"{i:03d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
PY
"$BIN" fixture-server --rebase-parquet "$DATA" "$WORK/real.parquet" --rows "$ROWS" \
  --base-url "http://127.0.0.1:$PORT/real" >&2
RESIZE=(--resize-mode border --image-size 256 --encode-format jpg --encode-quality 95)
printf '\n%-34s %9s %9s %12s %9s %9s\n' "resize border 256 jpg q95, webdataset" "images/s" "MB/s" "CPU-s/1k img" "RSS MB" "vs i2d"
run_i2d() {
  rm -rf "$WORK/i2d"
  # processes = cores, 64 threads each (>= ldawt's concurrency); no retries, no wandb.
  line=$(NO_ALBUMENTATIONS_UPDATE=1 measure "$VENV/bin/img2dataset" --url_list "$WORK/real.parquet" \
    --input_format parquet --url_col photo_url --output_format webdataset \
    --output_folder "$WORK/i2d" --processes_count "$(nproc)" --thread_count 64 \
    --number_sample_per_shard 10000 --image_size 256 --resize_mode border \
    --encode_format jpg --encode_quality 95 --retries 0 --timeout 10 --enable_wandb False \
    --distributor multiprocessing)
  python3 - "$WORK/i2d" "$WORK/i2d.figures" $line <<'PY'
import glob, json, os, sys
out, figures = sys.argv[1:3]
wall, user, sys_, rss = map(float, sys.argv[3:7])
rc = sys.argv[7]
ok = sum(json.load(open(f))["successes"] for f in glob.glob(os.path.join(out, "*_stats.json")))
size = sum(os.path.getsize(f) for f in glob.glob(os.path.join(out, "*.tar")))
ips, cpu = ok / wall, (user + sys_) / max(ok, 1) * 1000
name = f"img2dataset 1.47 ({os.cpu_count()} proc x 64 thr)"
print(f"{name:<34} {ips:9.0f} {size / 1e6 / wall:9.1f} {cpu:12.3f} {rss / 1024:9.1f} {'1.00':>9}  (ok {ok}, exit {rc}, {wall:.2f} s)")
open(figures, "w").write(f"{ips} {cpu}\n")
PY
  read -r I2D_IPS I2D_CPU < "$WORK/i2d.figures"
}
wds_report() { # name out measured-line
  local name=$1 out=$2; read -r wall user sys rss rc <<<"$3"
  read -r ok bytes <<<"$(ok_of "${out%.tar}.overview.json")"
  python3 - "$name" "$wall" "$user" "$sys" "$rss" "$ok" "$bytes" "$rc" "$I2D_IPS" "$I2D_CPU" <<'PY'
import sys
name, wall, user, sys_, rss, ok, nbytes, rc, i2d_ips, i2d_cpu = sys.argv[1:]
wall, user, sys_, rss, ok, nbytes = float(wall), float(user), float(sys_), int(rss), int(ok), int(nbytes)
ips, cpu = ok / wall, (user + sys_) / max(ok, 1) * 1000
ratio = f"{ips / float(i2d_ips):.2f}" if i2d_ips and float(i2d_ips) > 0 else "-"
cpu_ratio = f", CPU/img {float(i2d_cpu) / cpu:.2f}x less" if i2d_cpu and ok else ""
print(f"{name:<34} {ips:9.0f} {nbytes / 1e6 / wall:9.1f} {cpu:12.3f} {rss / 1024:9.1f} {ratio:>9}  (ok {ok}, exit {rc}, {wall:.2f} s{cpu_ratio})")
PY
  python3 -c 'import sys; w, u, s, ok = map(float, sys.argv[1:]); print(ok / w, ok / max(u + s, 1e-9))' \
    "$wall" "$user" "$sys" "$ok" > "$WORK/wds.last"
}
I2D_IPS=""; I2D_CPU=""
for run in $(seq "$RESIZE_RUNS"); do
  [ -z "${BENCH_SKIP_IMG2DATASET:-}" ] && run_i2d
  rm -rf "$WORK/out/"*
  line=$(measure "$BIN" download --no-progress --input "$WORK/real.parquet" --output "$WORK/out/rs.tar" --format webdataset "${RESIZE[@]}")
  wds_report "ldawt, resize (run $run)" "$WORK/out/rs.tar" "$line"
done
cp "$WORK/wds.last" "$WORK/wds.resize"
rm -rf "$WORK/out/"*
line=$(measure "$BIN" download --no-progress --input "$WORK/real.parquet" --output "$WORK/out/nors.tar" --format webdataset)
wds_report "ldawt, no resize (reference)" "$WORK/out/nors.tar" "$line"
python3 - "$WORK/wds.resize" "$WORK/wds.last" <<'PY'
import sys
rs_ips, rs_per_cpu = map(float, open(sys.argv[1]).read().split())
no_ips, no_per_cpu = map(float, open(sys.argv[2]).read().split())
print(f"images per CPU-second: resize {rs_per_cpu:.0f}, no resize {no_per_cpu:.0f} "
      f"(resize / no resize: {rs_per_cpu / no_per_cpu:.3f} per CPU-s, {rs_ips / no_ips:.3f} in images/s)")
PY

# WAN-like: one host, 200 ms before every first byte.
[ -n "$ONLY" ] && exit 0
exec 3< <("$BIN" fixture-server --first-byte-delay-ms 200)
FX_PID=$!
read -r FX_ADDR <&3
"$BIN" fixture-server --rebase-parquet "$DATA" "$WORK/wan.parquet" --rows "$WAN_ROWS" --base-url "http://$FX_ADDR" >&2
"$BIN" fixture-server --rebase-parquet "$DATA" "$WORK/wan20.parquet" --rows 1000 --base-url "http://$FX_ADDR" >&2
IDEAL=$(python3 -c 'print(128 / 0.2)')
printf '\n%-34s %9s %9s %12s %9s %9s\n' "WAN-like (200 ms first byte)" "images/s" "MB/s" "CPU-s/1k img" "RSS MB" "vs ideal"
printf '%-34s %9.0f %9s %12s %9s %9s\n' "ideal: 128 / 0.2 s" "$IDEAL" "-" "-" "-" "1.00"
rm -rf "$WORK/out/"*
line=$(measure "$BIN" download --no-progress --input "$WORK/wan.parquet" --output "$WORK/out/wan.tar" --concurrency 128 --per-host 128)
report "ldawt, per-host 128" "$WORK/out/wan.tar" "$line" "$IDEAL"
rm -rf "$WORK/out/"*
line=$(measure "$BIN" download --no-progress --input "$WORK/wan20.parquet" --output "$WORK/out/wan20.tar" --concurrency 128 --per-host 20)
report "ldawt, per-host 20 (LDAWT's cap)" "$WORK/out/wan20.tar" "$line" "$IDEAL"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
