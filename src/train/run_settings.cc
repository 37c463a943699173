#include "train/run_settings.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>

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
  // The ranks and the batch may change together (elastic resume,
  // KeepImagesPerStep); the images of a step may not.
  settings.push_back({"ranks training the style together", std::to_string(group_ranks),
                      Agreement::kEveryRank, OnResume::kMayChange});
  settings.push_back({kImagesPerStepKey,
                      std::to_string(int64_t{style.training.batch_size} * group_ranks),
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

namespace {

// The record's string values; empty when there is none or it is unreadable
// (CompareRunSettings reports that).
std::map<std::string, std::string> ReadRecord(const std::string& style_dir) {
  std::map<std::string, std::string> values;
  try {
    std::ifstream in(RecordPath(style_dir));
    if (!in) return values;
    nlohmann::json record;
    in >> record;
    if (!record.is_object()) return values;
    for (const auto& [key, value] : record.items()) {
      if (value.is_string()) values[key] = value.get<std::string>();
    }
  } catch (const std::exception&) {
    values.clear();
  }
  return values;
}

// A positive count from the record, or 0.
int64_t RecordedCount(const std::map<std::string, std::string>& record, const std::string& key) {
  const auto it = record.find(key);
  if (it == record.end() || it->second.empty() || it->second.size() > 9 ||
      it->second.find_first_not_of("0123456789") != std::string::npos) {
    return 0;
  }
  return std::stoll(it->second);
}

bool PowerOfTwo(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

}  // namespace

ElasticBatch KeepImagesPerStep(const StyleSpec& style, int group_ranks) {
  ElasticBatch out;
  out.batch_size = style.training.batch_size;
  out.micro_batches = style.training.micro_batches;
  const std::map<std::string, std::string> record = ReadRecord(style.output_dir);
  const int64_t ranks = RecordedCount(record, "ranks training the style together");
  const int64_t batch = RecordedCount(record, "styles." + style.name + ".batch_size");
  const int64_t micro = RecordedCount(record, "styles." + style.name + ".micro_batches");
  if (ranks == 0 || batch == 0 || ranks == group_ranks) return out;
  const int64_t images = batch * ranks;
  const std::string was = "its checkpoints were trained with " + std::to_string(images) +
                          " images per step (batch_size " + std::to_string(batch) + " x " +
                          std::to_string(ranks) + " rank(s))";
  if (images % group_ranks != 0 || images / group_ranks > kMaxBatchSize) {
    out.problem = "style '" + style.name + "': " + was + "; " + std::to_string(group_ranks) +
                  " rank(s) per style cannot keep that (" + std::to_string(images) +
                  (images % group_ranks != 0
                       ? " is not a multiple of " + std::to_string(group_ranks)
                       : " / " + std::to_string(group_ranks) + " is above batch_size's limit of " +
                             std::to_string(kMaxBatchSize)) +
                  "): launch a number of ranks per style that divides " + std::to_string(images) +
                  ", or train into another job.output_dir";
    return out;
  }
  // Each pass keeps the job's images per micro-batch where it can: the units
  // the gradients are summed over stay the same.
  const int per_pass = style.training.batch_size / style.training.micro_batches;
  out.batch_size = static_cast<int>(images / group_ranks);
  const int kept_pass = std::gcd(out.batch_size, per_pass);
  out.micro_batches = out.batch_size / kept_pass;
  out.changed = out.batch_size != style.training.batch_size ||
                out.micro_batches != style.training.micro_batches;
  const bool exact = micro > 0 && batch % micro == 0 && batch / micro == kept_pass &&
                     PowerOfTwo(ranks) && PowerOfTwo(micro) && PowerOfTwo(group_ranks) &&
                     PowerOfTwo(out.micro_batches);
  out.note =
      "style '" + style.name + "': " + was + "; on " + std::to_string(group_ranks) +
      " rank(s) each takes batch_size " + std::to_string(out.batch_size) + " in " +
      std::to_string(out.micro_batches) + " micro-batch(es) of " + std::to_string(kept_pass) +
      ", the same " + std::to_string(images) + " images per step (elastic resume; " +
      (exact ? "with the MPI backend, bit for bit the update the checkpoints' set-up computes"
             : "the same update to rounding: bit for bit needs power-of-two rank and "
               "micro-batch counts and micro-batches of the recorded size") +
      ")";
  return out;
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
