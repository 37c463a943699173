#!/usr/bin/env bash
# Builds the GPU kit: the Debian 12 packages stylefleet's build needs besides
# LibTorch, CUDA and NCCL, as .deb files in .gpu-kit/debs (ignored by git), for
# a GPU machine without internet (issue 8). There, launch/gpu_check.sh extracts
# them with `dpkg -x` into a prefix; nothing is installed system-wide.
#
#   bash launch/gpu_kit.sh          # here, with Debian's archive reachable
#   du -sh .gpu-kit                 # must stay under the device tool's 64 MiB carry limit
set -euo pipefail
cd "$(dirname "$0")/.."
kit=.gpu-kit/debs
mkdir -p "$kit"

# What the build links or includes (the device brings LibTorch 2.x, CUDA, NCCL,
# CMake and a compiler), and Open MPI with its launcher.
wanted=(
  libyaml-cpp-dev libyaml-cpp0.7
  prometheus-cpp-dev libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libprometheus-cpp-push1.0
  libcivetweb1 libcivetweb-dev
  libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common
  libturbojpeg0-dev libturbojpeg0
  libstb-dev libstb0
  libcli11-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev googletest
)
# Their shared-library dependencies, one level at a time, minus what every
# Linux image has (C and C++ runtimes, zlib, OpenSSL, curl, ...).
base='^(libc6|libgcc-s1|libstdc\+\+6|zlib1g|libssl3|libcurl4|libcrypt1|libzstd1|liblzma5|libbz2-1.0|debconf|perl.*|python3.*|libgfortran5|gfortran.*|libjs-.*|dpkg|tar|sensible-utils)$'
all=("${wanted[@]}")
frontier=("${wanted[@]}")
for depth in 1 2 3; do
  next=()
  while read -r dep; do
    [[ "$dep" =~ $base ]] && continue
    [[ " ${all[*]} " == *" $dep "* ]] && continue
    all+=("$dep")
    next+=("$dep")
  done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
             --no-replaces --no-enhances "${frontier[@]}" 2>/dev/null |
           awk '/ Depends: [a-z]/ {print $2}' | grep -E '^lib|^openmpi|^civetweb' | sort -u)
  [ ${#next[@]} -eq 0 ] && break
  frontier=("${next[@]}")
done
echo "gpu_kit: ${#all[@]} packages"
(cd "$kit" && apt-get download "${all[@]}" >/dev/null)
du -sh .gpu-kit
ls "$kit" | wc -l
