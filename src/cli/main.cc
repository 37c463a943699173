// stylefleet command-line tool: parses arguments, loads the job, runs the
// requested command. The one place that turns exceptions into exit codes.
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "comm/nccl_communicator.h"
#include "comm/world.h"
#include "commands/commands.h"
#include "common/cpu_info.h"
#include "common/error.h"
#include "common/log.h"
#include "common/stop_signal.h"
#include "common/writable_file.h"
#include "config/job_config.h"
#include "config/job_settings.h"
#include "metrics/prometheus_metrics.h"
#include "report/job_report.h"
#include "train/memory_budget.h"
#include "train/preflight.h"
#include "train/style_schedule.h"
#include "train/train.h"

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

void ReportConfigError(const ConfigError& e, const std::string& then = "") {
  std::string text;
  for (const auto& problem : e.problems()) text += problem + "\n";
  text += std::to_string(e.problems().size()) +
          (e.problems().size() == 1 ? " problem" : " problems") + " found; nothing was run\n";
  WriteToStderr(text + then);
}

// Writes <output_dir>/prometheus_targets.json (file-based service discovery)
// listing `endpoints`, atomically; returns its path.
std::string WriteTargets(const JobConfig& job, const std::vector<std::string>& endpoints) {
  const nlohmann::json sd =
      nlohmann::json::array({{{"targets", endpoints}, {"labels", {{"stylefleet_job", job.name}}}}});
  const std::string path = job.output_dir + "/prometheus_targets.json";
  ReplaceFileDurably(path, sd.dump(2) + "\n");
  return path;
}

// The Prometheus exporter of this rank, and (on rank 0) a file-based service
// discovery file listing every rank's endpoint, for monitoring/prometheus.yml.
std::unique_ptr<TrainingMetrics> StartMetrics(const JobConfig& job, World& world) {
  const MonitoringOptions& m = job.monitoring;
  const ProcessInfo& me = world.info();
  std::unique_ptr<TrainingMetrics> metrics;
  if (m.listen == "off" && m.pushgateway.empty()) {
    metrics = MakeNullMetrics();
  } else {
    PrometheusOptions options;
    options.listen = m.listen == "off" ? "" : m.listen;
    options.listen_strict = m.listen_strict;
    options.linger_seconds = m.linger_seconds;
    options.pushgateway = m.pushgateway;
    options.push_interval_seconds = m.push_interval_seconds;
    metrics =
        MakePrometheusMetrics(options, MetricsIdentity{job.name, me.rank, me.local_rank, me.host});
  }
  const auto endpoints = world.all().AllGather(metrics->endpoint(), "metrics endpoint allgather");
  if (me.rank == 0 && !metrics->endpoint().empty()) {
    const std::string path = WriteTargets(job, endpoints);
    SF_LOG(kInfo) << "Prometheus targets of all " << endpoints.size() << " rank(s) in " << path;
  }
  return metrics;
}

// After a normal end every rank has exported stylefleet_finished 1 and been
// scraped (or nobody scrapes): rank 0 then empties the targets list, so that
// Prometheus stops scraping ranks that ended on purpose and no alert takes
// them for dead. Collective over the world.
void WithdrawTargets(const JobConfig& job, World& world, const TrainingMetrics& metrics) {
  world.all().Barrier();  // every rank has lingered
  if (world.info().rank != 0 || metrics.endpoint().empty()) return;
  const std::string path = WriteTargets(job, {});
  SF_LOG(kInfo) << "job finished: the targets in " << path << " are withdrawn";
}

// The exporter's web server takes up to about half a second to stop (its
// threads poll with a timeout), and the process ends right after training:
// the metrics are kept, reachable, until exit instead of being stopped.
void KeepUntilExit(std::unique_ptr<TrainingMetrics> metrics) {
  static auto* const kept = new std::vector<std::unique_ptr<TrainingMetrics>>();
  kept->push_back(std::move(metrics));
}

// Runs `body` on this rank. Alone, exceptions go to main()'s handler; under
// mpirun a failure on any rank is reported with its rank and host and aborts
// the whole launch (exit 2 for a config error, 1 otherwise), so no peer waits
// in a collective that will never complete.
template <typename Body>
int RunCollective(World& world, Body body) {
  const ProcessInfo& me = world.info();
  try {
    return body();
  } catch (const ConfigError& e) {
    if (me.size == 1) throw;
    ReportConfigError(e, "rank " + std::to_string(me.rank) + " on " + me.host + ": aborting all " +
                             std::to_string(me.size) + " ranks\n");
    world.Abort(kExitConfigError);
  } catch (const std::exception& e) {
    if (me.size == 1) throw;
    WriteToStderr("error: rank " + std::to_string(me.rank) + " on " + me.host + ": " + e.what() +
                  "\naborting all " + std::to_string(me.size) + " ranks\n");
    world.Abort(kExitRuntimeError);
  }
  return kExitRuntimeError;  // not reached: Abort does not return
}

// `train`, on one process or as one rank of an mpirun launch. A job that is
// invalid on any rank stops every rank with code 2 (reported once, by rank 0);
// a failure during training aborts the whole launch so no peer hangs.
int RunTrain(const JobArgs& args, const TrainRunOptions& options) {
  const std::unique_ptr<World> world = LaunchedByMpi() ? MakeMpiWorld() : MakeSoloWorld();
  const ProcessInfo& me = world->info();
  if (me.size > 1) SetLogPrefix("[rank " + std::to_string(me.rank) + "] ");
  JobConfig job;
  std::vector<std::string> problems;
  try {
    job = args.Load();
    // What would stop training later (an unknown --style, no photos, a folder of
    // another job) stops it now, before a metrics port is opened or a file written.
    PreflightOptions preflight;
    preflight.only_styles = options.only_styles;
    preflight.world = me.size;
    preflight.allow_changed_settings = options.allow_changed_settings;
    preflight.log_changes = me.rank == 0;
    preflight.processes_on_host = CudaDeviceCount() > 0 ? 0 : me.local_size;
    // A resume on another number of ranks keeps its images per step; the
    // preflight checks the job this gives (and says when it cannot).
    Preflight checked(job, preflight);
    job = std::move(checked.job);
    if (me.rank == 0) {
      for (const std::string& note : checked.notes) SF_LOG(kInfo) << note;
    }
    problems = std::move(checked.problems);
    // Each rank writes PATH or a file beside it (step/step_clock.h).
    if (!options.trace_path.empty()) CheckWritableFile(options.trace_path, "--trace");
  } catch (const ConfigError& e) {
    problems = e.problems();
  }
  if (me.size > 1) {
    // Agree on validity first: a rank that alone failed would otherwise leave the others waiting.
    std::string joined;
    for (const auto& p : problems) joined += p + "\n";
    const auto all = world->all().AllGather(joined, "job validity allgather");
    for (size_t r = 0; r < all.size() && problems.empty(); ++r) {
      if (all[r].empty()) continue;
      std::istringstream lines(all[r]);
      for (std::string line; std::getline(lines, line);) {
        problems.push_back("rank " + std::to_string(r) + ": " + line);
      }
    }
  }
  if (!problems.empty()) {
    if (me.rank == 0) ReportConfigError(ConfigError(problems));
    return kExitConfigError;
  }
  world->SetCollectiveTimeouts(job.distributed.stall_warn_seconds, job.distributed.timeout_seconds);
  return RunCollective(*world, [&] {
    // Held until training ends (or the process dies): one run per style folder.
    const std::vector<FileLock> locks = LockStyleFolders(job, options.only_styles, *world);
    std::unique_ptr<TrainingMetrics> metrics = StartMetrics(job, *world);
    TrainRunOptions with_metrics = options;
    with_metrics.metrics = metrics.get();
    const TrainOutcome outcome = TrainJob(job, with_metrics, *world);
    if (outcome.stopped) {
      // Preempted: checkpoints are written; leave now, without lingering.
      if (me.rank == 0) SF_LOG(kWarning) << "stopped by signal; rerun the same command to resume";
      return kExitOk;
    }
    metrics->Finish();
    WithdrawTargets(job, *world, *metrics);
    KeepUntilExit(std::move(metrics));
    if (!outcome.failed_styles.empty()) {
      std::string names;
      for (const auto& n : outcome.failed_styles) names += (names.empty() ? "" : ", ") + n;
      SF_LOG(kError) << outcome.failed_styles.size()
                     << " style(s) stopped by NaN/Inf faults: " << names << " (the others trained)";
      return kExitRuntimeError;
    }
    return kExitOk;
  });
}

// `bench`, on one process or over all ranks of an mpirun launch (the same
// abort path as `train`).
int RunBench(const BenchOptions& options, const std::string& output) {
  const std::unique_ptr<World> world = LaunchedByMpi() ? MakeMpiWorld() : MakeSoloWorld();
  if (world->info().size > 1) SetLogPrefix("[rank " + std::to_string(world->info().rank) + "] ");
  return RunCollective(*world, [&] {
    // A bad --output fails now, not after minutes of measuring.
    if (!output.empty() && world->info().rank == 0) CheckWritableFile(output, "--output");
    const std::string json = RunBenchmark(options, *world);
    if (world->info().rank != 0) return kExitOk;
    std::cout << json << "\n";
    if (!output.empty()) {
      // Streamed, not replaced (ReplaceFileDurably): --output may name /dev/stdout or a pipe.
      std::ofstream out(output, std::ios::trunc);
      out << json << "\n";
      if (!out) throw Error("cannot write " + output + " (" + std::strerror(errno) + ")");
    }
    return kExitOk;
  });
}

// "stylize: 3 written, 2 skipped (1 output exists, 1 inside the output
// folder), 0 failed": the line a user reads after a long run.
std::string DescribeStylizeResult(const StylizeResult& result) {
  int exists = 0, inside = 0, repeated = 0;
  for (const SkippedImage& skipped : result.skipped) {
    if (skipped.reason == SkipReason::kOutputExists) ++exists;
    if (skipped.reason == SkipReason::kInsideOutput) ++inside;
    if (skipped.reason == SkipReason::kRepeatedInput) ++repeated;
  }
  std::string why;
  const auto add = [&](int count, const std::string& what) {
    if (count > 0) why += (why.empty() ? "" : ", ") + std::to_string(count) + " " + what;
  };
  add(exists, "output exists, --overwrite replaces");
  add(inside, "inside the output folder");
  add(repeated, "given twice");
  return "stylize: " + std::to_string(result.written.size()) + " written, " +
         std::to_string(result.skipped.size()) + " skipped" +
         (why.empty() ? "" : " (" + why + ")") + ", " + std::to_string(result.failed.size()) +
         " failed";
}

int Run(int argc, char** argv) {
  CLI::App app{"stylefleet: trains fast neural style transfer models from YAML jobs"};
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Debug logging");

  JobArgs check_args;
  int check_world = 1;
  CLI::App* check = app.add_subcommand("check", "Validate a job and print the resolved plan");
  check_args.AddTo(check);
  CLI::Option* check_world_option =
      check
          ->add_option("--world", check_world,
                       "Also print which ranks train which style, in which order, on this many "
                       "ranks (default: 1, or every slot of --hostfile)")
          ->check(CLI::Range(1, 1 << 20));
  std::string check_hostfile;
  int check_ranks_per_host = 0;
  check->add_option("--hostfile", check_hostfile,
                    "Open MPI hostfile of the launch ('NAME slots=N' per line): also print which "
                    "host runs which rank, as plain mpirun lays ranks onto the slots in order "
                    "(for launch/mpirun.sh, add --ranks-per-host with its --ranks-per-node)");
  check
      ->add_option("--ranks-per-host", check_ranks_per_host,
                   "Ranks started on each host of --hostfile, instead of its slots= (as "
                   "launch/mpirun.sh --ranks-per-node)")
      ->check(CLI::Range(1, 1 << 20));

  JobArgs train_args;
  TrainRunOptions train_options;
  CLI::App* train =
      app.add_subcommand("train", "Train every style of a job (resumes from checkpoints)");
  train_args.AddTo(train);
  train
      ->add_option("--threads", train_options.threads,
                   "Intra-op threads per rank, 1 to 1024; 0 or left out: OMP_NUM_THREADS when "
                   "set, else cores / ranks on the host")
      ->check(CLI::Range(0, kMaxIntraOpThreads));
  train->add_option("--style", train_options.only_styles,
                    "Train only this style (repeatable): a style name, a sweep run name, a swept "
                    "style (all its runs) or a shell pattern such as 'candy/*'");
  train->add_flag("!--no-progress", train_options.progress, "No progress line on a terminal");
  train->add_flag("--allow-changed-settings", train_options.allow_changed_settings,
                  "Resume a style even when settings that change what it learns differ from "
                  "those its checkpoint was trained with (the differences are logged)");
  train->add_option("--trace", train_options.trace_path,
                    "Write a Chrome-trace JSON of each step's phases here (one file per rank "
                    "under mpirun: NAME.rankN.json); open it in Perfetto");
  train
      ->add_option("--test-inject-fault", train_options.inject_faults,
                   "Test only: STYLE:STEP:KIND, give that step a NaN or Inf loss or gradient on "
                   "this rank (KIND: nan-loss, inf-loss, nan-gradient, inf-gradient)")
      ->group("");  // hidden from --help
  train
      ->add_option_function<std::vector<std::string>>(
          "--test-inject-nan",
          [&train_options](const std::vector<std::string>& entries) {
            for (const auto& e : entries) train_options.inject_faults.push_back(e + ":nan-loss");
          },
          "Test only: STYLE:STEP, make the loss of that step NaN on this rank")
      ->group("");
  train
      ->add_option("--test-perturb-replica", train_options.perturb_replica,
                   "Test only: STYLE:STEP, move this rank's parameters after that step")
      ->group("");

  StylizeOptions stylize_options;
  CLI::App* stylize = app.add_subcommand("stylize", "Apply a trained model to images");
  stylize
      ->add_option("--model", stylize_options.model,
                   "model.pt, a checkpoint, a style's output folder, or a PyTorch-example .pth")
      ->required();
  stylize->add_option("inputs", stylize_options.inputs, "Images or folders of images")->required();
  stylize->add_option("--output", stylize_options.output_dir, "Output folder")->required();
  stylize->add_option("--format", stylize_options.format, "jpg or png (default jpg)");
  stylize->add_option("--tile", stylize_options.tile_size,
                      "Images with a side over this many pixels run layer by layer in tiles of "
                      "this size: the same result as one pass, in less memory (default 1024; "
                      "at least 64; 0: always one pass)");
  stylize->add_option("--overlap", stylize_options.tile_overlap,
                      "Ignored, kept for old command lines: tiles no longer overlap or blend");
  stylize
      ->add_option("--max-image-pixels", stylize_options.max_image_pixels,
                   "Refuse inputs whose header declares more pixels, before decoding (default "
                   "100000000; decoding takes 3 bytes a pixel, stylizing more)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  stylize
      ->add_option("--threads", stylize_options.threads,
                   "Intra-op threads, 1 to 1024; 0 or left out: OMP_NUM_THREADS when set, else "
                   "all cores")
      ->check(CLI::Range(0, kMaxIntraOpThreads));
  stylize->add_flag("--overwrite", stylize_options.overwrite,
                    "Replace output files that exist (default: keep them, skip their inputs)");
  stylize->add_option("--style", stylize_options.style,
                      "A conditional model's style (`stylefleet info MODEL` lists them)");
  stylize
      ->add_option("--convolution", stylize_options.convolution,
                   "3x3 convolutions: winograd (oneDNN's, where the CPU has it) or direct "
                   "(LibTorch's, as PyTorch computes them), as the job key job.convolution "
                   "(default winograd)")
      ->check(CLI::IsMember({"winograd", "direct"}));
  stylize->add_flag("--preserve-colour,--preserve-color", stylize_options.preserve_colour,
                    "Keep each photo's colours: take only the stylized luminance (YCbCr, BT.601) "
                    "and the photo's chroma; a channel that would leave 0..255 is clamped");
  stylize->add_option("--blend", stylize_options.blend,
                      "A conditional model's blend of styles: NAME=W,NAME=W with weights from 0 "
                      "to 1 that sum to 1 (e.g. candy=0.7,mosaic=0.3)");
  stylize->footer(
      "A folder's tree is mirrored under --output (IN/sub/a.png -> OUT/sub/a.jpg); a file goes to "
      "OUT/<its name>. Images inside the output folder are never read. Skipped images (output "
      "exists, inside the output folder, given twice) are logged and counted; they do not fail "
      "the run.\nExit codes: 0 every image written or skipped; 1 an image or the model could not "
      "be read or written; 2 bad options, or two inputs that would write one output file (a.jpg "
      "and a.png -> a.jpg): then nothing is written.");

  std::string export_model, export_to;
  CLI::App* export_cmd =
      app.add_subcommand("export", "Write a model as a PyTorch state dict (PyTorch example names)");
  export_cmd->add_option("--model", export_model, "Model file or style output folder")->required();
  export_cmd->add_option("--to", export_to, "Output .pt/.pth file")->required();
  bool export_overwrite = false;
  export_cmd->add_flag("--overwrite", export_overwrite,
                       "Replace --to if it exists (without it an existing file is kept: exit 2)");
  bool export_keep_names = false;
  export_cmd->add_flag(
      "--keep-names", export_keep_names,
      "Keep a per-style model's style, job and (from a checkpoint) step as stylefleet.* entries "
      "(python/stylefleet_torch.py --list and `info` show them; the PyTorch "
      "example's strict load_state_dict refuses them). A conditional network "
      "always keeps its style names");

  std::string info_model;
  CLI::App* info = app.add_subcommand(
      "info", "Describe a model file: network kind, its styles, parameters and size");
  info->add_option("model", info_model, "model.pt, a checkpoint or an output folder")->required();

  LossesOptions losses_options;
  std::string losses_job;
  CLI::App* losses =
      app.add_subcommand("losses", "Print the seed's loss terms for one image as JSON");
  losses->add_option("--loss-network", losses_options.loss_network,
                     "Weights file or random:SEED (default with --job: the job's)");
  losses->add_option("--model", losses_options.model,
                     "Transformer to stylize the content with (default: score the content itself)");
  losses->add_option("--content", losses_options.content, "Content image")->required();
  losses->add_option("--style", losses_options.style,
                     "Style image; with --job, the name of one of the job's styles (its image "
                     "and weights; may be left out when the job has one style)");
  losses
      ->add_option("--image-size", losses_options.image_size,
                   "Content crop size (default: the job's data.image_size, or 256); the style "
                   "image is cropped to the job style's training.style_image_size, or to this")
      ->check(CLI::Range(16, 4096));
  losses->add_option("--job", losses_job,
                     "Take layers, loss network, image size and the style's weights from this job");
  bool losses_luminance = false;
  CLI::Option* losses_luminance_flag = losses->add_flag(
      "--style-luminance-only", losses_luminance,
      "Style loss on luminance only, as training.style_luminance_only (default: the --job "
      "style's setting, else off; --style-luminance-only=false turns a job's off)");

  BenchOptions bench_options;
  std::string bench_output;
  CLI::App* bench = app.add_subcommand(
      "bench", "Measure training, stylizing and allreduce speed on this machine; prints JSON");
  bench->add_option("--image-size", bench_options.image_size, "Image side in pixels (default 256)")
      ->check(CLI::Range(16, 4096));
  bench->add_option("--batch", bench_options.batch_size, "Images per step per rank (default 4)")
      ->check(CLI::Range(1, 1024));
  bench
      ->add_option("--threads", bench_options.threads,
                   "Intra-op threads per rank, 1 to 1024; 0 or left out: OMP_NUM_THREADS when "
                   "set, else cores / ranks on the host")
      ->check(CLI::Range(0, kMaxIntraOpThreads));
  bench->add_option("--warmup", bench_options.warmup_steps, "Untimed steps first (default 1)")
      ->check(CLI::Range(0, 1000));
  bench->add_option("--steps", bench_options.steps, "Timed steps per measurement (default 3)")
      ->check(CLI::Range(1, 100000));
  bench
      ->add_option("--precision", bench_options.precisions,
                   "fp32 and/or bf16 (default both; bf16 only with BF16 instructions or a GPU)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  bench
      ->add_option("--styles-at-once", bench_options.styles_at_once,
                   "Also train this many styles at once and compare (default 4; 1 skips)")
      ->check(CLI::Range(1, 64));
  bench->add_option("--content", bench_options.content_dir,
                    "A folder of images: also measure training through the data pipeline");
  bench
      ->add_option("--loader-threads", bench_options.loader_threads,
                   "Decode threads for --content (default 2)")
      ->check(CLI::Range(1, 256));
  bench
      ->add_option("--stylize-sizes", bench_options.stylize_sizes,
                   "Image sides for the stylize measurement (default 256 1024; 0 skips it)")
      ->check(CLI::Range(0, 8192));
  bench->add_option("--loss-network", bench_options.loss_network,
                    "Weights file or random:SEED (default random:7; speed does not depend on it)");
  bench->add_option("--trace", bench_options.trace_path,
                    "Write a Chrome-trace JSON of every timed phase here");
  bench->add_option("--micro-batches", bench_options.micro_batches,
                    "Parts each step's batch runs in, as training.micro_batches (default 1)");
  bench->add_option("--bucket-mb", bench_options.bucket_mb,
                    "Gradient bucket cap in MiB, as distributed.bucket_mb (default 25)");
  bench->add_option("--output", bench_output, "Also write the JSON to this file");
  bench->add_flag("!--no-progress", bench_options.progress, "No progress lines on stderr");
  bench->add_flag("--channels-last", bench_options.channels_last,
                  "Weights and images in channels-last (NHWC) layout");
  bench
      ->add_option("--convolution", bench_options.convolution,
                   "fp32 3x3 convolutions on CPU: winograd (oneDNN's, where the CPU has it) or "
                   "direct (LibTorch's), as the job key job.convolution (default winograd)")
      ->check(CLI::IsMember({"winograd", "direct"}));
  bench->add_flag("--tf32", bench_options.tf32,
                  "GPU: allow TF32 in fp32 convolutions and matrix products (default: true fp32)");
  bench->add_flag("!--no-machine", bench_options.machine_throughput,
                  "Skip measuring the machine (JSON machine_throughput: GFLOP/s of a 3x3 "
                  "convolution and a 2048^3 matrix product, fp32 and bf16; a few seconds)");

  ReportOptions report_options;
  CLI::App* report = app.add_subcommand(
      "report",
      "Write one self-contained HTML page of a job's runs: loss curves, previews, throughput "
      "(works while the job trains)");
  report
      ->add_option("job_dir", report_options.job_dir,
                   "A job file, its output folder (job.output_dir), or one style's folder")
      ->required();
  report->add_option("--output", report_options.output,
                     "HTML file to write (default: JOB_DIR/report.html)");
  report
      ->add_option("--previews", report_options.max_previews_per_run,
                   "Previews shown per run, evenly spaced, always with the latest (default 12)")
      ->check(CLI::Range(0, 10000));

  CLI::App* reference =
      app.add_subcommand("config-reference", "Print the Markdown reference of every job key");
  bool list_rank_invariant = false;
  reference->add_flag("--rank-invariant", list_rank_invariant,
                      "Print only the keys every rank of a launch must agree on, one per line");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitConfigError;
  }
  if (verbose) SetLogLevel(LogLevel::kDebug);

  if (check->parsed()) {
    JobConfig job = check_args.Load();
    if (check_ranks_per_host > 0 && check_hostfile.empty()) {
      throw ConfigError({"--ranks-per-host needs --hostfile"});
    }
    std::vector<std::string> rank_hosts;
    if (check->get_option("--hostfile")->count() > 0 && check_hostfile.empty()) {
      throw ConfigError({"--hostfile: empty path"});
    }
    if (!check_hostfile.empty()) {
      rank_hosts = RankHostsFromHostfile(
          check_hostfile, check_world_option->count() > 0 ? check_world : 0, check_ranks_per_host);
      check_world = static_cast<int>(rank_hosts.size());
    }
    std::cout << DescribeJob(job);
    // What `train` would refuse fails here too (exit 2), after the job is shown.
    PreflightOptions preflight;
    preflight.world = check_world;
    preflight.processes_on_host = CudaDeviceCount() > 0 ? 0 : 1;
    Preflight checked(job, preflight);
    if (!checked.problems.empty()) throw ConfigError(checked.problems);
    // The schedule below shows the batch a resume on this many ranks takes.
    job = std::move(checked.job);
    for (const std::string& note : checked.notes) std::cout << "resume: " << note << "\n";
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
    if (job.network == "conditional") {
      std::cout << "network: conditional: " << DescribeNetworkStyles(job)
                << " train one network in " << job.conditional_run.output_dir << ", on all "
                << check_world << " rank(s)\n";
      if (!rank_hosts.empty()) std::cout << DescribeRankHosts(rank_hosts);
    } else {
      const StyleSchedule plan = PlanStyles(static_cast<int>(job.styles.size()), check_world,
                                            job.distributed.ranks_per_style);
      std::cout << DescribeSchedule(job, plan, rank_hosts);
    }
    const MemoryBudget budget = EstimateMemoryBudget(job, 1);
    std::printf("memory: about %.1f GiB per process on CPU (%s); available here: %.1f GiB\n",
                budget.needed_bytes / 1073741824.0, budget.largest_pass.c_str(),
                budget.available_bytes / 1073741824.0);
    return kExitOk;
  }
  if (train->parsed()) return RunTrain(train_args, train_options);
  if (stylize->parsed()) {
    const StylizeResult result = StylizeImages(stylize_options);
    WriteToStderr(DescribeStylizeResult(result) + "\n");
    return result.failed.empty() ? kExitOk : kExitRuntimeError;
  }
  if (export_cmd->parsed()) {
    ExportModel(export_model, export_to, export_overwrite, export_keep_names);
    return kExitOk;
  }
  if (info->parsed()) {
    std::cout << DescribeModel(info_model);
    return kExitOk;
  }
  if (losses->parsed()) {
    if (losses_luminance_flag->count() > 0) losses_options.style_luminance_only = losses_luminance;
    JobConfig job;
    if (!losses_job.empty()) {
      job = LoadJob(losses_job);
      losses_options.job = &job;
    }
    std::cout << ComputeLossesJson(losses_options) << "\n";
    return kExitOk;
  }
  if (bench->parsed()) return RunBench(bench_options, bench_output);
  if (report->parsed()) {
    // A job file stands for its output folder.
    std::error_code ec;
    if (std::filesystem::is_regular_file(report_options.job_dir, ec)) {
      const JobConfig job = LoadJob(report_options.job_dir);
      report_options.job_dir = job.output_dir;
      report_options.job_name = job.name;
      // The job's sweeps give each contact sheet its order and its runs not started.
      for (const StyleSpec& style : job.styles) {
        // A style with its own output_dir elsewhere is read from there.
        const std::filesystem::path inside =
            std::filesystem::path(style.output_dir).lexically_relative(job.output_dir);
        if (inside.empty() || *inside.begin() == "..") {
          report_options.outside_runs.emplace_back(style.name, style.output_dir);
        }
        if (style.sweep.empty()) continue;
        auto& keys = report_options.sweep_values[style.sweep];
        for (size_t k = 0; k < style.swept.size(); ++k) {
          if (keys.size() <= k) keys.emplace_back(style.swept[k].first, std::vector<std::string>{});
          auto& values = keys[k].second;
          if (std::find(values.begin(), values.end(), style.swept[k].second) == values.end())
            values.push_back(style.swept[k].second);
        }
      }
    }
    const std::string written = WriteJobReport(report_options);
    std::cout << "wrote " << written << "\n";
    return kExitOk;
  }
  if (reference->parsed()) {
    if (!list_rank_invariant) {
      std::cout << ConfigReference();
      return kExitOk;
    }
    for (const KeyInfo& key : ListKeys()) {
      if (key.agreement != Agreement::kPerRank) std::cout << key.key << "\n";
    }
    return kExitOk;
  }
  return kExitConfigError;
}

}  // namespace
}  // namespace stylefleet

int main(int argc, char** argv) {
  using namespace stylefleet;
  // Training computes Grams through BLAS; the exec costs about half a second
  // of start-up, which only long commands win back.
  std::string command;  // the subcommand: the first word that is not an option (-v train ...)
  for (int i = 1; i < argc && command.empty(); ++i) {
    if (argv[i][0] != '-') command = argv[i];
  }
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
  try {
    return Run(argc, argv);
  } catch (const ConfigError& e) {
    ReportConfigError(e);
    return kExitConfigError;
  } catch (const std::exception& e) {
    WriteToStderr(std::string("error: ") + e.what() + "\n");
    return kExitRuntimeError;
  }
}
