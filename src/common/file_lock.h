// An advisory lock on a file (flock), for "one process at a time" guards such
// as a style's output folder. The kernel drops the lock when the holder exits
// in any way, SIGKILL included, so a crashed run never leaves a stale lock.
// POSIX only; on NFS, Linux maps flock to byte-range locks that work across
// nodes (NFSv4).
#pragma once

#include <string>

namespace stylefleet {

/// Holds the lock on one file while it lives. Move-only; not thread-safe.
class FileLock {
 public:
  /// Takes the lock on `path` (created if missing) without waiting, then
  /// writes `holder` (who holds it, e.g. "host h1, pid 42") into the file for
  /// the next one who finds it taken. Throws Error when another open file
  /// holds it (another process, or another FileLock of this one), naming the
  /// holder's text, or when the file cannot be opened.
  FileLock(const std::string& path, const std::string& holder);
  ~FileLock();
  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

/// "host NAME, pid N" for this process.
std::string ThisProcessDescription();

}  // namespace stylefleet
