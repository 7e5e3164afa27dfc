#!/usr/bin/env bash
# Installs ldawt on a fresh Debian/Ubuntu VM, then (optionally) as a systemd service.
#
#   install.sh --binary /path/to/ldawt          copy a prebuilt binary
#   install.sh --source /path/to/ldawt-checkout build from source with cargo (installs rustup
#                                              and a C toolchain first if needed)
#   add --service "--join /ip4/…/p2p/…"        to install and start the systemd unit with these
#                                              node arguments
#   and --swarm-key FILE                       to install the swarm's key as
#                                              /etc/ldawt/swarm.key (owner ldawt, mode 0600)
#                                              and pass it to the service
#
# Idempotent: running it again upgrades the binary and restarts the service.
set -euo pipefail

binary="" source="" service_args="" swarm_key="" prefix="/usr/local/bin"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() { sed -n '2,15p' "$0"; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
    --source) source="${2:?--source needs a path}"; shift 2 ;;
    --service) service_args="${2:?--service needs node arguments}"; shift 2 ;;
    --swarm-key) swarm_key="${2:?--swarm-key needs the key file}"; shift 2 ;;
    --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "install.sh: unknown option $1" >&2; usage ;;
  esac
done
if [ -z "$binary" ] && [ -z "$source" ]; then
  echo "install.sh: give --binary PATH or --source DIR" >&2; usage
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

if [ -n "$source" ]; then
  if ! command -v cargo >/dev/null 2>&1; then
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends ca-certificates curl build-essential pkg-config
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
  fi
  # cmake and nasm for the bundled libjpeg-turbo (the resize path).
  bash "$source/scripts/build-deps.sh"
  (cd "$source" && cargo build --release --locked)
  binary="$source/target/release/ldawt"
fi
[ -x "$binary" ] || { echo "install.sh: $binary is not an executable" >&2; exit 2; }
"$binary" --version >/dev/null || { echo "install.sh: $binary does not run here" >&2; exit 2; }
$sudo install -D -m 0755 "$binary" "$prefix/ldawt"
echo "installed $("$prefix/ldawt" --version) to $prefix/ldawt"

if [ -n "$service_args" ]; then
  id ldawt >/dev/null 2>&1 || $sudo useradd --system --home /var/lib/ldawt --shell /usr/sbin/nologin ldawt
  if [ -n "$swarm_key" ]; then
    $sudo install -D -o ldawt -m 0600 "$swarm_key" /etc/ldawt/swarm.key
    service_args="$service_args --swarm-key /etc/ldawt/swarm.key"
  fi
  $sudo install -D -m 0644 "$here/ldawt-node.service" /etc/systemd/system/ldawt-node.service
  if [ "$prefix" != "/usr/local/bin" ]; then
    $sudo sed -i "s|/usr/local/bin/ldawt|$prefix/ldawt|" /etc/systemd/system/ldawt-node.service
  fi
  printf 'LDAWT_NODE_ARGS=%s\n' "$service_args" | $sudo tee /etc/default/ldawt-node >/dev/null
  $sudo systemctl daemon-reload
  $sudo systemctl enable ldawt-node
  $sudo systemctl restart ldawt-node
  echo "ldawt-node service started; logs: journalctl -u ldawt-node -f"
fi
