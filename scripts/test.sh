#!/usr/bin/env bash
# Runs the whole test suite: installs what the tests drive for real (nginx, a WebDAV server,
# Slurm, iproute2, Chromium, python3-venv) when running as root and it is missing, then
# `cargo test` (every target; every failing test is reported, not only the first binary's), then
# the Python side (scripts/test-python.sh: the pip wheel in a fresh venv, the notebook executed).
# Locally, tests whose tools are missing skip with a printed reason; with CI set (.ci/run) a
# skip is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo test --all-targets --no-fail-fast "$@"
bash scripts/test-python.sh
