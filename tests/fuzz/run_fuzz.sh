#!/usr/bin/env bash
# Builds the config fuzzer with clang (libFuzzer + ASan + UBSan) in build-fuzz/ and runs it for a
# bounded time, seeded with every config under tests/config and the shipped example.
#
#   tests/fuzz/run_fuzz.sh [SECONDS]      (default 60)
#
# Exit status: 0 when the run finished without a finding, non-zero on a crash, leak, UB report,
# timeout or build failure. Findings are written to build-fuzz/fuzz-artifacts/; reproduce one with
#   build-fuzz/tests/fuzz/config_fuzz build-fuzz/fuzz-artifacts/crash-...
# The generated corpus is kept in build-fuzz/fuzz-corpus/ so later runs continue from it.
# Environment: HOZO_FUZZ_BUILD_DIR (default <repo>/build-fuzz), HOZO_FUZZ_JOBS (parallel fuzzing
# processes, default 1).
set -euo pipefail

seconds=${1:-60}
if ! [[ $seconds =~ ^[0-9]+$ ]] || (( seconds < 1 )); then
  echo "usage: $0 [SECONDS]" >&2
  exit 2
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${HOZO_FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=${HOZO_FUZZ_JOBS:-1}

cc=$(command -v clang || command -v clang-14 || true)
cxx=$(command -v clang++ || command -v clang++-14 || true)
if [[ -z $cc || -z $cxx ]]; then
  echo "run_fuzz.sh: clang is required (apt-get install clang libclang-rt-dev)" >&2
  exit 2
fi

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi

cmake -S "$root" -B "$build" "${generator[@]}" "${launcher[@]}" \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DHOZO_BUILD_FUZZERS=ON -DHOZO_BUILD_TESTS=OFF -DHOZO_WERROR=OFF >/dev/null
cmake --build "$build" --target config_fuzz

corpus=$build/fuzz-corpus/config
seeds=$build/fuzz-seeds/config
artifacts=$build/fuzz-artifacts
mkdir -p "$corpus" "$seeds" "$artifacts"
rm -f "$seeds"/*
n=0
while IFS= read -r -d '' f; do
  cp "$f" "$seeds/seed-$((n++))-$(basename "$f")"
done < <(find "$root/tests/config" "$root/examples" -name '*.yaml' -type f -print0)

# Secrets from *_file keys must not be read from the real credentials directory while fuzzing.
unset CREDENTIALS_DIRECTORY

parallel=()
if (( jobs > 1 )); then parallel=(-jobs="$jobs" -workers="$jobs"); fi

echo "fuzzing parse_config for ${seconds}s ($n seed files, corpus $corpus)"
"$build/tests/fuzz/config_fuzz" \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
  -dict="$root/tests/fuzz/config.dict" -artifact_prefix="$artifacts/" -print_final_stats=1 \
  "${parallel[@]}" \
  "$corpus" "$seeds"
