#include "train/launch.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "comm/nccl_communicator.h"
#include "comm/world.h"
#include "common/log.h"
#include "common/writable_file.h"
#include "metrics/prometheus_metrics.h"
#include "runtime/launch_errors.h"
#include "train/preflight.h"

namespace stylefleet {
namespace {

// Writes <output_dir>/prometheus_targets.json (file-based service discovery)
// listing `endpoints`, atomically; returns its path.
std::string WriteTargets(const JobConfig& job, const std::vector<std::string>& endpoints) {
  const nlohmann::json sd =
      nlohmann::json::array({{{"targets", endpoints}, {"labels", {{"stylefleet_job", job.name}}}}});
  const std::string path = job.output_dir + "/prometheus_targets.json";
  ReplaceFileDurably(path, sd.dump(2) + "\n");
  return path;
}

// The Prometheus exporter of this rank (none when monitoring is off), and (on
// rank 0) a file-based service discovery file listing every rank's endpoint,
// for monitoring/prometheus.yml. Collective over the world.
std::unique_ptr<MetricsExporter> StartMetrics(const JobConfig& job, World& world) {
  const MonitoringOptions& m = job.monitoring;
  const ProcessInfo& me = world.info();
  std::unique_ptr<MetricsExporter> metrics;
  if (m.listen != "off" || !m.pushgateway.empty()) {
    PrometheusOptions options;
    options.listen = m.listen == "off" ? "" : m.listen;
    options.listen_strict = m.listen_strict;
    options.linger_seconds = m.linger_seconds;
    options.pushgateway = m.pushgateway;
    options.push_interval_seconds = m.push_interval_seconds;
    metrics =
        MakePrometheusMetrics(options, MetricsIdentity{job.name, me.rank, me.local_rank, me.host});
  }
  const std::string endpoint = metrics ? metrics->endpoint() : "";
  const auto endpoints = world.all().AllGather(endpoint, "metrics endpoint allgather");
  if (me.rank == 0 && !endpoint.empty()) {
    const std::string path = WriteTargets(job, endpoints);
    SF_LOG(kInfo) << "Prometheus targets of all " << endpoints.size() << " rank(s) in " << path;
  }
  return metrics;
}

// After a normal end every rank has exported stylefleet_finished 1 and been
// scraped (or nobody scrapes): rank 0 then empties the targets list, so that
// Prometheus stops scraping ranks that ended on purpose and no alert takes
// them for dead. Collective over the world.
void WithdrawTargets(const JobConfig& job, World& world, const MetricsExporter* metrics) {
  world.all().Barrier();  // every rank has lingered
  if (world.info().rank != 0 || metrics == nullptr || metrics->endpoint().empty()) return;
  const std::string path = WriteTargets(job, {});
  SF_LOG(kInfo) << "job finished: the targets in " << path << " are withdrawn";
}

// The exporter's web server takes up to about half a second to stop (its
// threads poll with a timeout), and the process ends right after training:
// the metrics are kept, reachable, until exit instead of being stopped.
void KeepUntilExit(std::unique_ptr<MetricsExporter> metrics) {
  static auto* const kept = new std::vector<std::unique_ptr<MetricsExporter>>();
  kept->push_back(std::move(metrics));
}

// This rank's problems with the job: loading, the preflight (what would stop
// training later: an unknown --style, no photos, a folder of another job) and
// --trace. Without problems, `plan` is what the run works from (a resume on
// another number of ranks keeps its images per step).
std::vector<std::string> LoadAndPreflight(const std::string& job_file, const LoadOptions& load,
                                          const TrainRunOptions& options, const World& world,
                                          std::unique_ptr<TrainPlan>* plan) {
  const ProcessInfo& me = world.info();
  try {
    PreflightOptions preflight;
    preflight.only_styles = options.only_styles;
    preflight.world = me.size;
    preflight.allow_changed_settings = options.allow_changed_settings;
    preflight.log_changes = me.rank == 0;
    preflight.processes_on_host = CudaDeviceCount() > 0 ? 0 : me.local_size;
    TestHooks hooks(options.inject_faults, options.perturb_replica, options.reseed_initial_model);
    Preflight checked(LoadJob(job_file, load), preflight);
    if (checked.plan) checked.plan->hooks = std::move(hooks);
    if (me.rank == 0) {
      for (const std::string& note : checked.notes) SF_LOG(kInfo) << note;
    }
    std::vector<std::string> problems = std::move(checked.problems);
    // Each rank writes PATH or a file beside it (step/step_clock.h).
    try {
      if (!options.trace_path.empty()) CheckWritableFile(options.trace_path, "--trace");
    } catch (const ConfigError& e) {
      problems.insert(problems.end(), e.problems().begin(), e.problems().end());
    }
    *plan = std::move(checked.plan);
    return problems;
  } catch (const ConfigError& e) {
    return e.problems();
  }
}

// Every rank's problems, each line prefixed with its rank, when this rank has
// none of its own: a rank that alone failed would otherwise leave the others
// waiting. Collective over the world.
std::vector<std::string> AgreeOnValidity(std::vector<std::string> problems, World& world) {
  if (world.info().size == 1) return problems;
  std::string joined;
  for (const auto& p : problems) joined += p + "\n";
  const auto all = world.all().AllGather(joined, "job validity allgather");
  for (size_t r = 0; r < all.size() && problems.empty(); ++r) {
    if (all[r].empty()) continue;
    std::istringstream lines(all[r]);
    for (std::string line; std::getline(lines, line);) {
      problems.push_back("rank " + std::to_string(r) + ": " + line);
    }
  }
  return problems;
}

// Training proper, once every rank holds a valid plan.
int TrainValidJob(const TrainPlan& plan, const TrainRunOptions& options, World& world) {
  const JobConfig& job = plan.job;
  const ProcessInfo& me = world.info();
  // Held until training ends (or the process dies): one run per style folder.
  const std::vector<FileLock> locks = LockStyleFolders(plan, world);
  std::unique_ptr<MetricsExporter> metrics = StartMetrics(job, world);
  TrainRunOptions with_metrics = options;
  with_metrics.metrics = metrics.get();  // none: TrainJob reports nowhere
  const TrainOutcome outcome = TrainJob(plan, with_metrics, world);
  if (outcome.stopped) {
    // Preempted: checkpoints are written; leave now, without lingering.
    if (me.rank == 0) SF_LOG(kWarning) << "stopped by signal; rerun the same command to resume";
    return kExitOk;
  }
  if (metrics) metrics->Finish();
  WithdrawTargets(job, world, metrics.get());
  KeepUntilExit(std::move(metrics));
  if (!outcome.failed_styles.empty()) {
    std::string names;
    for (const auto& n : outcome.failed_styles) names += (names.empty() ? "" : ", ") + n;
    SF_LOG(kError) << outcome.failed_styles.size()
                   << " style(s) stopped by NaN/Inf faults: " << names << " (the others trained)";
    return kExitRuntimeError;
  }
  return kExitOk;
}

}  // namespace

int LaunchTrain(const std::string& job_file, const LoadOptions& load,
                const TrainRunOptions& options) {
  const std::unique_ptr<World> world = LaunchedByMpi() ? MakeMpiWorld() : MakeSoloWorld();
  PrefixLogWithRank(*world);
  std::unique_ptr<TrainPlan> plan;
  const std::vector<std::string> problems =
      AgreeOnValidity(LoadAndPreflight(job_file, load, options, *world, &plan), *world);
  if (!problems.empty()) {
    if (world->info().rank == 0) WriteToStderr(DescribeConfigError(ConfigError(problems)));
    return kExitConfigError;
  }
  // Each rank keeps the decoded images of its own group's styles only.
  plan->KeepStyleImagesOfRank(world->info().rank);
  const DistributedOptions& distributed = plan->job.distributed;
  world->SetCollectiveTimeouts(distributed.stall_warn_seconds, distributed.timeout_seconds);
  return RunOnEveryRank(*world, [&] { return TrainValidJob(*plan, options, *world); });
}

}  // namespace stylefleet
