#include "report/run_history.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "common/error.h"

namespace stylefleet {
namespace fs = std::filesystem;
namespace {

// Training writes records a few levels deep (stylefleet.json's "swept" pairs
// are the deepest, at three). Anything much deeper is a damaged or hostile
// file, and is not parsed: a deep tree crashed the report, as printing a value
// recurses once per level (issue 32).
constexpr int kMaxJsonDepth = 64;

// Whether `text` nests arrays and objects deeper than kMaxJsonDepth, counting
// brackets outside strings (nothing is allocated, whatever the depth).
bool NestsTooDeep(const std::string& text) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, a quote included
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

std::string TooDeep() { return "nested deeper than " + std::to_string(kMaxJsonDepth) + " levels"; }

double Number(const nlohmann::json& record, const char* key) {
  const auto it = record.find(key);
  if (it == record.end() || !it->is_number()) return std::numeric_limits<double>::quiet_NaN();
  return it->get<double>();
}

// previews/step-00000040.png -> 40; -1 for any other name.
int64_t PreviewStep(const std::string& file_name) {
  const std::string prefix = "step-", suffix = ".png";
  if (file_name.size() <= prefix.size() + suffix.size() || file_name.rfind(prefix, 0) != 0 ||
      file_name.compare(file_name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return -1;
  }
  const std::string digits =
      file_name.substr(prefix.size(), file_name.size() - prefix.size() - suffix.size());
  if (digits.empty() || digits.size() > 12 ||
      digits.find_first_not_of("0123456789") != std::string::npos) {
    return -1;
  }
  return std::stoll(digits);
}

bool IsRunFolder(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "metrics.jsonl", ec) || fs::is_directory(dir / "previews", ec);
}

// The numbers of one metrics.jsonl line (NaN where missing or not a number),
// without its per-layer losses.
HistoryRecord RecordValues(const nlohmann::json& record, int64_t step) {
  HistoryRecord r;
  r.step = step;
  const double total_steps = Number(record, "total_steps");
  r.total_steps = std::isfinite(total_steps) ? static_cast<int64_t>(total_steps) : 0;
  r.time = Number(record, "time");
  r.content = Number(record, "content_loss");
  r.style = Number(record, "style_loss");
  r.tv = Number(record, "tv_loss");
  r.total = Number(record, "total_loss");
  r.images_per_second = Number(record, "images_per_second");
  r.eta_seconds = Number(record, "eta_seconds");
  return r;
}

void ReadRecords(const fs::path& file, RunHistory& run) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return;
  // Never open a pipe or a device (a FIFO would block the report forever).
  if (!fs::is_regular_file(file, ec)) {
    run.unreadable.push_back(file.string() + " (not a regular file)");
    return;
  }
  std::ifstream in(file);
  if (!in) return;
  std::string line;
  std::set<std::string> left_out;  // layer names past kMaxStyleLayers, counted once each
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    if (NestsTooDeep(line)) {
      run.unreadable.push_back(file.string() + ":" + std::to_string(number) + " (" + TooDeep() +
                               ")");
      continue;
    }
    nlohmann::json record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!record.is_object() || !record.contains("step") || !record["step"].is_number_integer()) {
      run.unreadable.push_back(file.string() + ":" + std::to_string(number));
      continue;
    }
    // Training writes steps from 1 up, one line per step at most (a resume
    // rewrites the lines after its checkpoint): any other step is not its line.
    const int64_t step = record["step"].get<int64_t>();
    if (step < 1 || (!run.records.empty() && step <= run.records.back().step)) {
      run.unreadable.push_back(file.string() + ":" + std::to_string(number) + " (step " +
                               std::to_string(step) + " out of order)");
      continue;
    }
    HistoryRecord r = RecordValues(record, step);
    const auto layers = record.find("style_loss_by_layer");
    if (layers != record.end() && layers->is_object()) {
      for (const auto& [layer, value] : layers->items()) {
        if (std::find(run.style_layers.begin(), run.style_layers.end(), layer) ==
            run.style_layers.end()) {
          if (run.style_layers.size() >= kMaxStyleLayers) {
            left_out.insert(layer);
            continue;
          }
          run.style_layers.push_back(layer);
        }
        r.style_by_layer[layer] =
            value.is_number() ? value.get<double>() : std::numeric_limits<double>::quiet_NaN();
      }
    }
    run.records.push_back(std::move(r));
  }
  run.style_layers_left_out = left_out.size();
}

// final/07-beach.png, as training names them (train/run_outputs.h).
bool IsFinalImageName(const std::string& name) {
  return name.size() > 7 && std::isdigit(static_cast<unsigned char>(name[0])) &&
         std::isdigit(static_cast<unsigned char>(name[1])) && name[2] == '-' &&
         name.compare(name.size() - 4, 4, ".png") == 0;
}

// The "swept" pairs of a sweep run, or nothing when any is malformed.
std::vector<std::pair<std::string, std::string>> SweptPairs(const nlohmann::json& swept) {
  std::vector<std::pair<std::string, std::string>> pairs;
  if (!swept.is_array() || swept.empty()) return {};
  for (const auto& pair : swept) {
    if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string()) {
      return {};
    }
    const std::string key = pair[0].get<std::string>();
    if (key.empty()) return {};
    for (const auto& seen : pairs) {
      if (seen.first == key) return {};
    }
    pairs.emplace_back(key, pair[1].get<std::string>());
  }
  return pairs;
}

// stylefleet.json: who the run is. A record that is not a small regular file
// (a FIFO would block the report) or not a JSON object is ignored.
void ReadIdentity(const fs::path& file, RunHistory& run) {
  constexpr uintmax_t kMaxIdentityBytes = 1 << 20;
  std::error_code ec;
  const fs::file_status status = fs::symlink_status(file, ec);
  if (!fs::exists(status)) return;
  if (!fs::is_regular_file(status)) {
    run.identity_problem = "not a regular file";
    return;
  }
  if (fs::file_size(file, ec) > kMaxIdentityBytes || ec) {
    run.identity_problem = "larger than 1 MiB";
    return;
  }
  std::ifstream in(file);
  if (!in) {
    run.identity_problem = "cannot be opened";
    return;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (NestsTooDeep(text.str())) {
    run.identity_problem = TooDeep() + " (damaged?)";
    return;
  }
  const nlohmann::json doc = nlohmann::json::parse(text.str(), nullptr, false);
  if (!doc.is_object()) {
    run.identity_problem = "not a JSON object (damaged?)";
    return;
  }
  for (const auto& [key, value] : doc.items()) {
    run.identity[key] = value.is_string()
                            ? value.get<std::string>()
                            : value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  const auto sweep = doc.find("sweep");
  const auto swept = doc.find("swept");
  if (sweep == doc.end() && swept == doc.end()) return;  // a style outside any sweep
  if (sweep == doc.end() || !sweep->is_string() || sweep->get<std::string>().empty() ||
      swept == doc.end()) {
    run.identity_problem = "malformed sweep or swept";
    return;
  }
  run.swept = SweptPairs(*swept);
  if (run.swept.empty()) {
    run.identity_problem = "malformed sweep or swept";
  } else {
    run.sweep = sweep->get<std::string>();
  }
}

// Whether another process holds `file`, the folder lock that `train` takes
// (flock, common/file_lock.h) for as long as it trains on the folder and that
// the kernel drops when it exits, however it exits. Read from /proc/locks
// (device and inode of each FLOCK), never by taking a lock: a probe lock, even
// shared and dropped at once, would make a `train` starting in that instant
// find the folder in use.
bool LockHeld(const fs::path& file) {
  struct stat st {};
  if (::lstat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  std::ifstream locks("/proc/locks");
  // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:123456 0 EOF" (device in hex)
  for (std::string line; std::getline(locks, line);) {
    std::istringstream fields(line);
    std::string id, kind, advisory, mode, pid, where;
    if (!(fields >> id >> kind) || kind != "FLOCK") continue;
    if (!(fields >> advisory >> mode >> pid >> where)) continue;
    unsigned dev_major = 0, dev_minor = 0;
    unsigned long long inode = 0;
    if (std::sscanf(where.c_str(), "%x:%x:%llu", &dev_major, &dev_minor, &inode) != 3) continue;
    if (inode == static_cast<unsigned long long>(st.st_ino) && dev_major == major(st.st_dev) &&
        dev_minor == minor(st.st_dev)) {
      return true;
    }
  }
  return false;
}

// When the regular file `file` was last written; nothing when there is none.
std::optional<fs::file_time_type> WriteTime(const fs::path& file) {
  std::error_code ec;
  if (!fs::is_regular_file(fs::symlink_status(file, ec))) return std::nullopt;
  const fs::file_time_type time = fs::last_write_time(file, ec);
  if (ec) return std::nullopt;
  return time;
}

// See RunState. Times compare with "not earlier", not "later": files written
// in one go can share a timestamp (file systems keep them coarsely).
RunState ReadState(const fs::path& dir, const RunHistory& run) {
  if (LockHeld(dir / "stylefleet.lock")) return RunState::kTraining;
  const auto model = WriteTime(dir / "model.pt");
  if (!model) return RunState::kStopped;
  // Each start rewrites settings.json (its target included) before training;
  // a model.pt older than it is from an earlier target.
  const auto settings = WriteTime(dir / "settings.json");
  if (settings && *settings > *model) return RunState::kStopped;
  // A checkpoint after the model: training went on past the model's step.
  // Checkpoints are step-NNNNNNNN.pt; the writer's temporaries start with '.'.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir / "checkpoints", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("step-", 0) != 0) continue;
    const auto checkpoint = WriteTime(entry.path());
    if (checkpoint && *checkpoint > *model) return RunState::kStopped;
  }
  if (!settings && !run.records.empty()) {
    const HistoryRecord& last = run.records.back();
    if (last.total_steps > 0 && last.step < last.total_steps) return RunState::kStopped;
  }
  return RunState::kFinished;
}

}  // namespace

RunHistory ReadRunHistory(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw DataError(dir + ": not a folder");
  RunHistory run;
  run.dir = dir;
  run.name = fs::path(dir).lexically_normal().filename().string();
  if (run.name.empty()) {
    run.name = fs::path(dir).lexically_normal().parent_path().filename().string();
  }
  ReadRecords(fs::path(dir) / "metrics.jsonl", run);
  const fs::path previews = fs::path(dir) / "previews";
  if (fs::is_directory(previews, ec)) {
    for (const auto& entry : fs::directory_iterator(previews, ec)) {
      const int64_t step = PreviewStep(entry.path().filename().string());
      if (step >= 0 && entry.is_regular_file(ec)) run.previews.push_back({step, entry.path()});
    }
    std::sort(run.previews.begin(), run.previews.end(),
              [](const PreviewImage& a, const PreviewImage& b) { return a.step < b.step; });
  }
  ReadIdentity(fs::path(dir) / "stylefleet.json", run);
  const fs::path finals = fs::path(dir) / "final";
  if (fs::is_directory(finals, ec)) {
    for (const auto& entry : fs::directory_iterator(finals, ec)) {
      if (IsFinalImageName(entry.path().filename().string()) &&
          fs::is_regular_file(fs::symlink_status(entry.path(), ec))) {
        run.final_images.push_back(entry.path().string());
      }
    }
    std::sort(run.final_images.begin(), run.final_images.end());
  }
  run.state = ReadState(dir, run);
  return run;
}

namespace {

// Run folders below `dir`, named by their path relative to the job folder
// (sweep runs sit one level deeper: style/swept=value). Does not descend into
// run folders, nor deeper than three levels.
void CollectRuns(const fs::path& dir, const std::string& relative, int depth,
                 std::vector<std::pair<std::string, fs::path>>& found) {
  std::error_code ec;
  std::vector<fs::path> folders;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_directory(ec) && !entry.is_symlink(ec)) folders.push_back(entry.path());
  }
  std::sort(folders.begin(), folders.end());
  for (const auto& folder : folders) {
    const std::string name =
        relative.empty() ? folder.filename().string() : relative + "/" + folder.filename().string();
    if (IsRunFolder(folder)) {
      found.emplace_back(name, folder);
    } else if (depth < 3) {
      CollectRuns(folder, name, depth + 1, found);
    }
  }
}

}  // namespace

std::vector<RunHistory> ReadJobHistory(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    throw DataError(dir +
                    ": no such folder (has the job trained yet? `stylefleet train` creates it)");
  }
  if (!fs::is_directory(dir, ec)) throw DataError(dir + ": not a folder");
  if (IsRunFolder(dir)) return {ReadRunHistory(dir)};
  std::vector<std::pair<std::string, fs::path>> found;
  CollectRuns(dir, "", 1, found);
  if (found.empty()) {
    throw DataError(dir +
                    ": no training runs here (expected a job's output folder, whose style "
                    "folders hold metrics.jsonl, or one such style folder)");
  }
  std::vector<RunHistory> runs;
  for (const auto& [name, folder] : found) {
    runs.push_back(ReadRunHistory(folder.string()));
    runs.back().name = name;
  }
  return runs;
}

}  // namespace stylefleet
