#include "train/run_settings.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/writable_file.h"

namespace stylefleet {
namespace fs = std::filesystem;
namespace {

fs::path RecordPath(const std::string& style_dir) { return fs::path(style_dir) / "settings.json"; }

}  // namespace

std::vector<Setting> RunSettings(const JobConfig& job, const StyleSpec& style, int group_ranks,
                                 const std::string& content_list) {
  std::vector<Setting> settings = StyleRunSettings(job, style);
  // A conditional network learns all the job's styles: each one's image,
  // weights and style settings are the network's too.
  if (&style == &job.conditional_run) {
    for (const StyleSpec& member : job.styles) {
      for (Setting& s : StyleRunSettings(job, member)) {
        if (s.key.rfind("styles.", 0) == 0) settings.push_back(std::move(s));
      }
    }
  }
  settings.push_back({"ranks training the style together", std::to_string(group_ranks),
                      Agreement::kEveryRank, OnResume::kMustMatch});
  if (!content_list.empty()) {
    settings.push_back(
        {"data.content_dir holds", content_list, Agreement::kEveryRank, OnResume::kMayChange});
  }
  return settings;
}

void RecordRunSettings(const std::string& style_dir, const std::vector<Setting>& settings) {
  nlohmann::json record = nlohmann::json::object();
  for (const Setting& s : settings) record[s.key] = s.value;
  const fs::path path = RecordPath(style_dir);
  ReplaceFileDurably(path.string(), record.dump(2) + "\n");
}

std::vector<SettingChange> CompareRunSettings(const std::string& style_dir,
                                              const std::vector<Setting>& now, bool* found) {
  const fs::path path = RecordPath(style_dir);
  std::error_code ec;
  *found = fs::exists(path, ec);
  if (!*found) return {};
  nlohmann::json record;
  try {
    std::ifstream in(path);
    in >> record;
  } catch (const std::exception& e) {
    throw Error(path.string() + ": unreadable settings record (" + e.what() +
                "); delete it to resume without comparing settings");
  }
  std::vector<SettingChange> changes;
  for (const Setting& s : now) {
    const auto it = record.find(s.key);
    if (it == record.end() || !it->is_string()) continue;
    const std::string recorded = it->get<std::string>();
    if (recorded != s.value) changes.push_back({s.key, recorded, s.value, s.on_resume});
  }
  return changes;
}

}  // namespace stylefleet
