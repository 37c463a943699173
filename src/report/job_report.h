// `stylefleet report`: one self-contained HTML page for a job's output folder
// (no network access, scripts or fonts: inline SVG charts and inline images),
// readable while the job still trains.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "report/run_history.h"

namespace stylefleet {

struct ReportOptions {
  /// A job's output folder (its job.output_dir) or one style's folder.
  std::string job_dir;
  /// Where to write the page; empty: JOB_DIR/report.html.
  std::string output;
  /// The job's name, for the page's title; empty: job_dir's folder name.
  std::string job_name;
  /// Previews shown per run, evenly spaced over the run, always with the latest.
  int max_previews_per_run = 12;
  /// Per sweep name, its keys with the values the job lists for them, in the
  /// job's order: the sweep's contact sheet follows that order and shows the
  /// listed combinations no run has started as empty cells. A sweep not given
  /// here is laid out from its runs alone, each key's values in numeric order
  /// when all are numbers, else in text order.
  std::map<std::string, std::vector<std::pair<std::string, std::vector<std::string>>>> sweep_values;
  /// Runs of the job whose folder lies outside job_dir (a style or sweep with
  /// its own output_dir), as (run name, folder): read too when the folder exists.
  std::vector<std::pair<std::string, std::string>> outside_runs;
};

/// The page for `runs` (as read by ReadJobHistory). `title` heads it. It
/// shows all runs side by side, then one contact sheet per sweep (runs placed
/// by their swept values: one key gives one row; two give rows by the first
/// and columns by the second; more give rows by every combination of all but
/// the last, columns by the last; a grid of more than 1024 cells, as zipped
/// keys make, is instead a list of the runs, one row each), then each run's
/// curves and previews.
std::string JobReportHtml(const std::vector<RunHistory>& runs, const std::string& title,
                          const ReportOptions& options);

/// Reads the job folder and writes the page (atomically: a temporary file
/// renamed into place). Returns the path written. Throws DataError when the
/// folder holds no run, Error when the page cannot be written.
std::string WriteJobReport(const ReportOptions& options);

}  // namespace stylefleet
