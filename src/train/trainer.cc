// The training loop: the styles of a job laid onto groups of ranks, each
// group training its styles pass by pass, data-parallel.
#include <unistd.h>

#include <chrono>
#include <sstream>

#include "comm/world.h"
#include "common/error.h"
#include "common/log.h"
#include "common/stop_signal.h"
#include "data/batch_loader.h"
#include "data/dataset.h"
#include "data/image.h"
#include "model/winograd_conv.h"
#include "runtime/rank_runtime.h"
#include "step/training_step.h"
#include "train/memory_budget.h"
#include "train/preflight.h"
#include "train/rank_agreement.h"
#include "train/style_run.h"
#include "train/style_schedule.h"
#include "train/train.h"

namespace stylefleet {
using Clock = std::chrono::steady_clock;

namespace {

// What the passes of one rank share.
struct PassContext {
  const TrainPlan* plan = nullptr;  ///< the job and its content files
  bool progress = false;
  RankRuntime* runtime = nullptr;
  const Vgg16* vgg = nullptr;
  StepClock* clock = nullptr;
  TrainingMetrics* metrics = nullptr;
};

// Styles that stand at the same position share the loader; its step count
// follows from the first.
BatchLoader MakeLoader(const PassContext& c, const TrainingOptions& t, const RunPosition& at) {
  const JobConfig& job = c.plan->job;
  LoaderOptions o;
  o.image_size = job.data.image_size;
  o.batch_size = t.batch_size;
  o.threads = job.data.loader_threads;
  o.prefetch_batches = job.data.prefetch_batches;
  o.max_image_pixels = job.data.max_image_pixels;
  o.seed = job.seed;
  o.rank = c.runtime->control().rank();
  o.world = c.runtime->control().size();
  return BatchLoader(c.plan->content_files, o, LoaderPosition{at.epoch, at.batch});
}

// The position after training on `batch`.
RunPosition Advance(const RunPosition& before, const Batch& batch, int64_t batches_per_epoch) {
  RunPosition p{before.step + 1, batch.epoch, batch.batch_in_epoch + 1};
  if (p.batch == batches_per_epoch) {
    p.batch = 0;
    ++p.epoch;
  }
  return p;
}

// Hands a finished step to each run; a run stopped by numerical faults leaves
// (its name added to `failed`), the others are returned.
std::vector<StyleRun*> AfterStep(const std::vector<StyleRun*>& runs, const StepOutcome& outcome,
                                 const RunPosition& position, StepTiming timing, bool root,
                                 std::vector<std::string>& failed) {
  std::vector<StyleRun*> going_on;
  const bool tty = timing.tty;
  for (size_t k = 0; k < runs.size(); ++k) {
    timing.tty = tty && k == 0;  // one progress line: the first style's
    try {
      runs[k]->AfterStep(position, outcome.styles[k], timing);
      going_on.push_back(runs[k]);
    } catch (const NumericalFault& e) {
      // The group decided together (group-averaged values), so all its ranks are here.
      if (root) SF_LOG(kError) << e.what();
      failed.push_back(runs[k]->style().name);
    }
  }
  return going_on;
}

// Trains prepared runs that stand at the same position on the same batches:
// one content pass and one loss-network pass over all their generated images
// per step. Returns true when a stop signal ended it (each run wrote a
// checkpoint).
bool TrainPass(std::vector<StyleRun*> runs, const PassContext& c,
               std::vector<std::string>& failed) {
  const TrainingOptions& t = runs.front()->style().training;
  RunPosition position = runs.front()->position();
  const int64_t total_steps = runs.front()->total_steps();
  BatchLoader loader = MakeLoader(c, t, position);
  for (StyleRun* run : runs) run->Start(static_cast<int>(runs.size()));
  Communicator& group = c.runtime->control();
  TrainingStep step(*c.vgg, group, c.runtime->tensors(),
                    StepOptions{t.micro_batches, runs.front()->loss_use()}, c.clock);
  const bool tty = group.rank() == 0 && c.progress && isatty(STDOUT_FILENO);
  int64_t skipped_reported = 0, stalls_reported = CollectiveStallWarnings(), steps = 0;
  double wait_before = 0, average_seconds = 0;
  while (position.step < total_steps && !runs.empty()) {
    const auto step_start = Clock::now();
    c.clock->Begin(Phase::kData);
    Batch batch = loader.Next();
    torch::Tensor content = torch::from_blob(
        batch.pixels.data(), {batch.count, 3, batch.size, batch.size}, torch::kFloat32);
    content = content.to(c.runtime->device());
    std::vector<StepStyle> styles;
    for (StyleRun* run : runs) styles.push_back(run->ForStep(position.step + 1));
    const StepOutcome outcome = step.Run(content, styles, StopRequested());
    position = Advance(position, batch, loader.batches_per_epoch());
    StepTiming timing;
    timing.seconds = std::chrono::duration<double>(Clock::now() - step_start).count();
    average_seconds = ++steps == 1 ? timing.seconds : 0.9 * average_seconds + 0.1 * timing.seconds;
    timing.average_seconds = average_seconds;
    timing.data_wait = loader.wait_seconds() - wait_before;
    wait_before = loader.wait_seconds();
    timing.allreduce_seconds = outcome.gradient_allreduce_seconds;
    timing.images = batch.count * group.size();
    timing.epoch = double(position.epoch) + double(position.batch) / loader.batches_per_epoch();
    timing.skipped_files = loader.skipped_files();
    timing.stopping = outcome.stop;
    timing.tty = tty;
    const int64_t stalls_now = CollectiveStallWarnings();
    c.metrics->CollectiveStalls(stalls_now - stalls_reported);
    stalls_reported = stalls_now;
    c.metrics->ImagesSkipped(timing.skipped_files - skipped_reported);
    skipped_reported = timing.skipped_files;
    runs = AfterStep(runs, outcome, position, timing, group.rank() == 0, failed);
    if (outcome.stop) {
      for (StyleRun* run : runs) run->StopHere();
      return true;
    }
  }
  for (StyleRun* run : runs) run->Finish();
  return false;
}

// Collective (the host names are gathered); rank 0 logs.
void AnnounceJob(const JobConfig& job, const std::vector<const StyleSpec*>& styles,
                 const StyleSchedule& plan, const RankRuntime& runtime, World& world,
                 size_t files) {
  const ProcessInfo& me = runtime.process();
  const std::vector<std::string> rank_hosts =
      me.size > 1 ? world.all().AllGather(me.host, "host names") : std::vector<std::string>{};
  if (me.rank != 0) return;
  SF_LOG(kInfo) << "job " << job.name << ": "
                << (OneNetworkForAllStyles(job) ? std::to_string(job.styles.size()) +
                                                      " style(s) in one " + job.network + " network"
                                                : std::to_string(styles.size()) + " style(s)")
                << ", " << files << " content images, " << me.size << " rank(s), "
                << runtime.threads() << " thread(s) per rank"
                << (runtime.blas_threads().empty() ? "" : " (" + runtime.blas_threads() + ")")
                << ", " << (runtime.device().is_cuda() ? "CUDA" : "CPU");
  if (me.size == 1) return;
  JobConfig view = job;
  view.styles.clear();
  for (const StyleSpec* s : styles) view.styles.push_back(*s);
  std::istringstream lines(DescribeSchedule(view, plan, rank_hosts));
  for (std::string line; std::getline(lines, line);) SF_LOG(kInfo) << line;
}

// Prepares the runs of one pass and trains them; runs resumed at different
// positions cannot share batches and train one position after another.
bool TrainRuns(std::vector<std::unique_ptr<StyleRun>> prepared, const PassContext& c,
               std::vector<std::string>& failed) {
  while (!prepared.empty()) {
    const RunPosition first = prepared.front()->position();
    std::vector<std::unique_ptr<StyleRun>> now, later;
    for (auto& run : prepared) {
      const RunPosition& p = run->position();
      const bool same = p.step == first.step && p.epoch == first.epoch && p.batch == first.batch;
      (same ? now : later).push_back(std::move(run));
    }
    if (!later.empty() && c.runtime->control().rank() == 0) {
      SF_LOG(kInfo) << "styles resumed at different steps train apart";
    }
    std::vector<StyleRun*> together;
    for (auto& run : now) together.push_back(run.get());
    if (TrainPass(together, c, failed)) return true;
    prepared = std::move(later);
  }
  return false;
}

// The job's loss network on this rank's device; rank 0 says which it is.
Vgg16 LoadLossNetwork(const JobConfig& job, const RankRuntime& runtime) {
  Vgg16 vgg = Vgg16::Load(job.loss_network.weights);
  vgg.To(runtime.device());
  if (runtime.process().rank != 0) return vgg;
  if (vgg.is_random()) {
    SF_LOG(kWarning) << "loss network is random (" << job.loss_network.weights
                     << "): the machinery trains, but results are not artistic without real "
                        "VGG-16 weights (launch/convert_vgg16.py)";
  }
  SF_LOG(kInfo) << "loss network " << job.loss_network.weights << ", convention "
                << vgg.DescribeConvention();
  const std::string warning = vgg.SeedBalanceWarning();
  if (!warning.empty()) SF_LOG(kWarning) << warning;
  return vgg;
}

// `train --trace PATH`: this rank's step phases, one file per rank under mpirun.
void WriteStepTrace(const StepClock& clock, const std::string& trace_path, const ProcessInfo& me) {
  const std::string path = RankTracePath(trace_path, me.rank, me.size);
  clock.WriteTrace(path, me.rank, "rank " + std::to_string(me.rank) + " (" + me.host + ")");
  if (me.rank == 0) SF_LOG(kInfo) << "step trace written to " << path;
}

}  // namespace

TrainOutcome TrainJob(const JobConfig& job, const TrainRunOptions& options) {
  const auto world = MakeSoloWorld();
  return TrainJob(job, options, *world);
}

TrainOutcome TrainJob(const JobConfig& job, const TrainRunOptions& options, World& world) {
  TestHooks hooks(options.inject_faults, options.perturb_replica, options.reseed_initial_model);
  const std::unique_ptr<TrainPlan> plan = PlanTraining(job, options.only_styles, world);
  plan->hooks = std::move(hooks);
  return TrainJob(*plan, options, world);
}

TrainOutcome TrainJob(const TrainPlan& plan, const TrainRunOptions& options, World& world) {
  const JobConfig& job = plan.job;
  const ProcessInfo& me = world.info();
  SF_CHECK(plan.schedule.world == me.size, "the plan is for another number of ranks");
  const std::vector<const StyleSpec*>& styles = plan.runs;
  // CPU memory (a GPU's is checked by its allocator): one rank per host says it, for all.
  const bool says_memory = me.local_rank == 0 || me.size == 1;
  if (says_memory && !torch::cuda::is_available()) CheckMemoryBudget(job, me.local_size);
  const StyleSchedule& schedule = plan.schedule;
  const int group_index = schedule.GroupOf(me.rank);
  RuntimeOptions runtime_options{options.threads, job.distributed.backend,
                                 job.distributed.timeout_seconds, group_index,
                                 schedule.RankInGroup(me.rank)};
  const std::unique_ptr<RankRuntime> runtime = StartRankRuntime(world, runtime_options);
  // The job's convolutions on this thread, for this run.
  const ScopedWinograd convolutions(job.convolution == "winograd");
  if (me.rank == 0 && runtime->device().is_cpu()) {
    SF_LOG(kInfo) << DescribeConvolutions(job.convolution);
  }
  const Vgg16 vgg = LoadLossNetwork(job, *runtime);
  AnnounceJob(job, styles, schedule, *runtime, world, plan.content_files.size());

  const auto null_metrics = MakeNullMetrics();
  TrainingMetrics& metrics = options.metrics != nullptr ? *options.metrics : *null_metrics;
  StepClock clock(runtime->device(), !options.trace_path.empty());
  // Under mpirun the ranks' output is interleaved (and usually a file): no progress line.
  PassContext pass{&plan, options.progress && me.size == 1, runtime.get(), &vgg, &clock, &metrics};
  StyleRunContext context{&plan, &vgg, &options, runtime.get(), group_index, &metrics};
  TrainOutcome outcome;
  const auto& mine = schedule.styles_of_group[static_cast<size_t>(group_index)];
  size_t number = 0;
  for (const auto& indices : GroupPasses(styles, mine, job.styles_at_once)) {
    if (outcome.stopped) break;
    std::vector<std::unique_ptr<StyleRun>> prepared;
    for (int index : indices) {
      const StyleSpec* style = styles[static_cast<size_t>(index)];
      if (runtime->control().rank() == 0) {
        SF_LOG(kInfo) << "style " << ++number << "/" << mine.size()
                      << (me.size > 1 ? " of group " + std::to_string(group_index) : std::string())
                      << ": " << style->name;
      }
      auto run = std::make_unique<StyleRun>(context, *style);
      if (run->Prepare()) prepared.push_back(std::move(run));
    }
    outcome.stopped = TrainRuns(std::move(prepared), pass, outcome.failed_styles);
  }
  if (!options.trace_path.empty()) WriteStepTrace(clock, options.trace_path, me);
  // Groups finish at different times; leave together.
  world.all().Barrier("end of job barrier");
  return outcome;
}

}  // namespace stylefleet
