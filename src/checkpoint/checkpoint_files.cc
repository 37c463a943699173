#include "checkpoint/checkpoint_files.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/log.h"
#include "common/writable_file.h"

namespace stylefleet {
namespace fs = std::filesystem;

std::string CheckpointPath(const std::string& style_dir, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof(name), "step-%08lld.pt", static_cast<long long>(step));
  return (fs::path(style_dir) / "checkpoints" / name).string();
}

std::vector<std::string> ListCheckpoints(const std::string& style_dir) {
  std::vector<std::pair<long long, std::string>> found;
  std::error_code ec;
  const fs::path dir = fs::path(style_dir) / "checkpoints";
  if (!fs::is_directory(dir, ec)) return {};
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    long long step = 0;
    char tail[8] = {0};
    // Exactly step-<digits>.pt; the writer's temporaries start with '.'.
    if (name.size() == 16 && std::sscanf(name.c_str(), "step-%8lld%3s", &step, tail) == 2 &&
        std::string(tail) == ".pt") {
      found.emplace_back(step, entry.path().string());
    }
  }
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> paths;
  for (auto& f : found) paths.push_back(f.second);
  return paths;
}

void PruneCheckpoints(const std::string& style_dir, int keep) {
  const auto paths = ListCheckpoints(style_dir);
  for (size_t i = static_cast<size_t>(std::max(keep, 1)); i < paths.size(); ++i) {
    std::error_code ec;
    fs::remove(paths[i], ec);
    if (ec) SF_LOG(kWarning) << "cannot delete old checkpoint " << paths[i] << ": " << ec.message();
  }
}

std::string OutputDirConflict(const std::string& style_dir, const std::string& job,
                              const std::string& style) {
  std::error_code ec;
  const fs::path marker = fs::path(style_dir) / "stylefleet.json";
  if (fs::exists(marker, ec)) {
    nlohmann::json owner;
    try {
      std::ifstream in(marker);
      in >> owner;
    } catch (const std::exception& e) {
      return marker.string() + ": unreadable owner file (" + e.what() +
             "); remove it only if this folder may be reused";
    }
    const std::string owner_job = owner.value("job", ""), owner_style = owner.value("style", "");
    if (owner_job != job || owner_style != style) {
      return style_dir + ": folder belongs to style '" + owner_style + "' of job '" + owner_job +
             "', not style '" + style + "' of job '" + job +
             "'; choose another job.output_dir (e.g. --set job.output_dir=DIR)";
    }
    return "";
  }
  bool empty = true;
  for (fs::directory_iterator it(style_dir, ec), end; !ec && it != end; it.increment(ec)) {
    // A launch's shared-folder check file (train/rank_agreement.h) left by a killed rank.
    empty = empty && it->path().filename().string().rfind(".stylefleet-shared-check-", 0) == 0;
  }
  if (!empty) {
    return style_dir +
           ": folder is not empty and was not written by stylefleet; choose "
           "another job.output_dir (e.g. --set job.output_dir=DIR)";
  }
  return "";
}

namespace {
// The network kind a style folder's owner file records ("conditional",
// "arbitrary"); empty for a per-style run's, an older or an unreadable file.
std::string OwnerNetwork(const std::string& style_dir) {
  std::error_code ec;
  const fs::path marker = fs::path(style_dir) / "stylefleet.json";
  if (!fs::exists(marker, ec)) return "";
  nlohmann::json owner;
  try {
    std::ifstream in(marker);
    in >> owner;
  } catch (const std::exception&) {
    return "";  // OutputDirConflict names an unreadable owner file
  }
  if (!owner.is_object() || !owner.contains("network") || !owner["network"].is_string()) return "";
  return owner["network"].get<std::string>();
}

// "a conditional", "an arbitrary".
std::string WithArticle(const std::string& kind) {
  return (kind.rfind("a", 0) == 0 ? "an " : "a ") + kind;
}
}  // namespace

std::string PerStyleRunConflict(const std::string& style_dir, const std::string& network) {
  const std::string owner = OwnerNetwork(style_dir);
  if (!owner.empty() && owner != network) {
    return style_dir + ": holds the records of " + WithArticle(owner) +
           " network's style (this job trained with job.network: " + owner + "); the " + network +
           " network's metrics, previews and final images of this style would replace them. "
           "Train into another job.output_dir, or move the folder away";
  }
  std::error_code ec;
  const bool model = fs::exists(fs::path(style_dir) / "model.pt", ec);
  const size_t checkpoints = ListCheckpoints(style_dir).size();
  // A run's settings.json is written into the network's own folder only (a
  // per-style run's, or <output_dir>/conditional), before its first step.
  const bool settings = fs::exists(fs::path(style_dir) / "settings.json", ec);
  if (!model && checkpoints == 0 && !settings) return "";
  const std::string what = model         ? std::string("model.pt")
                           : checkpoints ? std::to_string(checkpoints) + " checkpoint(s)"
                                         : std::string("settings.json");
  return style_dir + ": holds a per-style network's " + what +
         " (this job trained with job.network: per_style); the " + network +
         " network's metrics, previews and final images of this style would replace that run's. "
         "Train the " +
         network + " network into another job.output_dir, or move the folder away";
}

std::string ConditionalStyleDirConflict(const std::string& style_dir) {
  const std::string owner = OwnerNetwork(style_dir);
  if (owner.empty()) return "";
  return style_dir + ": holds the records of " + WithArticle(owner) +
         " network's style (this job trained with job.network: " + owner +
         "); a per-style run would replace its metrics, previews and final images. Train into "
         "another job.output_dir, or move the folder away";
}

void ClaimConditionalStyleDir(const std::string& style_dir, const std::string& job,
                              const std::string& style, const std::string& network) {
  const std::string conflict = PerStyleRunConflict(style_dir, network);
  if (!conflict.empty()) throw Error(conflict);
  std::error_code ec;
  const bool claimed = fs::exists(fs::path(style_dir) / "stylefleet.json", ec);
  ClaimOutputDir(style_dir, job, style, "", {}, claimed ? "" : network);
}

void ClaimOutputDir(const std::string& style_dir, const std::string& job, const std::string& style,
                    const std::string& sweep,
                    const std::vector<std::pair<std::string, std::string>>& swept,
                    const std::string& one_network) {
  const std::string conflict = OutputDirConflict(style_dir, job, style);
  if (!conflict.empty()) throw Error(conflict);
  std::error_code ec;
  const fs::path marker = fs::path(style_dir) / "stylefleet.json";
  const bool claimed = fs::exists(marker, ec);
  // checkpoints/ is made by the first checkpoint's write: a conditional
  // network's style folders hold none, and an empty one looked like a lost run.
  fs::create_directories(style_dir, ec);
  if (claimed) return;
  if (ec) throw Error(style_dir + ": cannot create output folder (" + ec.message() + ")");
  nlohmann::json owner{{"job", job}, {"style", style}};
  if (!one_network.empty()) owner["network"] = one_network;
  if (!sweep.empty()) {
    owner["sweep"] = sweep;
    owner["swept"] = nlohmann::json::array();
    for (const auto& [key, value] : swept) owner["swept"].push_back({key, value});
  }
  ReplaceFileDurably(marker.string(), owner.dump(2) + "\n");
}

}  // namespace stylefleet
