// stylefleet command-line tool: picks the subcommand (cli/command.h), parses
// its options, runs it. The one place that turns exceptions into exit codes.
#include <malloc.h>

#include <cstdlib>
#include <string>

#include "cli/command.h"
#include "common/cpu_info.h"
#include "common/error.h"
#include "common/log.h"
#include "common/stop_signal.h"
#include "runtime/launch_errors.h"

namespace stylefleet {
namespace {

int Run(int argc, char** argv) {
  CLI::App app{"stylefleet: trains fast neural style transfer models from YAML jobs"};
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Debug logging");
  std::vector<std::unique_ptr<Command>> commands;
  for (auto make :
       {MakeCheckCommand, MakeTrainCommand, MakeStylizeCommand, MakeExportCommand, MakeInfoCommand,
        MakeLossesCommand, MakeBenchCommand, MakeReportCommand, MakeConfigReferenceCommand}) {
    commands.push_back(make());
  }
  std::vector<CLI::App*> registered;
  for (const auto& command : commands) registered.push_back(command->Register(app));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitConfigError;
  }
  if (verbose) SetLogLevel(LogLevel::kDebug);
  for (size_t i = 0; i < commands.size(); ++i) {
    if (registered[i]->parsed()) return commands[i]->Run();
  }
  return kExitConfigError;  // not reached: require_subcommand(1)
}

// Set-up that must happen before any command runs, for the command named on
// the line (the first word that is not an option: -v train ...).
void PrepareProcess(int argc, char** argv) {
  std::string command;
  for (int i = 1; i < argc && command.empty(); ++i) {
    if (argv[i][0] != '-') command = argv[i];
  }
  // Training computes Grams through BLAS; the exec costs about half a second
  // of start-up, which only long commands win back.
  if (command == "train" || command == "bench") ChooseOpenBlasCore(argv);  // may exec, once
  // Training allocates and frees the same large activation buffers every step.
  // glibc's defaults hand them back to the kernel (mmap/trim) and fault them in
  // again, which cost the PyTorch reference most of its time here: keep them.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, INT32_MAX);
  // Only training stops at a step boundary; every other command ends at the first signal.
  if (command == "train") InstallStopSignalHandlers();
  const std::string blas_change = OpenBlasCoreChange();
  const char* mpi_rank = std::getenv("OMPI_COMM_WORLD_RANK");
  if (!blas_change.empty() && (mpi_rank == nullptr || std::string(mpi_rank) == "0")) {
    SF_LOG(kInfo) << blas_change;
  }
}

}  // namespace
}  // namespace stylefleet

int main(int argc, char** argv) {
  using namespace stylefleet;
  PrepareProcess(argc, argv);
  try {
    return Run(argc, argv);
  } catch (const ConfigError& e) {
    WriteToStderr(DescribeConfigError(e));
    return kExitConfigError;
  } catch (const std::exception& e) {
    WriteToStderr(std::string("error: ") + e.what() + "\n");
    return kExitRuntimeError;
  }
}
