#!/usr/bin/env bash
# Decompression bombs under --resize-mode (issue 11's resize path, memory), one command:
#   scripts/bench-decode-bombs.sh
# 1. Writes one 389 KB PNG declaring 20,000 x 20,000 grey pixels (400 MB decoded: under the
#    512 MiB per-image cap, so it is decoded, not refused) and serves it from nginx on loopback
#    under every path of a BENCH_ROWS-row list (default 40) built from the real rows.
# 2. Runs `ldawt download --resize-mode border --image-size 256` on it and prints wall time,
#    CPU, peak RSS and the rows stored, next to the decode budget (32 MiB per decode slot, at
#    least 512 MiB): without a budget, every slot (two per core) holds a 400 MB image at once.
# Env: LDAWT_BIN (a release binary to measure instead of building one); BENCH_BASELINE_BIN
# (another release binary, run first, for a before/after pair); BENCH_ROWS.
# Needs: cargo, python3 (stdlib only), nginx (installed from Debian when root).
set -euo pipefail
. "$(dirname "$0")/lib/bench.sh"
bench_init  # cd to the repository; ROOT, DATA (the real rows)
ROWS=${BENCH_ROWS:-40}
bench_need nginx

bench_binary

bench_workdir bombs

mkdir -p "$WORK/www"
python3 - "$WORK/www/bomb.png" <<'PY'
import struct, sys, zlib
side = 20000
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
z = zlib.compressobj(9)
row = b"\x00" * (side + 1)  # filter byte + one black grey row
idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY
mkdir -p "$WORK/www/pool" && echo probe > "$WORK/www/pool/000.jpg"  # bench_nginx's readiness probe
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bench_nginx "$WORK" "127.0.0.1:$PORT" 127.0.0.1 1024 "" \
  'location /bomb/ { default_type image/png; try_files /bomb.png =404; }'
"$LDAWT_BIN" fixture-server --rebase-parquet "$DATA" "$WORK/bombs.parquet" --rows "$ROWS" \
  --base-url "http://127.0.0.1:$PORT/bomb" >/dev/null

echo "machine: $(nproc) cores, $(free -m | awk '/^Mem:/ {print $2}') MB, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "input: $ROWS rows, each a 20000x20000 grey PNG of $(stat -c %s "$WORK/www/bomb.png") bytes (400 MB decoded)"
printf '%-28s %9s %9s %12s %9s\n' "binary" "wall s" "CPU s" "peak RSS MB" "stored"
run() { # name binary
  rm -rf "$WORK/out" && mkdir -p "$WORK/out"
  python3 - "$1" "$2" "$WORK/bombs.parquet" "$WORK/out/b.tar" <<'PY'
import json, resource, subprocess, sys, time
name, binary, parquet, out = sys.argv[1:]
t = time.monotonic()
rc = subprocess.call([binary, "download", "--no-progress", "--input", parquet, "--output", out,
                      "--format", "webdataset", "--resize-mode", "border", "--image-size", "256"],
                     stdout=subprocess.DEVNULL, stderr=open(out + ".log", "w"))
wall = time.monotonic() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
doc = json.load(open(out.removesuffix(".tar") + ".overview.json"))
ok = doc["download_summary"]["successful_downloads"]
print(f"{name:<28} {wall:9.2f} {ru.ru_utime + ru.ru_stime:9.2f} {ru.ru_maxrss / 1024:12.1f} {ok:9d}"
      f"  (exit {rc}, errors {doc['error_breakdown'] or 'none'})")
if rc != 0:
    sys.stderr.write(open(out + ".log").read())
PY
}
[ -n "${BENCH_BASELINE_BIN:-}" ] && run "baseline" "$BENCH_BASELINE_BIN"
run "ldawt" "$LDAWT_BIN"
slots=$((2 * $(nproc)))
budget=$(( slots * 32 > 512 ? slots * 32 : 512 ))
echo "decode budget: ${budget} MiB (${slots} decode slots); target: peak RSS below budget + ~150 MB of engine"
