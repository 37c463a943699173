// Which file names are images: one rule for content folders, style folders
// and anything else that lists a folder for images.
#pragma once

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace stylefleet {

/// The extensions this project decodes, as a message lists them.
inline constexpr char kImageExtensionList[] = ".jpg, .jpeg, .png, .bmp, .tga or .gif";

/// True when the file name has an extension this project decodes (any case).
inline bool HasImageExtension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".tga" ||
         ext == ".gif";
}

/// The image files (HasImageExtension; links to files included, dangling
/// ones left out) directly in `dir`, sorted by path; sub-folders are not
/// read. Sets `ec` when the folder cannot be listed.
inline std::vector<std::filesystem::path> ImageFilesIn(const std::filesystem::path& dir,
                                                       std::error_code& ec) {
  std::vector<std::filesystem::path> images;
  std::filesystem::directory_iterator it(dir, ec);
  for (const std::filesystem::directory_iterator end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (it->is_regular_file(type_ec) && HasImageExtension(it->path().string())) {
      images.push_back(it->path());
    }
  }
  std::sort(images.begin(), images.end());
  return images;
}

}  // namespace stylefleet
