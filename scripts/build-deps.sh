#!/usr/bin/env bash
# The system packages the build itself needs besides a Rust toolchain and a C compiler:
# libjpeg-turbo (turbojpeg-sys, the resize path) is compiled from its bundled source with
# cmake, its SIMD with nasm. Installs the missing ones from Debian/Ubuntu (apt-get, through
# sudo when not root); prints what is missing and fails when it cannot.
set -euo pipefail
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v nasm >/dev/null 2>&1 || need+=(nasm)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
[ "${#need[@]}" -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "build-deps: missing ${need[*]}; install them (apt-get install ${need[*]}) and rerun" >&2
    exit 1
  fi
  sudo=sudo
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "build-deps: missing ${need[*]} and no apt-get here; install them with your package manager" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "build-deps: installed ${need[*]}" >&2
