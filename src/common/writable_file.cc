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

}  // namespace stylefleet
