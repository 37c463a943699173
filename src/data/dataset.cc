#include "data/dataset.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>

#include "common/error.h"
#include "common/fnv1a.h"
#include "common/image_names.h"
#include "common/log.h"
#include "data/image.h"

namespace stylefleet {
namespace fs = std::filesystem;

std::string ContentListHash(const std::string& dir, const std::vector<std::string>& files) {
  uint64_t hash = Fnv1a("");
  for (const auto& file : files) {
    std::error_code ec;
    const auto size = fs::file_size(file, ec);
    hash = Fnv1a(fs::path(file).lexically_relative(dir).string() + "\t" +
                     (ec ? std::string("?") : std::to_string(size)) + "\n",
                 hash);
  }
  char text[20];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(hash));
  // One stat per file: a `train` run hashes its listing once (cli_test counts these lines).
  SF_LOG(kDebug) << "hashed the sizes of " << files.size() << " content file(s) in " << dir;
  return text;
}

std::string DescribeContentList(size_t files, const std::string& hash) {
  return std::to_string(files) + " files, paths and sizes hash " + hash;
}

std::vector<std::string> ListImageFiles(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw DataError(dir + ": does not exist or is not a folder");
  std::vector<std::string> files;
  // Linked folders are followed (a folder of links to data sets is common);
  // each real folder is read once, so a link to an ancestor cannot loop.
  std::set<fs::path> visited = {fs::canonical(dir, ec)};
  fs::recursive_directory_iterator it(dir,
                                      fs::directory_options::skip_permission_denied |
                                          fs::directory_options::follow_directory_symlink,
                                      ec);
  if (ec) throw DataError(dir + ": cannot list the folder (" + ec.message() + ")");
  for (const fs::recursive_directory_iterator end; it != end; it.increment(ec)) {
    if (ec) throw DataError(dir + ": cannot list the folder (" + ec.message() + ")");
    if (it->is_directory(ec)) {
      if (!visited.insert(fs::canonical(it->path(), ec)).second) it.disable_recursion_pending();
    } else if (it->is_regular_file(ec) && HasImageExtension(it->path().string())) {
      files.push_back(it->path().string());
    }
  }
  if (files.empty()) {
    throw DataError(dir + ": holds no " + kImageExtensionList +
                    " files (sub-folders and linked folders included)");
  }
  std::sort(files.begin(), files.end());
  // A `train` run lists its content folder once (cli_test counts these lines).
  SF_LOG(kDebug) << "listed " << files.size() << " image(s) in " << dir;
  return files;
}

namespace {
uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
}  // namespace

std::vector<int64_t> EpochOrder(int64_t count, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) order[static_cast<size_t>(i)] = i;
  uint64_t state = seed * 0x2545F4914F6CDD1DULL + static_cast<uint64_t>(epoch) + 1;
  for (int64_t i = count - 1; i > 0; --i) {
    // Rejection-free bounded draw; the tiny modulo bias does not matter for shuffling photos.
    const auto j = static_cast<int64_t>(SplitMix64(state) % static_cast<uint64_t>(i + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

std::vector<int64_t> ShardOf(const std::vector<int64_t>& order, int rank, int world) {
  SF_CHECK(world >= 1 && rank >= 0 && rank < world, "bad rank/world");
  const size_t per_rank = order.size() / static_cast<size_t>(world);
  std::vector<int64_t> shard;
  shard.reserve(per_rank);
  for (size_t k = 0; k < per_rank; ++k) shard.push_back(order[k * world + rank]);
  return shard;
}

}  // namespace stylefleet
