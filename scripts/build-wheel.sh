#!/usr/bin/env bash
# Builds the `ldawt` wheel (maturin, `bindings = "bin"`: the binary inside a Python wheel) into
# target/wheels/ (or --out DIR) and prints the wheel's path as the last line of stdout.
#
#   scripts/build-wheel.sh                  # release build (slow: ~10 min on 2 cores)
#   scripts/build-wheel.sh --profile dev    # reuse the dev target dir that `cargo test` built
#   LDAWT_WHEEL_PROFILE=dev scripts/build-wheel.sh
#   scripts/build-wheel.sh --sdist          # also a source distribution (needs Rust to install)
#
# maturin comes from PyPI into .venv-build/ (created once, gitignored).
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${LDAWT_WHEEL_PROFILE:-release}"
out="target/wheels"
sdist=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="${2:?--profile needs a name}"; shift 2 ;;
    --profile=*) profile="${1#*=}"; shift ;;
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    --out=*) out="${1#*=}"; shift ;;
    --sdist) sdist=(--sdist); shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "build-wheel: unknown argument $1" >&2; exit 2 ;;
  esac
done
py="${PYTHON:-python3}"
venv=".venv-build"
if [ ! -x "$venv/bin/maturin" ]; then
  "$py" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'maturin>=1.7,<2'
fi
mkdir -p "$out"
# Only this build's wheel is reported: remove older ldawt wheels from the output folder.
rm -f "$out"/ldawt-*.whl
# The platform tag is the lowest manylinux tag this binary's glibc symbols allow (maturin's
# audit); the binary links nothing but glibc (rustls, no OpenSSL).
"$venv/bin/maturin" build --profile "$profile" --out "$out" "${sdist[@]}" >&2
wheel=$(ls -t "$out"/ldawt-*.whl | head -n 1)
echo "$wheel"
