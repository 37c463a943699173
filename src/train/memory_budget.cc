#include "train/memory_budget.h"

#include <algorithm>
#include <cstdio>

#include "common/cpu_info.h"
#include "common/error.h"
#include "step/step_cost.h"

namespace stylefleet {
namespace {

std::string Gib(double bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return text;
}

// Peak memory of decoding one image, per pixel: fitted to the peaks of decoding
// 49 and 100 MP PNGs (docs/testing.md, "Memory is checked before it is spent").
constexpr double kDecodeBytesPerPixel = 11;

}  // namespace

MemoryBudget EstimateMemoryBudget(const JobConfig& job, int processes_on_host) {
  MemoryBudget budget;
  budget.available_bytes = AvailableMemoryBytes();
  // Styles trained together hold all their generated images in one pass; a
  // run of the job's styles at once is bounded by styles_at_once.
  const bool any_sweep = std::any_of(job.styles.begin(), job.styles.end(),
                                     [](const StyleSpec& s) { return !s.sweep.empty(); });
  const int at_once =
      job.styles_at_once > 0 ? job.styles_at_once : (any_sweep ? kAutoStylesAtOnce : 1);
  const int together = std::max(1, std::min<int>(at_once, static_cast<int>(job.styles.size())));
  for (const StyleSpec& style : job.styles) {
    const TrainingOptions& t = style.training;
    const int images = t.batch_size / t.micro_batches * together;
    const double bytes =
        EstimateTrainingPeakBytes(job.data.image_size, images, t.style_luminance_only) *
        std::max(1, processes_on_host);
    if (bytes > budget.needed_bytes) {
      budget.needed_bytes = bytes;
      budget.largest_pass =
          "style '" + style.name + "': " + std::to_string(images) + " image(s) of " +
          std::to_string(job.data.image_size) + " px per pass (batch_size " +
          std::to_string(t.batch_size) + " / micro_batches " + std::to_string(t.micro_batches) +
          (together > 1 ? " x " + std::to_string(together) + " styles at once" : std::string()) +
          (t.style_luminance_only ? ", with the luminance pass of style_luminance_only"
                                  : std::string()) +
          ")" +
          (processes_on_host > 1
               ? ", " + std::to_string(processes_on_host) + " processes on this host"
               : std::string());
    }
  }
  // Each loader thread may be decoding the largest image the job accepts.
  budget.needed_bytes += kDecodeBytesPerPixel * double(job.data.max_image_pixels) *
                         job.data.loader_threads * std::max(1, processes_on_host);
  return budget;
}

std::string MemoryBudgetProblem(const JobConfig& job, int processes_on_host) {
  const MemoryBudget budget = EstimateMemoryBudget(job, processes_on_host);
  if (budget.fits()) return "";
  return job.source_file + ": training needs about " + Gib(budget.needed_bytes) + " of memory (" +
         budget.largest_pass + "), but this machine has " + Gib(budget.available_bytes) +
         " available; lower data.image_size or training.batch_size, or raise "
         "training.micro_batches (the same update in smaller passes)" +
         (budget.largest_pass.find("style_luminance_only") != std::string::npos
              ? std::string(", or turn training.style_luminance_only off")
              : std::string());
}

void CheckMemoryBudget(const JobConfig& job, int processes_on_host) {
  const std::string problem = MemoryBudgetProblem(job, processes_on_host);
  if (!problem.empty()) throw ConfigError({problem});
}

}  // namespace stylefleet
