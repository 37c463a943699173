// Helpers shared by the unit tests: temporary folders and generated images.
#pragma once

#include <string>

#include "data/image.h"

namespace stylefleet::testing {

/// A fresh folder under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  /// path() + "/" + name
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// Writes `text` to `path`, creating parent folders.
void WriteFile(const std::string& path, const std::string& text);

/// A deterministic colourful test image (gradients plus a pattern seeded by `seed`).
RgbImage MakeTestImage(int width, int height, int seed);

/// What a shell command printed (stdout and stderr together) and its exit code.
struct CommandResult {
  int exit_code;
  std::string output;
};

/// Runs `command` through the shell, capturing stdout and stderr. It runs
/// with this process's OpenBLAS kernels (OPENBLAS_CORETYPE), unless the
/// command sets or unsets them itself.
CommandResult RunCommand(const std::string& command);

/// Runs the independent PyTorch reference, `/usr/bin/python3 tests/python/reference.py
/// ARGUMENTS` (Debian's python3-torch: the python3 first on PATH may lack torch).
CommandResult RunReference(const std::string& arguments);

/// Writes `count` generated photos of `width` x `height` into `dir` as 0000.jpg, 0001.png, ...
/// (alternating JPEG and PNG).
void WriteTestImages(const std::string& dir, int count, int width, int height);

}  // namespace stylefleet::testing
