#!/usr/bin/env bash
# Runs the whole test suite: installs the system packages the tests drive for real (nginx, a
# WebDAV server, Slurm, iproute2) when running as root and they are missing, then `cargo test`.
# Tests whose tools are still missing (not root, no network to the package mirror) skip with a
# printed reason.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
exec cargo test --all-targets "$@"
