// What one `train` run works from, worked out once before training starts and
// passed down: the runs `--style` selects, their layout on the ranks, the
// content listing and the decoded style images. So the content folder is
// listed, the runs planned and each style image decoded once per run, however
// many places need them (`stylefleet -v train` logs each). Torch-free.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "comm/world.h"
#include "config/job_config.h"
#include "data/image.h"
#include "train/rank_agreement.h"
#include "train/style_schedule.h"
#include "train/test_hooks.h"

namespace stylefleet {

/// Style images decoded (at most data.max_image_pixels) and cropped to a
/// training.style_image_size (ResizeCenterCrop), by {file, side}.
using StyleImages = std::map<std::pair<std::string, int>, RgbImage>;

/// One image of job.held_out_styles: named after its file.
struct HeldOutStyle {
  std::string name;
  std::string image;
};

/// Built in place and never copied: `runs` points into `job`.
struct TrainPlan {
  TrainPlan() = default;
  TrainPlan(const TrainPlan&) = delete;
  TrainPlan& operator=(const TrainPlan&) = delete;

  JobConfig job;                         ///< as the preflight settled it (elastic resume's batches)
  std::vector<std::string> only_styles;  ///< the `--style` selection
  std::vector<const StyleSpec*> runs;    ///< SelectRuns(job, only_styles)
  StyleSchedule schedule;                ///< `runs` laid onto the launch's ranks
  std::vector<std::string> content_files;  ///< ListImageFiles(job.data.content_dir)
  std::string content_list_hash;           ///< ContentListHash of content_files (one stat per file)
  StyleImages style_images;  ///< every style of `runs` (DecodeStyleImages); empty before
  /// BytesContentHash (train/rank_agreement.h) of the bytes each style image
  /// was decoded from, by file: what the ranks compare.
  std::map<std::string, std::string> style_image_hashes;
  /// job.held_out_styles listed (a folder's image files in file-name order),
  /// decoded into style_images at the job's style_image_size by
  /// DecodeStyleImages; empty before.
  std::vector<HeldOutStyle> held_out;
  TestHooks hooks;  ///< this rank's test-only hooks; none outside tests

  /// DescribeContentList of the content files, for the runs' settings records.
  std::string ContentList() const;
  /// JobInputs (train/rank_agreement.h) of this plan, the held-out style
  /// images' hashes included: what the ranks compare.
  JobInputs Inputs() const;
  /// The image `style` trains on, cropped to its style_image_size. Throws
  /// Error when DecodeStyleImages did not decode it.
  const RgbImage& StyleImageOf(const StyleSpec& style) const;
  /// Drops the decoded images that the runs of `rank`'s group do not train
  /// on, so that a rank holds only its own styles' images.
  void KeepStyleImagesOfRank(int rank);
};

/// The plan of a run without a preflight (tests and library callers of
/// TrainJob(job, ...)). Collective over `world`: selects the runs of `job`
/// for `only_styles`, lists the content folder, decodes the style images,
/// checks that the ranks agree on the job and its inputs
/// (train/rank_agreement.h), lays the runs onto the ranks and keeps this
/// rank's images. Throws ConfigError for a selection or layout that cannot
/// be or ranks that disagree, DataError for a content folder that cannot be
/// listed or a style image that does not decode (on that rank alone: the
/// others then wait in the comparison, as with any failure before it).
std::unique_ptr<TrainPlan> PlanTraining(const JobConfig& job,
                                        const std::vector<std::string>& only_styles, World& world);

/// Reads and decodes each style image that `plan`'s runs train on (a
/// conditional network's run: every style of the job) once, however many
/// styles (a sweep's runs) share it, and crops it to each style_image_size
/// they use, into plan->style_images (the bytes' hash into
/// plan->style_image_hashes). Returns, for each style whose image does not
/// decode or is larger than data.max_image_pixels, in job order, why, naming
/// where the style is defined and the file; empty when every image decodes.
/// Lists and decodes job.held_out_styles likewise (into plan->held_out),
/// with its problems after the styles'.
std::vector<std::string> DecodeStyleImages(TrainPlan* plan);

}  // namespace stylefleet
