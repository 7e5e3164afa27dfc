# Sourced by the download benchmarks (scripts/bench-download.sh, bench-scale-hosts.sh, bench-decode-bombs.sh):
# the real-data location, tool installation, and nginx serving the synthetic pool that
# `ldawt fixture-server --write-pool` writes. Functions only; the caller sets `set -euo pipefail`.

# bench_init: moves to the repository root and sets ROOT (that root) and DATA, the real
# iNaturalist subset ../shared/data/subset_50k.parquet beside the clone ($LDAWT_SHARED_DATA
# first; ancestors are searched too, for git worktrees). Exits 2 when DATA is missing.
bench_init() {
  cd "$(dirname "${BASH_SOURCE[0]}")/../.."
  ROOT=$(pwd)
  local d=$ROOT dir=${LDAWT_SHARED_DATA:-}
  if [ -z "$dir" ]; then
    while [ "$d" != "/" ]; do
      d=$(dirname "$d")
      if [ -f "$d/shared/data/subset_50k.parquet" ]; then dir=$d/shared/data; break; fi
    done
  fi
  DATA=${dir:-$ROOT/../shared/data}/subset_50k.parquet
  [ -f "$DATA" ] || { echo "bench: $DATA not found (clone the repo with shared/ beside it)" >&2; exit 2; }
}

# bench_need TOOL...: installs the missing ones from Debian (needs root, else exits 2).
# nginx counts as present at /usr/sbin/nginx too (not on a non-root PATH).
bench_need() {
  local need=() t
  for t in "$@"; do
    if [ "$t" = nginx ] && [ -x /usr/sbin/nginx ]; then continue; fi
    command -v "$t" >/dev/null 2>&1 || need+=("$t")
  done
  if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then echo "bench: missing ${need[*]} and not root" >&2; exit 2; fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

# bench_nginx WORK LISTEN PROBE_HOST CONNECTIONS RLIMIT [LOCATION...]
# Starts nginx (2 workers, keep-alive, open-file cache) on LISTEN (an nginx `listen` value)
# serving WORK/www: iNaturalist paths /photos/<id>/<name>.<ext> map to
# pool/<last 3 digits of id>.<jpg|jpeg>; each extra LOCATION line comes before those.
# RLIMIT (empty for none) sets worker_rlimit_nofile. Its pid file is WORK/nginx.pid (the
# caller's EXIT trap kills it). Waits (at most 5 s) until http://PROBE_HOST:port answers,
# where port is LISTEN's.
bench_nginx() {
  local work=$1 listen=$2 probe=$3 conns=$4 rlimit=$5
  shift 5
  local port=${listen##*:}
  port=${port%% *}
  local nginx
  nginx=$(command -v nginx || echo /usr/sbin/nginx)
  {
    echo "worker_processes 2;"
    [ -n "$rlimit" ] && echo "worker_rlimit_nofile $rlimit;"
    cat <<CONF
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections $conns; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 1000000; keepalive_timeout 120s;
  open_file_cache max=4000 inactive=60s;
  types { image/jpeg jpg jpeg; }
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  server {
    listen $listen;
    root $work/www;
CONF
    local loc
    for loc in "$@"; do echo "    $loc"; done
    cat <<'CONF'
    location ~ "^/photos/[0-9]*([0-9][0-9][0-9])/[A-Za-z]+\.(jpeg|JPEG)$" { try_files /pool/$1.jpeg =404; }
    location ~ "^/photos/[0-9]*([0-9][0-9][0-9])/[A-Za-z]+\.[A-Za-z]+$" { try_files /pool/$1.jpg =404; }
  }
}
CONF
  } > "$work/nginx.conf"
  mkdir -p "$work/tmp"
  "$nginx" -c "$work/nginx.conf" -p "$work" -e "$work/nginx-error.log"
  local _
  for _ in $(seq 50); do
    python3 -c "import urllib.request;urllib.request.urlopen('http://$probe:$port/photos/1000/medium.jpg')" 2>/dev/null && return 0
    sleep 0.1
  done
}

# bench_binary: sets LDAWT_BIN to the release binary, building it unless LDAWT_BIN is set.
bench_binary() {
  if [ -z "${LDAWT_BIN:-}" ]; then
    echo "bench: building the release binary (cargo build --release)…" >&2
    cargo build --release --quiet
    LDAWT_BIN=$ROOT/target/release/ldawt
  fi
}

# bench_workdir NAME: sets WORK to a fresh /tmp/ldawt-bench-NAME.* directory that nginx's
# unprivileged workers can read; on exit the nginx it holds is stopped and it is removed.
bench_workdir() {
  WORK=$(mktemp -d "/tmp/ldawt-bench-$1.XXXXXX")
  chmod 755 "$WORK"
  trap bench_cleanup EXIT
}
bench_cleanup() {
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
