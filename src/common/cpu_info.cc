#include "common/cpu_info.h"

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
