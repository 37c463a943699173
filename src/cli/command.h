// The command-line tool is a table of subcommands. Each one registers its own
// options (once, in one place) and runs after the line is parsed; the options
// several subcommands share are declared once below.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "config/job_config.h"

namespace stylefleet {

/// One subcommand of `stylefleet`.
class Command {
 public:
  virtual ~Command() = default;
  /// Adds the subcommand, its options and its help to `app`; returns it.
  virtual CLI::App* Register(CLI::App& app) = 0;
  /// Runs the command once its options are parsed; returns the exit code
  /// (common/error.h). Errors may be thrown: main() turns them into codes.
  virtual int Run() = 0;
};

// The subcommands, in the order `stylefleet --help` lists them.
std::unique_ptr<Command> MakeCheckCommand();            ///< check: validate a job, print its plan
std::unique_ptr<Command> MakeTrainCommand();            ///< train
std::unique_ptr<Command> MakeStylizeCommand();          ///< stylize
std::unique_ptr<Command> MakeExportCommand();           ///< export
std::unique_ptr<Command> MakeInfoCommand();             ///< info
std::unique_ptr<Command> MakeLossesCommand();           ///< losses
std::unique_ptr<Command> MakeBenchCommand();            ///< bench
std::unique_ptr<Command> MakeReportCommand();           ///< report
std::unique_ptr<Command> MakeConfigReferenceCommand();  ///< config-reference

/// The job file argument with --set and --content, for the commands that load a job.
struct JobArgs {
  std::string job_file;
  std::vector<std::string> overrides;
  std::string content_dir;

  void AddTo(CLI::App* command);
  LoadOptions load_options() const;
  JobConfig Load() const { return LoadJob(job_file, load_options()); }
};

/// Whose cores `--threads 0` shares: one rank's (cores / ranks on the host)
/// or the whole machine's.
enum class ThreadsDefault { kPerRank, kAllCores };

/// --threads N (intra-op threads, 0 to kMaxIntraOpThreads).
CLI::Option* AddThreadsOption(CLI::App* command, int* threads, ThreadsDefault left_out);

/// --convolution winograd|direct (job.convolution's choice for one command).
CLI::Option* AddConvolutionOption(CLI::App* command, std::string* convolution);

/// --trace PATH (a Chrome-trace JSON); `what` says which phases it holds.
CLI::Option* AddTraceOption(CLI::App* command, std::string* path, const std::string& what);

}  // namespace stylefleet
