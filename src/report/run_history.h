// What a training run left on disk, read back for reports: the metrics.jsonl
// records and the preview images of one style (or sweep run) folder. Reads
// folders of runs that are still training: a record being written at the
// moment (a torn last line) is skipped, not an error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace stylefleet {

/// One metrics.jsonl record. Values the run could not compute (NaN, written as
/// null) are NaN here.
struct HistoryRecord {
  int64_t step = 0;
  int64_t total_steps = 0;
  double time = 0;  ///< seconds since the Unix epoch
  double content = 0, style = 0, tv = 0, total = 0;
  std::map<std::string, double> style_by_layer;
  double images_per_second = 0;
  double eta_seconds = 0;
};

struct PreviewImage {
  int64_t step = 0;
  std::string path;
};

/// What a run folder says of its run, from what training records there (not
/// from the last metrics line alone: a run resumed with a larger target keeps
/// an old "step 30 of 30" line until it logs again).
enum class RunState {
  /// Another process holds the folder's stylefleet.lock: a `train` runs on it.
  kTraining,
  /// Not training, and model.pt was written no earlier than settings.json
  /// (rewritten, with the run's current target, at each start) and the
  /// newest checkpoint: the latest start reached its target. A folder without
  /// settings.json (an older version's) also needs its last record to have
  /// reached that record's total_steps.
  kFinished,
  /// Neither: the run ended before its target (a stop signal, a crash, a
  /// resume interrupted, or a folder copied without its process).
  kStopped,
};

struct RunHistory {
  /// The folder's path below the job folder ("candy", or "candy/style_weight=50"
  /// for a sweep run); its own name when read alone.
  std::string name;
  std::string dir;
  std::vector<HistoryRecord> records;  ///< in file order
  std::vector<PreviewImage> previews;  ///< by step
  /// The layers charted: the first kMaxStyleLayers in the order the records
  /// list them (by name within a record). Records keep values for these only.
  std::vector<std::string> style_layers;
  /// How many other layer names the records hold (left out of the page).
  size_t style_layers_left_out = 0;
  /// Lines of metrics.jsonl that were not a whole record (with their line numbers).
  std::vector<std::string> unreadable;
  RunState state = RunState::kStopped;
  /// Why stylefleet.json was not read as the run's record (the run is then
  /// outside any sweep); empty when it was read, or when there is none.
  std::string identity_problem;
  /// Keys and values of the run's stylefleet.json (the job, style, sweep values).
  std::map<std::string, std::string> identity;
  /// The sweep the run belongs to (stylefleet.json "sweep") and its swept keys
  /// with their value text (its "swept" pairs, in the sweep's key order). Both
  /// empty for a run outside a sweep, and when either field is missing or
  /// malformed (not a list of distinct [key, value] string pairs).
  std::string sweep;
  std::vector<std::pair<std::string, std::string>> swept;
  /// The run's final stylizations of the validation photos (final/NN-<stem>.png,
  /// regular files only), by name; empty until the run has ended.
  std::vector<std::string> final_images;
};

/// Layers charted per run: a network has a few style layers (VGG-16 has 13
/// convolutions); a record with thousands of names is damaged, and charting
/// them all made a page of tens of MB (issue 32).
constexpr size_t kMaxStyleLayers = 16;

/// Reads one run folder (one that holds a metrics.jsonl or previews/). Throws
/// DataError when `dir` cannot be read.
RunHistory ReadRunHistory(const std::string& dir);

/// The runs under a job's output folder (folders up to three levels down that
/// hold a metrics.jsonl or previews/, sorted by path), or `dir` itself when it
/// is one run. Throws DataError naming `dir` when it holds no run.
std::vector<RunHistory> ReadJobHistory(const std::string& dir);

}  // namespace stylefleet
