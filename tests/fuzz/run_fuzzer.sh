#!/usr/bin/env bash
# Builds the fuzzers with clang (libFuzzer + AddressSanitizer + UBSan) and runs each for a bounded
# time:
#   - job_config_fuzzer: job files, from a seed corpus of the shipped configs;
#   - tensor_file_fuzzer: model, checkpoint and loss-network files (torch.save zip and legacy
#     formats), from small real files PyTorch writes (tests/fuzz/make_tensor_corpus.py) and the
#     hostile files of earlier findings (tests/fuzz/regressions/tensor_file/).
#   tests/fuzz/run_fuzzer.sh [SECONDS]   (each fuzzer; default 60; FUZZ_SECONDS overrides too)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-${FUZZ_SECONDS:-60}}"
out=build/fuzz
sanitize=(-std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Isrc)

# One fuzzer for `seconds`: NAME CORPUS_DIR MAX_LEN. -timeout: one input may take 10 s at most (a
# hang is a finding); -rss_limit_mb bounds memory (so does the reader, by the input's size).
run_fuzzer() {
  local name=$1 corpus=$2 max_len=$3
  mkdir -p "$out/findings-$name"
  "$out/$name" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len="$max_len" -artifact_prefix="$out/findings-$name/" -print_final_stats=1 2>&1 |
    tee "$out/$name.log" | tail -n 25
  echo "fuzz: $name: $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$name.log" | grep -o '[0-9]*$') executions in ${seconds} s, no crash, hang or leak"
}

# The fuzzers' sources compile one per process, on every core, through ccache when it is installed
# (as the CMake builds do): one clang++ call over every source compiled them one after another and
# never from a cache, about 2 of this stage's 4 minutes in CI.
jobs="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
launcher=()
if command -v ccache >/dev/null; then
  # With -g ccache hashes the working folder unless base_dir and a debug prefix map cover it:
  # then a fresh clone (CI) reuses another clone's compiles.
  launcher=(env CCACHE_BASEDIR="$PWD" ccache)
  sanitize+=(-fdebug-prefix-map="$PWD"=.)
fi

# build_fuzzer NAME FLAGS_ARRAY LIBS_ARRAY SOURCES...: objects under $out/obj-NAME, then the binary.
build_fuzzer() {
  local name=$1 src obj
  local -n flags=$2 libs=$3
  shift 3
  local objdir="$out/obj-$name" objects=() pids=()
  mkdir -p "$objdir"
  for src in "$@"; do
    obj="$objdir/$(echo "$src" | tr / _).o"
    objects+=("$obj")
    "${launcher[@]}" clang++ "${sanitize[@]}" "${flags[@]}" -c "$src" -o "$obj" &
    pids+=($!)
    if ((${#pids[@]} >= jobs)); then
      wait "${pids[0]}"
      pids=("${pids[@]:1}")
    fi
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  clang++ "${sanitize[@]}" "${objects[@]}" "${libs[@]}" -o "$out/$name"
}

mkdir -p "$out/corpus"
no_flags=()
yaml_libs=(-lyaml-cpp)
build_fuzzer job_config_fuzzer no_flags yaml_libs tests/fuzz/job_config_fuzzer.cc src/config/*.cc \
  src/common/error.cc src/common/vgg_layers.cc src/common/utf8.cc
find configs tests/fuzz/regressions -type f \( -name '*.yaml' -o -name '*.yml' \) | while read -r f; do cp "$f" "$out/corpus/$(echo "$f" | tr / _)"; done
run_fuzzer job_config_fuzzer "$out/corpus" 65536

rm -rf "$out/tensor_corpus"
/usr/bin/python3 tests/fuzz/make_tensor_corpus.py "$out/tensor_corpus"
cp tests/fuzz/regressions/tensor_file/* "$out/tensor_corpus/"
torch_flags=(-isystem /usr/include/torch/csrc/api/include -D_GLIBCXX_USE_CXX11_ABI=1)
torch_libs=(-ltorch -ltorch_cpu -lc10)
build_fuzzer tensor_file_fuzzer torch_flags torch_libs tests/fuzz/tensor_file_fuzzer.cc \
  src/model/tensor_file.cc src/serialization/*.cc src/common/error.cc src/common/writable_file.cc
run_fuzzer tensor_file_fuzzer "$out/tensor_corpus" 262144
