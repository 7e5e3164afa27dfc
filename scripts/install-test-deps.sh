#!/usr/bin/env bash
# Installs (idempotently) the Debian packages that the tests and benchmarks use for real.
# Without root it only reports what is missing; the tests that need a missing tool skip with a
# printed reason.
set -uo pipefail
# the build's own packages (cmake, nasm for the bundled libjpeg-turbo)
bash "$(dirname "$0")/build-deps.sh" || echo "install-test-deps: the build's packages are missing (scripts/build-deps.sh)" >&2
need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# WebDAV server for `ldawt upload` / `ldawt compare` tests (rclone serve webdav)
command -v rclone >/dev/null 2>&1 || need+=(rclone)
# single-host Slurm for the `ldawt slurm` job test (auth/none: no munge daemon needed)
command -v slurmctld >/dev/null 2>&1 || need+=(slurmctld slurmd slurm-client)
command -v tc >/dev/null 2>&1 || need+=(iproute2)
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v iperf3 >/dev/null 2>&1 || need+=(iperf3)
# test CA and certificates for the HTTPS / HTTP/2 test
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# a real browser for the live-dashboard test (headless Chromium)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# python3 with venv/pip: scripts/test-python.sh (the wheel and the notebook) and the
# dataset-format tests (webdataset / pyarrow read ldawt's outputs); the Python packages come
# from PyPI into venvs
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
install_apt() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: not root; missing packages: ${need[*]} (tests needing them will skip)" >&2
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || echo "install-test-deps: apt-get update failed" >&2
  if ! apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
    # One unavailable package must not keep the others out: retry them one by one.
    for p in "${need[@]}"; do
      apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1 \
        || echo "install-test-deps: could not install $p (tests needing it will skip)" >&2
    done
  fi
}
if [ "${#need[@]}" -gt 0 ]; then install_apt; fi

# target/pyvenv: the `webdataset` and `pyarrow` packages from PyPI, used by
# tests/engine/dataset.rs to read webdataset / parquet outputs back as a training loader would.
venv="$(cd "$(dirname "$0")/.." && pwd)/target/pyvenv"
if ! "$venv/bin/python" -c 'import webdataset, pyarrow' >/dev/null 2>&1; then
  { python3 -m venv "$venv" \
      && "$venv/bin/pip" install -q --disable-pip-version-check webdataset pyarrow; } >/dev/null 2>&1 \
    || echo "install-test-deps: could not create $venv with webdataset and pyarrow (the format tests will skip)" >&2
fi
exit 0
