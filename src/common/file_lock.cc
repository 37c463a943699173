#include "common/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/error.h"

namespace stylefleet {
namespace {

// What the holder wrote; the lock file is small and written in one call.
std::string ReadHolder(int fd) {
  char text[512];
  const ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
  if (n <= 0) return "unknown holder";
  std::string holder(text, static_cast<size_t>(n));
  while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0')) holder.pop_back();
  return holder.empty() ? "unknown holder" : holder;
}

}  // namespace

FileLock::FileLock(const std::string& path, const std::string& holder) : path_(path) {
  fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw Error(path + ": cannot open lock file (" + std::strerror(errno) + ")");
  }
  if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    const std::string current = ReadHolder(fd_);
    close(fd_);
    fd_ = -1;
    if (error == EWOULDBLOCK) throw Error(path + ": locked by " + current);
    throw Error(path + ": cannot lock (" + std::strerror(error) + ")");
  }
  // Written after the lock is ours, so a reader that found it locked reads the
  // holder's text (a torn read is possible only in the instant of this write).
  const std::string text = holder + "\n";
  if (ftruncate(fd_, 0) != 0 || pwrite(fd_, text.data(), text.size(), 0) < 0) {
    const int error = errno;
    close(fd_);
    fd_ = -1;
    throw Error(path + ": cannot write lock file (" + std::strerror(error) + ")");
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0) close(fd_);  // closing the last descriptor releases the lock
}

FileLock::FileLock(FileLock&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

std::string ThisProcessDescription() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "unknown");
  return std::string("host ") + host + ", pid " + std::to_string(getpid());
}

}  // namespace stylefleet
