#!/usr/bin/env bash
# Installs every build, test and run-time dependency of stylefleet from Debian 12 packages.
# Idempotent: packages already present are skipped by apt. Needs root (or sudo).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ccache pkg-config git
  # libraries the code links
  libtorch-dev            # LibTorch 1.13 (CPU)
  libdnnl-dev             # oneDNN headers: the Winograd convolution (src/model/winograd_conv.cc)
  libopenblas0-pthread    # optimized system BLAS that Debian's LibTorch calls through libblas.so.3
  libyaml-cpp-dev         # job files
  prometheus-cpp-dev      # metrics registry and Pushgateway client
  libcivetweb-dev         # the metrics HTTP server
  libopenmpi-dev openmpi-bin   # multi-process launch and CPU collectives
  libturbojpeg0-dev       # fast JPEG decode with DCT scaling
  libstb-dev              # PNG/BMP/TGA decode and antialiased resize
  libcli11-dev            # command-line parsing
  nlohmann-json3-dev      # JSON output
  libgtest-dev libgmock-dev   # tests
  prometheus prometheus-pushgateway   # monitoring tests against the real servers (promtool too)
  clang libclang-rt-14-dev   # libFuzzer and sanitizers for the job-file fuzzer
  clang-format               # the format check of changed C++ files (launch/check_format.sh)
  wrk curl                   # load test of the metrics endpoint
  iproute2 util-linux         # hosts built from namespaces (tests/cluster/virtual_hosts.py)
  slurmctld slurmd slurm-client munge   # a real single-node Slurm (tests/cluster/slurm_test.py)
  # cross-checks against PyTorch in tests
  python3-torch python3-torchvision python3-numpy python3-pil
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
