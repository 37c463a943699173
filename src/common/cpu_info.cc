#include "common/cpu_info.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

namespace stylefleet {

std::string CpuInfoField(const std::string& name) {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name, 0) != 0) continue;
    const auto colon = line.find(':');
    // The name must be the whole key ("flags", not "flags2"), padded with tabs.
    if (colon == std::string::npos || line.find_first_not_of(" \t", name.size()) != colon) continue;
    return colon + 2 <= line.size() ? line.substr(colon + 2) : std::string();
  }
  return "";
}

bool CpuHasFlag(const std::string& flag) {
  const std::string flags = " " + CpuInfoField("flags") + " ";
  return flags.find(" " + flag + " ") != std::string::npos;
}

bool CpuHasBf16() {
  static const bool has = CpuHasFlag("avx512_bf16") || CpuHasFlag("amx_bf16");
  return has;
}

namespace {
// Set in the process that ChooseOpenBlasCore started: the core OpenBLAS had
// detected. It also keeps the choice from running twice.
constexpr const char* kDetectedBefore = "STYLEFLEET_OPENBLAS_DETECTED_BEFORE";
}  // namespace

std::string OpenBlasCoreName() {
  using CoreName = char* (*)();
  const auto core_name = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (core_name == nullptr) return "";
  if (const char* stand_in = std::getenv("STYLEFLEET_OPENBLAS_DETECTED")) {
    // Only before the choice: afterwards OpenBLAS's answer is the real one.
    if (std::getenv(kDetectedBefore) == nullptr) return stand_in;
  }
  const char* name = core_name();
  return name != nullptr ? name : "";
}

std::string BetterOpenBlasCore(const std::string& detected,
                               const std::function<bool(const std::string&)>& has_flag) {
  // The cores OpenBLAS falls back to for an x86-64 CPU it does not know.
  static const char* const kFallbacks[] = {"Prescott",   "Core2",     "Nehalem", "Katmai",
                                           "Coppermine", "Northwood", "Banias"};
  bool fallback = false;
  for (const char* name : kFallbacks) fallback = fallback || detected == name;
  if (!fallback) return "";
  const bool avx512 = has_flag("avx512f") && has_flag("avx512dq") && has_flag("avx512bw") &&
                      has_flag("avx512vl") && has_flag("avx512cd");
  if (avx512 && has_flag("avx512_bf16")) return "Cooperlake";
  if (avx512) return "SkylakeX";
  if (has_flag("avx2") && has_flag("fma")) return "Haswell";
  return "";
}

void ChooseOpenBlasCore(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr || std::getenv(kDetectedBefore) != nullptr) {
    return;  // the user's choice, or ours already
  }
  const std::string detected = OpenBlasCoreName();
  const std::string better = BetterOpenBlasCore(detected, CpuHasFlag);
  if (better.empty()) return;
  setenv("OPENBLAS_CORETYPE", better.c_str(), 1);
  setenv(kDetectedBefore, detected.c_str(), 1);
  execv("/proc/self/exe", argv);
  // Still here: the exec failed; go on with the detected kernels.
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv(kDetectedBefore);
}

std::string OpenBlasCoreChange() {
  const char* before = std::getenv(kDetectedBefore);
  if (before == nullptr) return "";
  return std::string("OpenBLAS took this CPU for ") + before + "; its " + OpenBlasCoreName() +
         " kernels are used (OPENBLAS_CORETYPE)";
}

double AvailableMemoryBytes() {
  double available = 0;
  std::ifstream meminfo("/proc/meminfo");
  for (std::string line; std::getline(meminfo, line);) {
    if (line.rfind("MemAvailable:", 0) == 0) available = std::atof(line.c_str() + 13) * 1024.0;
  }
  std::ifstream cgroup("/sys/fs/cgroup/memory.max");
  std::string limit;
  if (cgroup >> limit && limit != "max") {
    std::ifstream current_file("/sys/fs/cgroup/memory.current");
    double current = 0;
    current_file >> current;
    const double room = std::atof(limit.c_str()) - current;
    if (room > 0 && (available == 0 || room < available)) available = room;
  }
  return available;
}

}  // namespace stylefleet
