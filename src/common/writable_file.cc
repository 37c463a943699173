#include "common/writable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/error.h"

namespace stylefleet {

void CheckWritableFile(const std::string& path, const std::string& option) {
  namespace fs = std::filesystem;
  const std::string what = option + " " + path + ": ";
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw ConfigError({what + "is a folder, not a file"});
  const fs::path parent = fs::path(path).has_parent_path() ? fs::path(path).parent_path() : ".";
  if (!fs::is_directory(parent, ec)) {
    throw ConfigError({what + "its folder " + parent.string() + " does not exist"});
  }
  if (::access(parent.c_str(), W_OK) != 0) {
    throw ConfigError(
        {what + "cannot write in " + parent.string() + " (" + std::strerror(errno) + ")"});
  }
  if (fs::exists(path, ec) && ::access(path.c_str(), W_OK) != 0) {
    throw ConfigError({what + "cannot write (" + std::string(std::strerror(errno)) + ")"});
  }
}

std::string FileToReplace(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string target = path;
  if (fs::is_symlink(fs::symlink_status(path, ec))) {
    target = fs::weakly_canonical(path, ec).string();
    if (ec) throw Error(path + ": cannot follow the symbolic link (" + ec.message() + ")");
  }
  const fs::file_status status = fs::status(target, ec);
  const char* kind = nullptr;
  switch (status.type()) {
    case fs::file_type::not_found:
    case fs::file_type::regular:
      return target;
    case fs::file_type::directory:
      kind = "a folder";
      break;
    case fs::file_type::character:
    case fs::file_type::block:
      kind = "a device";
      break;
    case fs::file_type::fifo:
      kind = "a FIFO";
      break;
    case fs::file_type::socket:
      kind = "a socket";
      break;
    default:
      kind = "not a file";
      break;
  }
  if (ec) throw Error(path + ": cannot tell what is there (" + ec.message() + ")");
  throw Error(path + (target == path ? "" : " (a link to " + target + ")") + ": is " + kind +
              ", not a regular file; nothing was written");
}

namespace {
// Opens `path` read-only and flushes it (a file's bytes, or a folder's entries) to disk.
int SyncToDisk(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return errno;
  const int result = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  // Some file systems cannot flush a folder (EINVAL); the rename itself is still atomic.
  return result == EINVAL ? 0 : result;
}

// Writes all of `bytes` to a new file `path` and flushes it; 0 or the errno of the step that
// failed. `*opened`: whether `path` was opened (so is ours to remove).
int WriteNewFile(const std::string& path, std::string_view bytes, bool* opened) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  *opened = fd >= 0;
  if (fd < 0) return errno;
  int error = 0;
  for (size_t done = 0; done < bytes.size() && error == 0;) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n > 0) done += static_cast<size_t>(n);
    if (n < 0 && errno != EINTR) error = errno;
    if (n == 0) error = EIO;
  }
  if (error == 0 && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && error == 0) error = errno;  // NFS reports some write errors here
  return error;
}
}  // namespace

void ReplaceFileDurably(const std::string& path, std::string_view bytes) {
  namespace fs = std::filesystem;
  const fs::path target(FileToReplace(path));
  const fs::path folder = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const auto fail = [&](const std::string& step, const std::string& reason) {
    throw Error(path + ": " + step + " (" + reason + "); nothing was replaced");
  };
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) fail("cannot create its folder " + folder.string(), ec.message());
  // Errors name the file asked for; the temporary beside it is an internal detail.
  const std::string temp = (folder / ("." + target.filename().string() + ".tmp")).string();
  bool opened = false;
  int error = WriteNewFile(temp, bytes, &opened);
  if (error == 0) {
    fs::rename(temp, target, ec);
    if (ec) error = ec.value();
  }
  if (error != 0) {
    if (opened) fs::remove(temp, ec);  // a partial file would keep a full disk full
    fail("cannot write", std::strerror(error));
  }
  error = SyncToDisk(folder.string(), O_RDONLY | O_DIRECTORY);
  if (error != 0) {
    throw Error(path + ": written, but its folder could not be flushed to disk (" +
                std::string(std::strerror(error)) + ")");
  }
}

}  // namespace stylefleet
