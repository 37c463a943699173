// What /proc/cpuinfo says about this machine's CPU (Linux).
#pragma once

#include <functional>
#include <string>

namespace stylefleet {

/// The value of the first "NAME : value" line of /proc/cpuinfo ("model name",
/// "cpu MHz", "flags", ...); empty when absent or unreadable.
std::string CpuInfoField(const std::string& name);

/// The most intra-op threads a process is given (`--threads`, OMP_NUM_THREADS):
/// more than any machine here has, and few enough that a typo is refused
/// rather than spawned.
constexpr int kMaxIntraOpThreads = 1024;

/// True when the CPU lists `flag` (e.g. "avx512f", "avx512_bf16") in its flags.
bool CpuHasFlag(const std::string& flag);

/// True when this CPU has BF16 dot-product instructions (avx512_bf16 or
/// amx_bf16), so bf16 pays off on CPU. Read once.
bool CpuHasBf16();

/// The kernel set ("core") that the loaded OpenBLAS chose for this CPU, as
/// its openblas_get_corename() says; empty when the system BLAS is not
/// OpenBLAS. The environment variable STYLEFLEET_OPENBLAS_DETECTED, when
/// set, stands in for OpenBLAS's own detection (for tests).
std::string OpenBlasCoreName();

/// The OpenBLAS core that fits a CPU with these flags (`has_flag`), when the
/// `detected` one is a generic fallback: OpenBLAS 0.3.21 (Debian 12) does not
/// know recent Xeons and runs their BLAS with "Prescott" SSE3 kernels, 4-6x
/// slower than their AVX-512 ones. Empty when `detected` is fine or no better
/// core is known.
std::string BetterOpenBlasCore(const std::string& detected,
                               const std::function<bool(const std::string&)>& has_flag);

/// OpenBLAS reads its core choice (OPENBLAS_CORETYPE) when it is loaded,
/// before main(): so when BetterOpenBlasCore finds one and the user has not
/// set OPENBLAS_CORETYPE, this sets it and executes the program again with
/// the same arguments (`argv`), once. Returns only when nothing is to be done
/// (or the exec failed: then the detected kernels are used). After the exec,
/// OpenBlasCoreChange() describes what was done.
void ChooseOpenBlasCore(char** argv);

/// "OpenBLAS took this CPU for Prescott; its Cooperlake kernels are used
/// (OPENBLAS_CORETYPE)" in the process that ChooseOpenBlasCore started;
/// empty otherwise.
std::string OpenBlasCoreChange();

/// Memory this process can still use, in bytes: /proc/meminfo's MemAvailable,
/// lowered to the cgroup's memory.max when a container sets one; 0 when unknown.
double AvailableMemoryBytes();

}  // namespace stylefleet
