#!/usr/bin/env bash
# Installs the Debian packages corio's build, tests, examples and benchmarks need.
# Idempotent: installs only what is missing, and touches apt only then.
set -euo pipefail

packages=(
  build-essential g++ clang cmake ninja-build pkg-config git
  liburing-dev         # the io_uring backend
  libpq-dev postgresql # corio::pg (optional part), and the server its tests start
  catch2               # tests (v2)
  libbenchmark-dev     # benchmarks
  libasio-dev          # the peer in the benchmarks
  python3 gnuplot-nox  # the benchmark report: tables and charts
  libclang-rt-14-dev   # clang's sanitizer runtimes
  clang-format         # the formatting check in .ci/run
  clang-tidy-16        # the clang-tidy check in .ci/run (cmake/run-clang-tidy.sh)
  doxygen              # the API reference: cmake --workflow --preset docs
  curl wrk             # real clients against the example servers
  cargo librust-tokio-dev  # benchmark peer only: the Tokio echo server, built offline
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
