#include "train/preflight.h"

#include <fnmatch.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "checkpoint/checkpoint_files.h"
#include "checkpoint/model_file.h"
#include "common/error.h"
#include "common/log.h"
#include "config/job_settings.h"
#include "data/dataset.h"
#include "data/image.h"
#include "model/tensor_file.h"
#include "train/memory_budget.h"
#include "train/rank_agreement.h"
#include "train/run_settings.h"
#include "train/style_schedule.h"

namespace stylefleet {
namespace fs = std::filesystem;

namespace {

// `--style` names a style, a sweep run, a swept style (all its runs), or a
// shell pattern over those names ('*' also matches '/').
bool Selects(const std::string& pattern, const StyleSpec& style) {
  return style.name == pattern || (!style.sweep.empty() && style.sweep == pattern) ||
         ::fnmatch(pattern.c_str(), style.name.c_str(), 0) == 0;
}

}  // namespace

std::vector<const StyleSpec*> SelectStyles(const JobConfig& job,
                                           const std::vector<std::string>& names) {
  std::vector<std::string> problems;
  for (const auto& name : names) {
    if (std::none_of(job.styles.begin(), job.styles.end(),
                     [&](const StyleSpec& s) { return Selects(name, s); })) {
      std::string known;
      size_t listed = 0;
      for (const auto& s : job.styles) {
        if (++listed > 20) {
          known += ", ... (" + std::to_string(job.styles.size()) + " in all; `check` lists them)";
          break;
        }
        known += (known.empty() ? "" : ", ") + s.name;
      }
      std::vector<std::string> swept_styles;
      std::string sweeps;
      for (const auto& s : job.styles) {
        if (s.sweep.empty() ||
            std::find(swept_styles.begin(), swept_styles.end(), s.sweep) != swept_styles.end())
          continue;
        swept_styles.push_back(s.sweep);
        sweeps += (sweeps.empty() ? "" : ", ") + s.sweep;
      }
      problems.push_back("--style " + name +
                         ": no style or sweep run of the job has this name or matches it; its "
                         "styles: " +
                         known +
                         (sweeps.empty() ? "" : "; its swept styles (all their runs): " + sweeps));
    }
  }
  if (!problems.empty()) throw ConfigError(problems);
  std::vector<const StyleSpec*> styles;
  for (const auto& style : job.styles) {
    if (names.empty() || std::any_of(names.begin(), names.end(),
                                     [&](const std::string& n) { return Selects(n, style); })) {
      styles.push_back(&style);
    }
  }
  return styles;
}

std::vector<const StyleSpec*> SelectRuns(const JobConfig& job,
                                         const std::vector<std::string>& names) {
  if (!OneNetworkForAllStyles(job)) return SelectStyles(job, names);
  if (!names.empty()) {
    throw ConfigError({"--style: job.network is " + job.network + ": its " +
                       std::to_string(job.styles.size()) +
                       " styles train together in one network, so none can be trained alone; "
                       "leave --style out"});
  }
  if (job.styles.empty()) return {};
  return {&job.conditional_run};
}

int RanksPerRun(const JobConfig& job) {
  return OneNetworkForAllStyles(job) ? 0 : job.distributed.ranks_per_style;
}

namespace {

// The folders a run writes: its own, and a conditional network's styles'.
std::vector<std::pair<std::string, std::string>> RunFolders(const JobConfig& job,
                                                            const StyleSpec& run) {
  std::vector<std::pair<std::string, std::string>> folders = {{run.output_dir, run.name}};
  if (&run == &job.conditional_run) {
    for (const StyleSpec& s : job.styles) folders.emplace_back(s.output_dir, s.name);
  }
  return folders;
}

// A resumed style whose settings changed: changes that are safe are logged;
// the others are one problem (or, when allowed, a warning).
std::vector<std::string> SettingsProblems(const JobConfig& job, const StyleSpec& style,
                                          int group_ranks, const std::string& content_list,
                                          const PreflightOptions& options) {
  const std::vector<std::string> checkpoints = ListCheckpoints(style.output_dir);
  if (checkpoints.empty()) return {};
  bool recorded = false;
  const std::vector<SettingChange> changes = CompareRunSettings(
      style.output_dir, RunSettings(job, style, group_ranks, content_list), &recorded);
  std::string safe, unsafe;
  for (const SettingChange& c : changes) {
    (c.on_resume == OnResume::kMustMatch ? unsafe : safe) +=
        "\n  " + c.key + ": " + c.recorded + " -> " + c.now;
  }
  const std::string who = "style '" + style.name + "': ";
  if (!safe.empty() && options.log_changes) {
    SF_LOG(kInfo) << who
                  << "resuming with changed settings that are safe to continue with:" << safe;
  }
  if (unsafe.empty()) return {};
  const std::string what = who + "settings changed since its checkpoints (newest " +
                           checkpoints.front() +
                           ") were trained; they change what the style "
                           "learns, so a resume would mix two set-ups:" +
                           unsafe;
  if (options.allow_changed_settings) {
    if (options.log_changes) {
      SF_LOG(kWarning) << what << "\nresuming anyway (--allow-changed-settings)";
    }
    return {};
  }
  return {what +
          "\nrestore them, train into another job.output_dir, or pass "
          "--allow-changed-settings to resume anyway"};
}

}  // namespace

std::vector<std::string> BaseModelStyleProblems(const JobConfig& job, const std::string& base_file,
                                                const std::vector<std::string>& base_styles,
                                                bool base_is_arbitrary) {
  const bool arbitrary_job = job.network == "arbitrary";
  if (base_styles.empty()) {
    return {"job.base_model: " + base_file + " is " +
            (base_is_arbitrary ? "an arbitrary-style" : "a per-style") + " network; " +
            (arbitrary_job ? "an arbitrary-style network starts from a conditional network's "
                             "convolutions"
                           : "styles can be added only to a conditional network "
                             "(job.network: conditional)")};
  }
  if (arbitrary_job) {
    if (job.distill_steps == 0) return {};
    for (const StyleSpec& style : job.styles) {
      if (std::find(base_styles.begin(), base_styles.end(), style.name) != base_styles.end()) {
        return {};
      }
    }
    std::string job_names, base_names;
    for (const StyleSpec& style : job.styles)
      job_names += (job_names.empty() ? "" : ", ") + style.name;
    for (const std::string& name : base_styles)
      base_names += (base_names.empty() ? "" : ", ") + name;
    return {"job.distill_steps: none of the job's styles (" + job_names + ") is a style of " +
            "job.base_model " + base_file + " (" + base_names +
            "); the predictor is fitted to the rows of the styles both have (same names)"};
  }
  std::vector<std::string> problems;
  for (const StyleSpec& style : job.styles) {
    if (std::find(base_styles.begin(), base_styles.end(), style.name) != base_styles.end()) {
      problems.push_back("style '" + style.name + "': job.base_model " + base_file +
                         " already holds a style of this name; a style is added once (rename "
                         "it, or leave it out to keep the trained one)");
    }
  }
  return problems;
}

namespace {

// What the run that builds the network would refuse about job.base_model,
// found before training (and by `check`): a file that does not load, or
// styles that cannot be added to it.
std::vector<std::string> BaseModelProblems(const JobConfig& job) {
  if (!OneNetworkForAllStyles(job) || job.base_model.empty()) return {};
  try {
    const LoadedModel base = LoadModel(job.base_model);
    return BaseModelStyleProblems(job, base.file, base.styles, base.net->predicts_norms());
  } catch (const std::exception& e) {
    return {"job.base_model: " + std::string(e.what())};
  }
}

}  // namespace

std::string NetworkStylesProblem(const std::string& checkpoint,
                                 const std::vector<std::string>& held,
                                 const std::vector<std::string>& rows) {
  if (held == rows) return {};
  std::string had, now;
  for (const auto& n : held) had += (had.empty() ? "" : ", ") + n;
  for (const auto& n : rows) now += (now.empty() ? "" : ", ") + n;
  return checkpoint + ": this checkpoint's network holds the styles [" + had + "], the job's [" +
         now +
         "]; a trained network's styles cannot change (add styles with job.base_model, or train "
         "into another job.output_dir)";
}

namespace {

// What the resume of a conditional network would refuse: its newest readable
// checkpoint holds other styles than the job lists (added, removed, reordered).
std::vector<std::string> ConditionalCheckpointProblems(const JobConfig& job) {
  if (!OneNetworkForAllStyles(job) || job.styles.empty()) return {};
  const std::vector<std::string> checkpoints = ListCheckpoints(job.conditional_run.output_dir);
  if (checkpoints.empty()) return {};
  std::vector<std::string> rows;
  if (!job.base_model.empty() && job.network == "conditional") {  // its rows come first
    try {
      rows = LoadModel(job.base_model).styles;
    } catch (const std::exception&) {
      return {};  // BaseModelProblems reports it
    }
  }
  for (const StyleSpec& style : job.styles) rows.push_back(style.name);
  for (const std::string& path : checkpoints) {
    try {
      const std::string problem =
          NetworkStylesProblem(path, ModelStyleNames(LoadTensorDict(path)), rows);
      if (problem.empty()) return {};
      return {problem};
    } catch (const DataError&) {
      // Unreadable: the resume skips it too, and says so.
    }
  }
  return {};
}

// The spec in `job` that `run` (a pointer SelectRuns gave into `job`) is, as
// a spec that may be changed.
StyleSpec& SpecOf(JobConfig& job, const StyleSpec* run) {
  if (run == &job.conditional_run) return job.conditional_run;
  return job.styles[static_cast<size_t>(run - job.styles.data())];
}

// Elastic resume (see Preflight in preflight.h): each run of `plan` that
// resumes on another number of ranks per style takes the batch that keeps its
// images per step.
void KeepResumedImagesPerStep(TrainPlan* plan, const PreflightOptions& options,
                              std::vector<std::string>* notes, std::vector<std::string>* problems) {
  for (const StyleSpec* run : plan->runs) {
    if (ListCheckpoints(run->output_dir).empty()) continue;  // it starts afresh
    const ElasticBatch batch = KeepImagesPerStep(*run, plan->schedule.ranks_per_group);
    if (!batch.problem.empty()) {
      if (!options.allow_changed_settings) problems->push_back(batch.problem);
      continue;
    }
    if (!batch.changed) continue;
    StyleSpec& spec = SpecOf(plan->job, run);
    if (spec.training.configured_batch_size == 0) {
      spec.training.configured_batch_size = spec.training.batch_size;
    }
    spec.training.batch_size = batch.batch_size;
    spec.training.micro_batches = batch.micro_batches;
    notes->push_back(batch.note);
  }
}

std::vector<std::string> ProblemsOf(TrainPlan* plan, const PreflightOptions& options);

}  // namespace

Preflight::Preflight(const JobConfig& configured, const PreflightOptions& options) {
  auto planned = std::make_unique<TrainPlan>();
  planned->job = configured;
  planned->only_styles = options.only_styles;
  try {
    planned->runs = SelectRuns(planned->job, options.only_styles);
    planned->schedule = PlanStyles(static_cast<int>(planned->runs.size()), options.world,
                                   RanksPerRun(planned->job));
  } catch (const ConfigError& e) {
    job = configured;
    problems = e.problems();
    return;
  }
  KeepResumedImagesPerStep(planned.get(), options, &notes, &problems);
  if (problems.empty()) problems = ProblemsOf(planned.get(), options);
  job = planned->job;
  if (problems.empty()) plan = std::move(planned);
}

std::vector<std::string> PreflightProblems(const JobConfig& job, const PreflightOptions& options) {
  return Preflight(job, options).problems;
}

namespace {

// The problems of a planned run, from the content listing on (Preflight in
// preflight.h); lists the content folder and decodes the style images into `plan`.
std::vector<std::string> ProblemsOf(TrainPlan* plan, const PreflightOptions& options) {
  const JobConfig& job = plan->job;
  std::vector<std::string> problems;
  std::string content_list;
  try {
    plan->content_files = ListImageFiles(job.data.content_dir);
    plan->content_list_hash = ContentListHash(job.data.content_dir, plan->content_files);
    content_list = plan->ContentList();
  } catch (const DataError& e) {
    problems.push_back("data.content_dir: " + std::string(e.what()));
  }
  const size_t files = plan->content_files.size();
  const int ranks_per_group = plan->schedule.ranks_per_group;
  for (const StyleSpec* style : plan->runs) {
    const int64_t needed = int64_t{style->training.batch_size} * ranks_per_group;
    if (files > 0 && static_cast<int64_t>(files) < needed) {
      problems.push_back(
          "style '" + style->name + "': the content folder " + job.data.content_dir + " holds " +
          std::to_string(files) +
          " images; one step needs batch_size x ranks per style = " + std::to_string(needed));
    }
    bool conflicts = false;
    for (const auto& [folder, name] : RunFolders(job, *style)) {
      std::string conflict = OutputDirConflict(folder, job.name, name);
      // A conditional network's own styles write beside its folder; neither
      // kind of network may write over the other's records.
      if (conflict.empty() && folder != style->output_dir) {
        conflict = PerStyleRunConflict(folder, job.network);
      }
      if (conflict.empty() && style != &job.conditional_run) {
        conflict = ConditionalStyleDirConflict(folder);
      }
      if (!conflict.empty()) problems.push_back("style '" + name + "': " + conflict);
      conflicts = conflicts || !conflict.empty();
    }
    if (conflicts) continue;
    for (auto& p : SettingsProblems(job, *style, ranks_per_group, content_list, options)) {
      problems.push_back(std::move(p));
    }
  }
  for (auto& p : DecodeStyleImages(plan)) problems.push_back(std::move(p));
  for (auto& p : BaseModelProblems(job)) problems.push_back(std::move(p));
  for (auto& p : ConditionalCheckpointProblems(job)) problems.push_back(std::move(p));
  if (options.processes_on_host > 0) {
    const std::string memory = MemoryBudgetProblem(job, options.processes_on_host);
    if (!memory.empty()) problems.push_back(memory);
  }
  return problems;
}

}  // namespace

std::vector<FileLock> LockStyleFolders(const TrainPlan& plan, World& world) {
  const ProcessInfo& me = world.info();
  const JobConfig& job = plan.job;
  CheckRanksAgreeOnJob(world.all(), job, plan.only_styles, plan.Inputs());
  CheckRanksHaveDistinctHosts(world.all(), me.host, me.local_rank);
  CheckRanksShareOutputFolders(world.all(), me.host, job, plan.runs);
  std::vector<FileLock> locks;
  const StyleSchedule& schedule = plan.schedule;
  if (schedule.RankInGroup(me.rank) != 0) return locks;  // only group roots write
  for (int index : schedule.styles_of_group[static_cast<size_t>(schedule.GroupOf(me.rank))]) {
    const StyleSpec& style = *plan.runs[static_cast<size_t>(index)];
    for (const auto& [folder, name] : RunFolders(job, style)) {  // nothing claimed yet
      const std::string conflict =
          folder != style.output_dir       ? PerStyleRunConflict(folder, job.network)
          : &style != &job.conditional_run ? ConditionalStyleDirConflict(folder)
                                           : "";
      if (!conflict.empty()) throw Error("style '" + name + "': " + conflict);
    }
    ClaimOutputDir(style.output_dir, job.name, style.name, style.sweep, style.swept);
    for (const auto& [folder, name] : RunFolders(job, style)) {
      if (folder != style.output_dir) ClaimConditionalStyleDir(folder, job.name, name, job.network);
      const std::string path = (fs::path(folder) / "stylefleet.lock").string();
      try {
        locks.emplace_back(path, ThisProcessDescription());
      } catch (const Error& e) {
        throw Error("style '" + name + "': its output folder " + folder +
                    " is in use by another run (" + e.what() +
                    "); two runs would write the same checkpoints and metrics. Wait for that "
                    "run to end or stop it, or train into another job.output_dir");
      }
    }
  }
  return locks;
}

}  // namespace stylefleet
