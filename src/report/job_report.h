// `stylefleet report`: one self-contained HTML page for a job's output folder
// (no network access, scripts or fonts: inline SVG charts and inline images),
// readable while the job still trains.
#pragma once

#include <string>
#include <vector>

#include "report/run_history.h"

namespace stylefleet {

struct ReportOptions {
  /// A job's output folder (its job.output_dir) or one style's folder.
  std::string job_dir;
  /// Where to write the page; empty: JOB_DIR/report.html.
  std::string output;
  /// Previews shown per run, evenly spaced over the run, always with the latest.
  int max_previews_per_run = 12;
};

/// The page for `runs` (as read by ReadJobHistory). `title` heads it.
std::string JobReportHtml(const std::vector<RunHistory>& runs, const std::string& title,
                          const ReportOptions& options);

/// Reads the job folder and writes the page (atomically: a temporary file
/// renamed into place). Returns the path written. Throws DataError when the
/// folder holds no run, Error when the page cannot be written.
std::string WriteJobReport(const ReportOptions& options);

}  // namespace stylefleet
