#include "common/writable_file.h"

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

}  // namespace stylefleet
