// Paths in job files: relative ones are found against a base folder (the job
// file's, or the working directory for seed-format files and the command line).
// Part of the job loader (src/config), not for use outside it.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "config/job_config.h"

namespace stylefleet::job_loader {

inline std::string ResolvePath(const std::string& path, const std::filesystem::path& base) {
  if (path.empty() || path.rfind("random:", 0) == 0) return path;
  std::filesystem::path p(path);
  if (p.is_relative()) p = base / p;
  return p.lexically_normal().string();
}

inline std::string Stem(const std::string& path) {
  return std::filesystem::path(path).stem().string();
}

// Each of `paths` found like the other paths: against `base`.
inline void ResolvePathList(std::vector<std::string>& paths, const std::filesystem::path& base) {
  for (std::string& path : paths) path = ResolvePath(path, base);
}

}  // namespace stylefleet::job_loader
