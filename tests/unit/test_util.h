// Helpers shared by the unit tests: temporary folders and generated images.
#pragma once

#include <string>
#include <utility>
#include <vector>

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

/// Runs the independent PyTorch reference, `/usr/bin/python3 tests/reference/reference.py
/// ARGUMENTS` (Debian's python3-torch: the python3 first on PATH may lack torch).
CommandResult RunReference(const std::string& arguments);

/// A small job file for tests, written from its keys over defaults that train
/// fast: job {name: t, output_dir: out}, data {content_dir: photos,
/// image_size: 64, loader_threads: 1}, loss_network {weights: 'random:1'},
/// training {batch_size: 1, epochs: 0, max_steps: 1, preview_every_steps: 0},
/// monitoring {listen: 'off'}. Relative paths are the job file's folder's.
class JobText {
 public:
  JobText();
  /// Sets SECTION.KEY to `value`, YAML flow text (a scalar, a list [a, b]
  /// or a mapping {k: v}); an empty value leaves the key out.
  JobText& Set(const std::string& section, const std::string& key, const std::string& value);
  /// Adds a style: the keys of its mapping, "name: s, image: PATH, ...".
  JobText& Style(const std::string& keys);
  /// Adds a top-level section as YAML text (for example a sweep), before the styles.
  JobText& Section(const std::string& yaml);
  std::string Text() const;
  /// Writes Text() to `path`; returns `path`.
  std::string Write(const std::string& path) const;

 private:
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> sections_;
  std::vector<std::string> raw_sections_;
  std::vector<std::string> styles_;
};

/// Writes `count` generated photos of `width` x `height` into `dir` as 0000.jpg, 0001.png, ...
/// (alternating JPEG and PNG).
void WriteTestImages(const std::string& dir, int count, int width, int height);

}  // namespace stylefleet::testing
