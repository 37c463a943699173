// stylefleet command-line tool: parses arguments, loads the job, runs the
// requested command. The one place that turns exceptions into exit codes.
#include <CLI/CLI.hpp>

#include <iostream>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/log.h"
#include "config/job_config.h"

namespace stylefleet {
namespace {

struct JobArgs {
  std::string job_file;
  std::vector<std::string> overrides;
  std::string content_dir;

  void AddTo(CLI::App* cmd) {
    cmd->add_option("job", job_file, "Job file (stylefleet job or seed-style per-style file)")
        ->required();
    cmd->add_option("--set", overrides,
                    "Override a key: section.key=value (value in YAML), e.g. "
                    "training.batch_size=8 or styles.wave.style_weight=50; repeatable");
    cmd->add_option("--content", content_dir,
                    "Content image folder (overrides data.content_dir; seed-style files default "
                    "to train2014/ under the working directory)");
  }
  JobConfig Load() const {
    LoadOptions options;
    options.overrides = overrides;
    options.content_dir = content_dir;
    return LoadJob(job_file, options);
  }
};

int Run(int argc, char** argv) {
  CLI::App app{"stylefleet: trains fast neural style transfer models from YAML jobs"};
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Debug logging");

  JobArgs check_args;
  CLI::App* check = app.add_subcommand("check", "Validate a job and print the resolved plan");
  check_args.AddTo(check);

  CLI::App* reference =
      app.add_subcommand("config-reference", "Print the Markdown reference of every job key");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitConfigError;
  }
  if (verbose) SetLogLevel(LogLevel::kDebug);

  if (check->parsed()) {
    const JobConfig job = check_args.Load();
    std::cout << DescribeJob(job);
    return kExitOk;
  }
  if (reference->parsed()) {
    std::cout << ConfigReference();
    return kExitOk;
  }
  return kExitConfigError;
}

}  // namespace
}  // namespace stylefleet

int main(int argc, char** argv) {
  using namespace stylefleet;
  try {
    return Run(argc, argv);
  } catch (const ConfigError& e) {
    for (const auto& problem : e.problems()) std::cerr << problem << "\n";
    std::cerr << e.problems().size() << (e.problems().size() == 1 ? " problem" : " problems")
              << " found; nothing was run\n";
    return kExitConfigError;
  } catch (const DataError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitRuntimeError;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitRuntimeError;
  }
}
