#!/usr/bin/env bash
# Builds the job-file fuzzer with clang (libFuzzer + AddressSanitizer + UBSan) and runs it for a
# bounded time from a seed corpus of the shipped configs.
#   tests/fuzz/run_fuzzer.sh [SECONDS]   (default 60; FUZZ_SECONDS overrides too)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-${FUZZ_SECONDS:-60}}"
out=build/fuzz
mkdir -p "$out/corpus" "$out/findings"
clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Isrc tests/fuzz/job_config_fuzzer.cc src/config/job_config.cc src/common/error.cc \
  src/common/vgg_layers.cc src/common/utf8.cc -lyaml-cpp -o "$out/job_config_fuzzer"
find configs tests/fuzz/regressions -type f \( -name '*.yaml' -o -name '*.yml' \) | while read -r f; do cp "$f" "$out/corpus/$(echo "$f" | tr / _)"; done
# -timeout: one input may take 10 s at most (a hang is a finding); -rss_limit_mb bounds memory.
"$out/job_config_fuzzer" "$out/corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -max_len=65536 -artifact_prefix="$out/findings/" -print_final_stats=1 2>&1 | tee "$out/fuzz.log" | tail -n 25
echo "fuzz: $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/fuzz.log" | grep -o '[0-9]*$') executions in ${seconds} s, no crash, hang or leak"
