// libFuzzer target: arbitrary bytes as a job file (and as a --set override).
// The loader must end in a job or in a ConfigError whose every problem has a
// position; anything else (crash, other exception, hang, leak) is a finding.
#include <cstdint>
#include <regex>
#include <cstdlib>
#include <cstdio>
#include <string>

#include "common/error.h"
#include "config/job_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  stylefleet::LoadOptions options;
  options.check_files = false;  // the parser and validator, not the file system
  // Half the inputs also try the first line as a command-line override.
  if (size > 0 && (data[0] & 1)) options.overrides.push_back(text.substr(0, text.find('\n')));
  try {
    const stylefleet::JobConfig job = stylefleet::LoadJobFromString(text, "fuzz.yaml", options);
    if (job.styles.empty()) std::abort();  // a valid job always has a style
  } catch (const stylefleet::ConfigError& e) {
    if (e.problems().empty()) std::abort();
    // A problem names this file, the command line, or (for a seed-style file the job
    // lists) that file with a line and column.
    static const std::regex other_file(R"(^[^\n]+:\d+:\d+: )");
    for (const auto& problem : e.problems()) {
      if (problem.rfind("fuzz.yaml", 0) != 0 && problem.rfind("command line", 0) != 0 &&
          !std::regex_search(problem, other_file)) {
        std::fprintf(stderr, "problem without a position: %s\n", problem.c_str());
        std::abort();
      }
    }
  }
  return 0;
}
