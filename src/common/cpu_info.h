// What /proc/cpuinfo says about this machine's CPU (Linux).
#pragma once

#include <string>

namespace stylefleet {

/// The value of the first "NAME : value" line of /proc/cpuinfo ("model name",
/// "cpu MHz", "flags", ...); empty when absent or unreadable.
std::string CpuInfoField(const std::string& name);

/// True when the CPU lists `flag` (e.g. "avx512f", "avx512_bf16") in its flags.
bool CpuHasFlag(const std::string& flag);

/// True when this CPU has BF16 dot-product instructions (avx512_bf16 or
/// amx_bf16), so bf16 pays off on CPU. Read once.
bool CpuHasBf16();

/// Memory this process can still use, in bytes: /proc/meminfo's MemAvailable,
/// lowered to the cgroup's memory.max when a container sets one; 0 when unknown.
double AvailableMemoryBytes();

}  // namespace stylefleet
