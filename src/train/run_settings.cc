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
  // What the job file says, apart from what a resume took (KeepImagesPerStep).
  const TrainingOptions& t = style.training;
  settings.push_back(
      {"styles." + style.name + ".batch_size in the job file",
       std::to_string(t.configured_batch_size > 0 ? t.configured_batch_size : t.batch_size),
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

// The record's values, or a problem: a record that does not parse, is not an
// object, or holds a value that is not a string (settings.json is written
// with strings only) is unreadable. No record: empty.
std::map<std::string, std::string> ReadRecord(const fs::path& path, std::string* problem) {
  std::map<std::string, std::string> values;
  std::error_code ec;
  if (!fs::exists(path, ec)) return values;
  nlohmann::json record;
  try {
    std::ifstream in(path);
    in >> record;
  } catch (const std::exception& e) {
    *problem = path.string() + ": unreadable settings record (" + e.what() + ")";
    return {};
  }
  if (!record.is_object()) {
    *problem = path.string() + ": unreadable settings record (not a JSON object)";
    return {};
  }
  for (const auto& [key, value] : record.items()) {
    if (!value.is_string()) {
      *problem = path.string() + ": unreadable settings record ('" + key + "' is " +
                 value.dump().substr(0, 40) + ", not a string)";
      return {};
    }
    values[key] = value.get<std::string>();
  }
  return values;
}

const char* const kHowToGoOn = "; delete it to resume without comparing settings, or restore it";

// A count from the record: 0 when the key is absent (an older record), -1
// when its value is not a whole number from 1 (`problem` says so).
int64_t RecordedCount(const std::map<std::string, std::string>& record, const std::string& key,
                      const fs::path& path, std::string* problem) {
  const auto it = record.find(key);
  if (it == record.end()) return 0;
  const std::string& v = it->second;
  if (v.empty() || v.size() > 9 || v[0] == '0' ||
      v.find_first_not_of("0123456789") != std::string::npos) {
    if (problem->empty()) {
      *problem = path.string() + ": '" + key + "' is '" + v.substr(0, 40) +
                 "', not a whole number from 1" + kHowToGoOn;
    }
    return -1;
  }
  return std::stoll(v);
}

bool PowerOfTwo(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

std::string JobFileBatchKey(const StyleSpec& style) {
  return "styles." + style.name + ".batch_size in the job file";
}

int JobFileBatch(const TrainingOptions& t) {
  return t.configured_batch_size > 0 ? t.configured_batch_size : t.batch_size;
}

// What a run's settings.json says about its batch: 0 for a count an older
// record lacks; `problem` names the first unreadable or inconsistent value.
struct RecordedBatch {
  int64_t ranks = 0;           // ranks training the style together
  int64_t batch = 0;           // batch_size per rank
  int64_t micro = 0;           // micro_batches
  int64_t job_file_batch = 0;  // batch_size in the job file (before a resume changed it)
  std::string problem;
};

RecordedBatch ReadRecordedBatch(const StyleSpec& style) {
  RecordedBatch out;
  const fs::path path = RecordPath(style.output_dir);
  std::string problem;
  const std::map<std::string, std::string> record = ReadRecord(path, &problem);
  out.ranks = RecordedCount(record, "ranks training the style together", path, &problem);
  out.batch = RecordedCount(record, "styles." + style.name + ".batch_size", path, &problem);
  out.micro = RecordedCount(record, "styles." + style.name + ".micro_batches", path, &problem);
  out.job_file_batch = RecordedCount(record, JobFileBatchKey(style), path, &problem);
  const int64_t images = RecordedCount(record, kImagesPerStepKey, path, &problem);
  if (problem.empty() && images > 0 && out.ranks > 0 && out.batch > 0 &&
      images != out.batch * out.ranks) {
    problem = path.string() + ": '" + std::string(kImagesPerStepKey) + "' is " +
              std::to_string(images) + " but batch_size x ranks is " + std::to_string(out.batch) +
              " x " + std::to_string(out.ranks) + kHowToGoOn;
  }
  if (!problem.empty()) out.problem = "style '" + style.name + "': " + problem;
  if (out.job_file_batch == 0) out.job_file_batch = out.batch;  // from before elastic resume
  return out;
}

}  // namespace

ElasticBatch KeepImagesPerStep(const StyleSpec& style, int group_ranks) {
  ElasticBatch out;
  out.batch_size = style.training.batch_size;
  out.micro_batches = style.training.micro_batches;
  const RecordedBatch recorded = ReadRecordedBatch(style);
  if (!recorded.problem.empty()) {
    out.problem = recorded.problem;
    return out;
  }
  const int64_t ranks = recorded.ranks, batch = recorded.batch, micro = recorded.micro;
  if (ranks == 0 || batch == 0) return out;  // a record without them: nothing to keep
  const int64_t images = batch * ranks;
  // On the same ranks, the batch an earlier elastic resume chose goes on as
  // long as the job file is the same; a changed job file is compared (and
  // refused when it changes the images per step).
  const bool same_job_file = recorded.job_file_batch == JobFileBatch(style.training);
  if (ranks == group_ranks &&
      (!same_job_file || images == int64_t{style.training.batch_size} * group_ranks)) {
    return out;
  }
  const std::string was = "its checkpoints were trained with " + std::to_string(images) +
                          " images per step (batch_size " + std::to_string(batch) + " x " +
                          std::to_string(ranks) + " rank(s))";
  if (images % group_ranks != 0 || images / group_ranks > kMaxBatchSize) {
    const int64_t fewest = (images + kMaxBatchSize - 1) / kMaxBatchSize;
    out.problem = "style '" + style.name + "': " + was + "; " + std::to_string(group_ranks) +
                  " rank(s) per style cannot keep that (" + std::to_string(images) +
                  (images % group_ranks != 0
                       ? " is not a multiple of " + std::to_string(group_ranks)
                       : " / " + std::to_string(group_ranks) + " is above batch_size's limit of " +
                             std::to_string(kMaxBatchSize)) +
                  "): launch a number of ranks per style that divides " + std::to_string(images) +
                  (fewest > 1 ? " and is at least " + std::to_string(fewest) : std::string()) +
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
      (exact ? "with the MPI backend, bit for bit the update the checkpoints' set-up computes, "
               "as long as it trains with the same styles at once"
             : "the same update to rounding: bit for bit needs power-of-two rank and "
               "micro-batch counts and micro-batches of the recorded size") +
      ")";
  return out;
}

namespace {

// A key that settings.json files written before it lack, and the value every
// run of that time trained with: such a file is compared as if it held that
// value, so that a resume which sets another is refused like any change.
// Matched by the key's last part (training.K and styles.NAME.K alike).
std::string ValueBeforeTheKeyExisted(const std::string& key) {
  static const std::map<std::string, std::string> values = {{"style_luminance_only", "false"}};
  const auto dot = key.rfind('.');
  const auto it = values.find(dot == std::string::npos ? key : key.substr(dot + 1));
  return it == values.end() ? "" : it->second;
}

}  // namespace

std::vector<SettingChange> CompareRunSettings(const std::string& style_dir,
                                              const std::vector<Setting>& now, bool* found) {
  const fs::path path = RecordPath(style_dir);
  std::error_code ec;
  *found = fs::exists(path, ec);
  if (!*found) return {};
  std::string problem;
  const std::map<std::string, std::string> record = ReadRecord(path, &problem);
  if (!problem.empty()) {
    throw Error(problem + "; delete it to resume without comparing settings");
  }
  std::vector<SettingChange> changes;
  for (const Setting& s : now) {
    const auto it = record.find(s.key);
    std::string recorded;
    if (it != record.end()) {
      recorded = it->second;
    } else {
      recorded = ValueBeforeTheKeyExisted(s.key);
      if (recorded.empty()) continue;  // an older file without the key: nothing to compare
    }
    if (recorded != s.value) changes.push_back({s.key, recorded, s.value, s.on_resume});
  }
  return changes;
}

}  // namespace stylefleet
