// Paths in job files: relative ones are found against a base folder (the job
// file's, or the working directory for seed-format files and the command line).
// Part of the job loader (src/config), not for use outside it.
#pragma once

#include <filesystem>
#include <string>

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

// Relative validation photos are found like the other paths: against `base`.
inline void ResolveValidationImages(DataOptions& data, const std::filesystem::path& base) {
  for (std::string& path : data.validation_images) path = ResolvePath(path, base);
}

}  // namespace stylefleet::job_loader
