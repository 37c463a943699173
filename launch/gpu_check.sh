#!/usr/bin/env bash
# Issue 8's one device run: builds stylefleet with CUDA against the device's
# PyTorch 2.x LibTorch and NCCL, runs the unit and GPU tests, trains the demo
# on the GPU and benchmarks fp32, TF32 and bf16 next to the same step in
# PyTorch. Logs and JSON go to $OUT (default ./gpu-out).
#
# Needs the kit from launch/gpu_kit.sh in .gpu-kit (carry it), e.g. through the
# device tool: run(command="bash launch/gpu_check.sh", carry=[".gpu-kit"]).
# Tried on CPU as far as it goes: STYLEFLEET_GPU_CHECK_DRY=1 stops after the
# kit extraction and the CMake configure.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
log() { echo "== $(date +%T) $*" | tee -a "$OUT/steps.log"; }
step() {  # step NAME COMMAND...: runs, logs to $OUT/NAME.log, records the exit code
  local name=$1; shift
  log "$name: $*"
  "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name $rc" >>"$OUT/results.txt"
  log "$name: exit $rc"
  return $rc
}

prefix=$PWD/.gpu-kit/root
rm -rf "$prefix" && mkdir -p "$prefix"
for deb in .gpu-kit/debs/*.deb; do dpkg -x "$deb" "$prefix"; done
# Debian points mpicxx/mpirun at Open MPI through /etc/alternatives, which dpkg -x does not create.
for tool in mpicxx mpirun mpiexec; do ln -sf "$tool.openmpi" "$prefix/usr/bin/$tool"; done
export PATH=$prefix/usr/bin:$PATH
export LD_LIBRARY_PATH=$prefix/usr/lib/x86_64-linux-gnu:$prefix/usr/lib/x86_64-linux-gnu/openmpi/lib:${LD_LIBRARY_PATH:-}
export OPAL_PREFIX=$prefix/usr   # relocated Open MPI finds its help files and plugins
# The kit's .pc files say prefix=/usr: the sysroot variable maps them into the kit.
export PKG_CONFIG_LIBDIR=$prefix/usr/lib/x86_64-linux-gnu/pkgconfig:$prefix/usr/share/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$prefix

python=${PYTHON:-python3}
torch_prefix=$($python -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)
nccl_dir=$($python -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))' 2>/dev/null || true)
{
  echo "date: $(date -u +%F)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  $python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1
  echo "torch cmake prefix: ${torch_prefix:-none}"
  echo "nccl: ${nccl_dir:-none}"
  nvcc --version 2>&1 | tail -1
  cmake --version | head -1
} | tee "$OUT/machine.txt"

cmake_args=(-S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DSTYLEFLEET_USE_CCACHE=OFF
            "-DCMAKE_PREFIX_PATH=${torch_prefix};$prefix/usr;$prefix/usr/lib/x86_64-linux-gnu/cmake"
            -DMPI_CXX_COMPILER="$prefix/usr/bin/mpicxx")
if [ -n "$nccl_dir" ]; then
  # The pip wheel's NCCL: headers and libnccl.so.2 (no unversioned link).
  [ -e "$nccl_dir/lib/libnccl.so" ] || ln -sf libnccl.so.2 "$nccl_dir/lib/libnccl.so"
  cmake_args+=(-DSTYLEFLEET_NCCL_INCLUDE_DIR="$nccl_dir/include" -DSTYLEFLEET_NCCL_LIBRARY="$nccl_dir/lib/libnccl.so")
  export LD_LIBRARY_PATH=$nccl_dir/lib:$LD_LIBRARY_PATH
fi
if [ -n "$torch_prefix" ]; then cmake_args+=(-DSTYLEFLEET_WITH_CUDA=ON); fi
step configure cmake "${cmake_args[@]}" || { log "configure failed"; exit 1; }
if [ "${STYLEFLEET_GPU_CHECK_DRY:-0}" = 1 ]; then log "dry run: stopping after configure"; exit 0; fi

step build cmake --build build-gpu -j "$(nproc)" || { log "build failed"; exit 1; }
step unit_tests ctest --test-dir build-gpu -L unit -j 8 --output-on-failure --timeout 300
step gpu_tests ctest --test-dir build-gpu -L gpu --output-on-failure --timeout 300
step demo_gpu ./build-gpu/stylefleet train configs/demo.yaml --no-progress \
  --set job.output_dir="$OUT/demo" --set monitoring.listen=off
common=(--image-size 256 --batch 4 --steps 5 --warmup 2 --stylize-sizes 1024 --no-progress)
step bench_fp32 ./build-gpu/stylefleet bench "${common[@]}" --precision fp32 --styles-at-once 4 --output "$OUT/bench_fp32.json"
step bench_tf32 ./build-gpu/stylefleet bench "${common[@]}" --precision fp32 --tf32 --styles-at-once 1 --output "$OUT/bench_tf32.json"
step bench_bf16 ./build-gpu/stylefleet bench "${common[@]}" --precision bf16 --styles-at-once 1 --trace "$OUT/trace_bf16.json" --output "$OUT/bench_bf16.json"
step bench_bf16_channels_last ./build-gpu/stylefleet bench "${common[@]}" --precision bf16 --channels-last --styles-at-once 1 --output "$OUT/bench_bf16_channels_last.json"
step reference_fp32 $python tests/bench/reference_train.py --device cuda --steps 5 --warmup 2
step reference_tf32 $python tests/bench/reference_train.py --device cuda --steps 5 --warmup 2 --tf32
step reference_bf16 $python tests/bench/reference_train.py --device cuda --steps 5 --warmup 2 --bf16
step reference_channels_last $python tests/bench/reference_train.py --device cuda --steps 5 --warmup 2 --bf16 --channels-last
# The figures side by side (PyTorch's JSON is the last line of each reference log).
$python - "$OUT" <<'PY' | tee "$OUT/summary.md"
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        return json.load(open(os.path.join(out, name)))
    except Exception:
        return None
def ref(name):
    try:
        return json.loads(open(os.path.join(out, name + ".log")).read().strip().splitlines()[-1])
    except Exception:
        return None
print("| precision | stylefleet images/s | PyTorch images/s | ratio |")
print("|---|---|---|---|")
for label, bench, reference in [("fp32", "bench_fp32.json", "reference_fp32"),
                                ("TF32", "bench_tf32.json", "reference_tf32"),
                                ("bf16", "bench_bf16.json", "reference_bf16"),
                                ("bf16 channels-last", "bench_bf16_channels_last.json", "reference_channels_last")]:
    b, r = load(bench), ref(reference)
    s = b["train_synthetic"][0]["images_per_second_per_style"] if b else float("nan")
    p = r["images_per_second"] if r else float("nan")
    print("| %s | %.2f | %.2f | %.2fx |" % (label, s, p, s / p if p else float("nan")))
b = load("bench_fp32.json")
if b:
    for st in b.get("stylize", []):
        print("stylize %d px: %.1f images/s" % (st["image_size"], st["images_per_second"]))
    if "train_styles_at_once" in b:
        print("styles at once x%d: %.2fx" % (b["train_styles_at_once"]["styles_at_once"],
                                           b["train_styles_at_once"]["speedup_over_one_style_at_a_time"]))
PY
cat "$OUT/results.txt"
