#!/usr/bin/env bash
# clang-tidy over corio's headers and tests, with the checks in .clang-tidy (tests/ has
# its own, inheriting them). Every finding is an error: the script prints each one once
# and exits 1.
#
#   cmake/run-clang-tidy.sh [build-dir]     (default: build/tidy)
#
# What is checked: one translation unit that includes <corio/corio.hpp> alone (every
# header is reached from it, io_uring parts included when liburing is installed), checked
# with the top-level .clang-tidy, and every tests/*.cpp, which instantiates the templates
# (and are checked with tests/.clang-tidy). The headers' findings come out of each test
# TU again; they are printed once. About 2 minutes on 2 cores; clang-analyzer-* is left
# out, it would take several times that.
#
# Nothing is built: the build directory only gives the compile commands (clang++, the
# tests configured, so Catch2 v2 must be installed; no benchmarks or examples).
set -euo pipefail
cd "$(dirname "$0")/.."

tidy="${CLANG_TIDY:-clang-tidy-16}"
jobs="${CORIO_TIDY_JOBS:-2}"
build="${1:-build/tidy}"

if ! command -v "$tidy" >/dev/null; then
  echo "run-clang-tidy: $tidy not found (Debian: apt-get install clang-tidy-16)" >&2
  exit 2
fi

cmake -S . -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DCORIO_BUILD_TESTS=ON -DCORIO_BUILD_EXAMPLES=OFF \
  -DCORIO_BUILD_BENCH=OFF >/dev/null
db="$build/compile_commands.json"

# The headers' own TU, made by VERIFY_INTERFACE_HEADER_SETS (CMakeLists.txt).
files=("$build/corio_verify_interface_header_sets/corio/corio.hpp.cxx")
for f in tests/*.cpp; do
  # A file missing from the database would be checked without flags: an error here instead.
  if ! grep -qF "\"file\": \"$PWD/$f\"" "$db"; then
    echo "run-clang-tidy: $f is not in $db (not in tests/CMakeLists.txt?)" >&2
    exit 2
  fi
  files+=("$f")
done
[ -f "${files[0]}" ] || { echo "run-clang-tidy: ${files[0]} was not generated" >&2; exit 2; }

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

echo "run-clang-tidy: $("$tidy" --version | grep -o 'version [0-9.]*'), ${#files[@]} files, $jobs jobs"
# Each file's output goes to its own log; a failing file leaves a .failed mark.
printf '%s\n' "${files[@]}" | xargs -P "$jobs" -I{} sh -c '
  log="$1/$(echo "$3" | tr / _).log"
  "$0" -p "$2" --quiet "$3" >"$log" 2>&1 || touch "$log.failed"' "$tidy" "$logs" "$build" {}

if ! ls "$logs"/*.failed >/dev/null 2>&1; then
  echo "run-clang-tidy: clean"
  exit 0
fi
# Print each finding (its line and the notes and source lines under it) once, however many
# TUs reported it; "N warnings generated" and similar counts are dropped.
for mark in "$logs"/*.failed; do cat "${mark%.failed}"; done | awk '
  /^[^ ].*:[0-9]+:[0-9]+: (warning|error): / { keep = !seen[$0]++; n += keep }
  /^[0-9]+ (warnings?|errors?) (generated|treated)/ { next }
  /^Suppressed |^Use -header-filter|^Error while processing/ { next }
  keep { print }
  END { if (n == 0) exit 3; printf "run-clang-tidy: %d finding(s)\n", n }' || {
  # A failure without a diagnostic line (a crash, a bad command line): all of its output.
  for mark in "$logs"/*.failed; do cat "${mark%.failed}"; done
  echo "run-clang-tidy: clang-tidy failed" >&2
}
exit 1
