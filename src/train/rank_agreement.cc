#include "train/rank_agreement.h"

#include <filesystem>

#include "common/fnv1a.h"
#include "runtime/group_ops.h"

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
  return text;
}

void CheckRanksAgreeOnJob(Communicator& all, const JobConfig& job,
                          const std::vector<std::string>& selected_styles,
                          const std::vector<std::string>& content_files) {
  std::vector<AgreedItem> items;
  for (const Setting& s : ListSettings(job)) {
    if (s.agreement != Agreement::kPerRank) items.emplace_back(s.key, s.value);
  }
  std::string selection;
  for (const auto& name : selected_styles) selection += (selection.empty() ? "" : ", ") + name;
  items.emplace_back("the styles selected with --style", selection.empty() ? "all" : selection);
  CheckRanksAgree(all, items,
                  "every rank must load the same job file with the same --set, --style and "
                  "--content options");
  CheckRanksAgree(all,
                  {{"the number of content files in " + job.data.content_dir,
                    std::to_string(content_files.size())},
                   {"the content files (relative paths and sizes, hashed)",
                    ContentListHash(job.data.content_dir, content_files)}},
                  "every rank must see the same content folder (a shared file system, or "
                  "identical copies)");
}

}  // namespace stylefleet
