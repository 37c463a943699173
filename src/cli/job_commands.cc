// The subcommands that work from a job file: check, train, report and
// config-reference (the reference of the job file's keys).
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "comm/nccl_communicator.h"
#include "commands/commands.h"
#include "common/error.h"
#include "common/log.h"
#include "config/job_settings.h"
#include "report/job_report.h"
#include "train/launch.h"
#include "train/memory_budget.h"
#include "train/preflight.h"
#include "train/style_schedule.h"

namespace stylefleet {
namespace {

class CheckCommand : public Command {
 public:
  CLI::App* Register(CLI::App& app) override {
    CLI::App* check = app.add_subcommand("check", "Validate a job and print the resolved plan");
    args_.AddTo(check);
    world_option_ = check
                        ->add_option("--world", world_,
                                     "Also print which ranks train which style, in which order, "
                                     "on this many ranks (default: 1, or every slot of --hostfile)")
                        ->check(CLI::Range(1, 1 << 20));
    hostfile_option_ = check->add_option(
        "--hostfile", hostfile_,
        "Open MPI hostfile of the launch ('NAME slots=N' per line): also print which host runs "
        "which rank, as plain mpirun lays ranks onto the slots in order (for launch/mpirun.sh, "
        "add --ranks-per-host with its --ranks-per-node)");
    check
        ->add_option("--ranks-per-host", ranks_per_host_,
                     "Ranks started on each host of --hostfile, instead of its slots= (as "
                     "launch/mpirun.sh --ranks-per-node)")
        ->check(CLI::Range(1, 1 << 20));
    return check;
  }

  int Run() override {
    JobConfig job = args_.Load();
    const std::vector<std::string> rank_hosts = RankHosts();
    std::cout << DescribeJob(job);
    // What `train` would refuse fails here too (exit 2), after the job is shown.
    PreflightOptions preflight;
    preflight.world = world_;
    preflight.processes_on_host = CudaDeviceCount() > 0 ? 0 : 1;
    Preflight checked(job, preflight);
    if (!checked.problems.empty()) throw ConfigError(checked.problems);
    // The schedule below shows the batch a resume on this many ranks takes.
    job = std::move(checked.job);
    for (const std::string& note : checked.notes) std::cout << "resume: " << note << "\n";
    PrintLossNetwork(job);
    if (OneNetworkForAllStyles(job)) {
      std::cout << "network: " << job.network << ": " << DescribeNetworkStyles(job)
                << " train one network in " << job.conditional_run.output_dir << ", on all "
                << world_ << " rank(s)\n";
      if (!rank_hosts.empty()) std::cout << DescribeRankHosts(rank_hosts);
    } else {
      std::cout << DescribeSchedule(job, checked.plan->schedule, rank_hosts);
    }
    const MemoryBudget budget = EstimateMemoryBudget(job, 1);
    std::printf("memory: about %.1f GiB per process on CPU (%s); available here: %.1f GiB\n",
                budget.needed_bytes / 1073741824.0, budget.largest_pass.c_str(),
                budget.available_bytes / 1073741824.0);
    return kExitOk;
  }

 private:
  // The host of each rank from --hostfile (empty without it); sets the world
  // to its slots when --world is left out.
  std::vector<std::string> RankHosts() {
    if (ranks_per_host_ > 0 && hostfile_.empty()) {
      throw ConfigError({"--ranks-per-host needs --hostfile"});
    }
    if (hostfile_option_->count() > 0 && hostfile_.empty()) {
      throw ConfigError({"--hostfile: empty path"});
    }
    if (hostfile_.empty()) return {};
    std::vector<std::string> rank_hosts =
        RankHostsFromHostfile(hostfile_, world_option_->count() > 0 ? world_ : 0, ranks_per_host_);
    world_ = static_cast<int>(rank_hosts.size());
    return rank_hosts;
  }

  static void PrintLossNetwork(const JobConfig& job) {
    LossNetworkReport loss_network;
    try {
      loss_network = DescribeLossNetwork(job.loss_network.weights);
    } catch (const DataError& e) {
      throw ConfigError({"loss_network.weights: " + std::string(e.what())});
    }
    std::cout << "loss network: " << job.loss_network.weights << "\n  convention "
              << loss_network.description << "\n";
    if (!loss_network.warning.empty()) {
      SF_LOG(kWarning) << (job.seed_format ? "seed-style file " + job.source_file + ": " : "")
                       << loss_network.warning;
    }
  }

  JobArgs args_;
  int world_ = 1;
  CLI::Option* world_option_ = nullptr;
  std::string hostfile_;
  CLI::Option* hostfile_option_ = nullptr;
  int ranks_per_host_ = 0;
};

class TrainCommand : public Command {
 public:
  CLI::App* Register(CLI::App& app) override {
    CLI::App* train =
        app.add_subcommand("train", "Train every style of a job (resumes from checkpoints)");
    args_.AddTo(train);
    AddThreadsOption(train, &options_.threads, ThreadsDefault::kPerRank);
    train
        ->add_option("--style", options_.only_styles,
                     "Train only this style (repeatable): a style name, a sweep run name, a "
                     "swept style (all its runs) or a shell pattern such as 'candy/*'")
        ->allow_extra_args(false);  // one name per --style: the job file may follow
    train->add_flag("!--no-progress", options_.progress, "No progress line on a terminal");
    train->add_flag("--allow-changed-settings", options_.allow_changed_settings,
                    "Resume a style even when settings that change what it learns differ from "
                    "those its checkpoint was trained with (the differences are logged)");
    AddTraceOption(train, &options_.trace_path,
                   "each step's phases (one file per rank under mpirun: NAME.rankN.json)");
    AddTestOptions(train);
    return train;
  }

  int Run() override { return LaunchTrain(args_.job_file, args_.load_options(), options_); }

 private:
  // Fault injection for the reliability tests, hidden from --help.
  void AddTestOptions(CLI::App* train) {
    train
        ->add_option("--test-inject-fault", options_.inject_faults,
                     "Test only: STYLE:STEP:KIND, give that step a NaN or Inf loss or gradient "
                     "on this rank (KIND: nan-loss, inf-loss, nan-gradient, inf-gradient)")
        ->group("");
    train
        ->add_option_function<std::vector<std::string>>(
            "--test-inject-nan",
            [this](const std::vector<std::string>& entries) {
              for (const auto& e : entries) options_.inject_faults.push_back(e + ":nan-loss");
            },
            "Test only: STYLE:STEP, make the loss of that step NaN on this rank")
        ->group("");
    train
        ->add_option("--test-perturb-replica", options_.perturb_replica,
                     "Test only: STYLE:STEP, move this rank's parameters after that step")
        ->group("");
  }

  JobArgs args_;
  TrainRunOptions options_;
};

class ReportCommand : public Command {
 public:
  CLI::App* Register(CLI::App& app) override {
    CLI::App* report = app.add_subcommand(
        "report",
        "Write one self-contained HTML page of a job's runs: loss curves, previews, throughput "
        "(works while the job trains)");
    report
        ->add_option("job_dir", options_.job_dir,
                     "A job file, its output folder (job.output_dir), or one style's folder")
        ->required();
    report->add_option("--output", options_.output,
                       "HTML file to write (default: JOB_DIR/report.html)");
    report
        ->add_option("--previews", options_.max_previews_per_run,
                     "Previews shown per run, evenly spaced, always with the latest (default 12)")
        ->check(CLI::Range(0, 10000));
    return report;
  }

  int Run() override {
    // A job file stands for its output folder.
    std::error_code ec;
    if (std::filesystem::is_regular_file(options_.job_dir, ec)) AddJob(LoadJob(options_.job_dir));
    std::cout << "wrote " << WriteJobReport(options_) << "\n";
    return kExitOk;
  }

 private:
  void AddJob(const JobConfig& job) {
    options_.job_dir = job.output_dir;
    options_.job_name = job.name;
    // The job's sweeps give each contact sheet its order and its runs not started.
    for (const StyleSpec& style : job.styles) {
      // A style with its own output_dir elsewhere is read from there.
      const std::filesystem::path inside =
          std::filesystem::path(style.output_dir).lexically_relative(job.output_dir);
      if (inside.empty() || *inside.begin() == "..") {
        options_.outside_runs.emplace_back(style.name, style.output_dir);
      }
      if (style.sweep.empty()) continue;
      auto& keys = options_.sweep_values[style.sweep];
      for (size_t k = 0; k < style.swept.size(); ++k) {
        if (keys.size() <= k) keys.emplace_back(style.swept[k].first, std::vector<std::string>{});
        auto& values = keys[k].second;
        if (std::find(values.begin(), values.end(), style.swept[k].second) == values.end())
          values.push_back(style.swept[k].second);
      }
    }
  }

  ReportOptions options_;
};

class ConfigReferenceCommand : public Command {
 public:
  CLI::App* Register(CLI::App& app) override {
    CLI::App* reference =
        app.add_subcommand("config-reference", "Print the Markdown reference of every job key");
    reference->add_flag("--rank-invariant", rank_invariant_,
                        "Print only the keys every rank of a launch must agree on, one per line");
    return reference;
  }

  int Run() override {
    if (!rank_invariant_) {
      std::cout << ConfigReference();
      return kExitOk;
    }
    for (const KeyInfo& key : ListKeys()) {
      if (key.agreement != Agreement::kPerRank) std::cout << key.key << "\n";
    }
    return kExitOk;
  }

 private:
  bool rank_invariant_ = false;
};

}  // namespace

std::unique_ptr<Command> MakeCheckCommand() { return std::make_unique<CheckCommand>(); }
std::unique_ptr<Command> MakeTrainCommand() { return std::make_unique<TrainCommand>(); }
std::unique_ptr<Command> MakeReportCommand() { return std::make_unique<ReportCommand>(); }
std::unique_ptr<Command> MakeConfigReferenceCommand() {
  return std::make_unique<ConfigReferenceCommand>();
}

}  // namespace stylefleet
