#!/usr/bin/env bash
# The Python side of ldawt, tested for real (issue 13):
#   1. builds the wheel (scripts/build-wheel.sh; the dev profile by default, so CI reuses the
#      target dir `cargo test` built; LDAWT_WHEEL_PROFILE=release for the real thing);
#   2. installs it into a FRESH venv and checks that `ldawt` is on that venv's PATH, that
#      `ldawt --version` matches Cargo.toml, and that a small `ldawt download` from it stores every
#      row of the shipped sample, served by `ldawt fixture-server` on loopback;
#   3. executes examples/ldawt.ipynb top to bottom (`jupyter nbconvert --execute`) in a venv with
#      examples/requirements.txt and the wheel, cached in .venv-test/ (gitignored); a failing cell
#      fails this script. The executed copy is left in target/notebook/.
# Exits non-zero on any failure. Needs python3 with venv/ensurepip and PyPI for the first run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$(date +%s)
py="${PYTHON:-python3}"
profile="${LDAWT_WHEEL_PROFILE:-dev}"
step="setup"
if ! "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  # scripts/install-test-deps.sh installs python3-venv (as root)
  if [ -n "${CI:-}" ]; then
    echo "test-python: $py with venv/ensurepip is required (CI is set)" >&2
    exit 1
  fi
  echo "test-python: SKIP: no $py with venv/ensurepip (scripts/install-test-deps.sh installs it)" >&2
  exit 0
fi
fixture_pid=""
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ldawt-test-python.XXXXXX")
finish() {
  local rc=$?
  if [ -n "$fixture_pid" ]; then
    kill "$fixture_pid" 2>/dev/null || true
    wait "$fixture_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
  if [ "$rc" -ne 0 ]; then
    echo "test-python: FAILED in step: $step (exit $rc)" >&2
    echo "test-python: 0 passed, 1 failed"
  fi
}
trap finish EXIT
log() { echo "test-python: $* ($(( $(date +%s) - started ))s)" >&2; }

# --- 1. the wheel ---------------------------------------------------------------------------
step="build the wheel (profile $profile)"
log "$step"
wheel=$(bash scripts/build-wheel.sh --profile "$profile" --out target/wheels | tail -n 1)
[ -f "$wheel" ] || { echo "no wheel at '$wheel'" >&2; exit 1; }
log "built $wheel"

# --- 2. a fresh venv: the binary on PATH, --version, a small download --------------------------
step="install the wheel into a fresh venv"
"$py" -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --disable-pip-version-check --no-index --no-deps "$wheel"
found=$(PATH="$tmp/venv/bin:$PATH" command -v ldawt)
if [ "$found" != "$tmp/venv/bin/ldawt" ]; then
  echo "ldawt on PATH is '$found', not the venv's $tmp/venv/bin/ldawt" >&2
  exit 1
fi

step="the wheel carries the product binary only"
scripts_in_wheel=$(python3 -c 'import sys, zipfile; print(" ".join(sorted(n.rsplit("/", 1)[1] for n in zipfile.ZipFile(sys.argv[1]).namelist() if ".data/scripts/" in n)))' "$wheel")
if [ "$scripts_in_wheel" != "ldawt" ]; then
  echo "the wheel's scripts are '$scripts_in_wheel', expected only 'ldawt' (ldawt-dev must stay out)" >&2
  exit 1
fi

step="ldawt --version from the venv"
want=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
got=$(PATH="$tmp/venv/bin:$PATH" ldawt --version)
if [ "$got" != "ldawt $want" ]; then
  echo "ldawt --version printed '$got', expected 'ldawt $want'" >&2
  exit 1
fi
log "fresh venv: $got"

step="a small ldawt download from the venv against ldawt fixture-server"
bin="$tmp/venv/bin/ldawt"
"$bin" fixture-server --listen 127.0.0.1:0 --no-progress >"$tmp/fixture.out" 2>"$tmp/fixture.err" &
fixture_pid=$!
addr=""
for _ in $(seq 1 100); do
  addr=$(head -n 1 "$tmp/fixture.out" 2>/dev/null || true)
  [ -n "$addr" ] && break
  kill -0 "$fixture_pid" 2>/dev/null || { cat "$tmp/fixture.err" >&2; exit 1; }
  sleep 0.1
done
[ -n "$addr" ] || { echo "fixture server printed no address in 10 s" >&2; exit 1; }
rows=30
"$bin" fixture-server --rebase-parquet tests/data/inat_sample_200.parquet "$tmp/list.parquet" \
  --base-url "http://$addr" --rows "$rows" --no-progress >/dev/null
timeout 120 "$bin" download --input "$tmp/list.parquet" --output "$tmp/sample.tar.gz" --no-progress \
  >"$tmp/download.out" 2>"$tmp/download.err" || { cat "$tmp/download.err" >&2; exit 1; }
"$tmp/venv/bin/python" - "$tmp" "$rows" <<'EOF'
import json, sys, tarfile
tmp, rows = sys.argv[1], int(sys.argv[2])
summary = json.load(open(f"{tmp}/sample.overview.json"))["download_summary"]
assert summary["successful_downloads"] == rows, summary
assert summary["failed_downloads"] == 0, summary
with tarfile.open(f"{tmp}/sample.tar.gz") as tar:
    files = [m for m in tar.getmembers() if m.isfile()]
assert len(files) == rows, f"{len(files)} files in the archive, expected {rows}"
assert sum(m.size for m in files) == summary["total_bytes"], (summary, sum(m.size for m in files))
print(f"download from the wheel's ldawt: {rows} rows, {len(files)} archive members, "
      f"{summary['total_bytes']} bytes")
EOF
kill "$fixture_pid"
wait "$fixture_pid" 2>/dev/null || true
fixture_pid=""
log "wheel check passed"

# --- 3. the notebook ----------------------------------------------------------------------------
step="prepare the notebook venv (.venv-test)"
nbvenv="$root/.venv-test"
stamp="$nbvenv/.requirements.sha256"
want_stamp=$(sha256sum examples/requirements.txt | cut -d' ' -f1)
if [ ! -x "$nbvenv/bin/jupyter" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want_stamp" ]; then
  rm -rf "$nbvenv"
  "$py" -m venv "$nbvenv"
  "$nbvenv/bin/pip" install --quiet --disable-pip-version-check -r examples/requirements.txt
  echo "$want_stamp" >"$stamp"
fi
"$nbvenv/bin/pip" install --quiet --disable-pip-version-check --no-index --no-deps \
  --force-reinstall "$wheel"
[ -x "$nbvenv/bin/ldawt" ] || { echo "the wheel installed no $nbvenv/bin/ldawt" >&2; exit 1; }

step="execute examples/ldawt.ipynb"
log "$step"
mkdir -p target/notebook
# The notebook finds `ldawt` on PATH: the notebook venv's, i.e. the wheel's binary. Its scratch
# folder goes under $tmp (TMPDIR), removed by the trap even when the kernel dies on a failure; its
# processes die with the kernel (PR_SET_PDEATHSIG) if its own clean-up does not run.
mkdir -p "$tmp/nb"
PATH="$nbvenv/bin:$PATH" TMPDIR="$tmp/nb" JUPYTER_PLATFORM_DIRS=1 MPLCONFIGDIR="$tmp/mpl" \
  timeout 400 "$nbvenv/bin/jupyter" nbconvert --to notebook --execute \
  --ExecutePreprocessor.timeout=300 --ExecutePreprocessor.kernel_name=python3 \
  --output-dir target/notebook --output ldawt.executed.ipynb examples/ldawt.ipynb
log "notebook executed: target/notebook/ldawt.executed.ipynb"

step="done"
log "wheel and notebook checked"
echo "test-python: 2 passed, 0 failed"
