// The commands that use a trained model or measure the machine: stylize,
// export, losses and bench. Torch-free on purpose: src/cli includes only this
// header and compiles without LibTorch's headers.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "comm/world.h"
#include "config/job_config.h"

namespace stylefleet {

struct StylizeOptions {
  std::string
      model;  ///< model.pt, a checkpoint, a style's folder, or an exported/PyTorch-example .pth
  std::vector<std::string> inputs;  ///< image files or folders of images
  std::string output_dir;
  std::string format = "jpg";  ///< jpg or png
  /// Images with a side longer than this run layer by layer in tiles of this
  /// size (model/tiled_forward.h: the untiled result, less memory); 0 never
  /// tiles; otherwise at least 64.
  int tile_size = 1024;
  /// Ignored: tiles are exact and no longer overlap. Kept so that callers and
  /// command lines that set it still work.
  int tile_overlap = 64;
  /// Intra-op threads; 0: OMP_NUM_THREADS when set, else every core.
  int threads = 0;
  /// Inputs whose header declares more pixels are refused before decoding.
  int64_t max_image_pixels = 100000000;
  /// Replace output files that exist; without it they are kept and their
  /// inputs skipped, so a rerun only does what is missing.
  bool overwrite = false;
  /// A conditional model's style to stylize with (one of `blend` and `style`
  /// is required for such a model, neither is allowed for a per-style one).
  std::string style;
  /// A conditional model's blend: `NAME=W,NAME=W`, weights in 0..1 summing to
  /// 1 (within 1e-6): each instance norm uses that convex combination of its
  /// styles' rows.
  std::string blend;
  /// The 3x3 convolutions: "winograd" (oneDNN's, where it applies) or
  /// "direct" (LibTorch's), as the job key job.convolution.
  std::string convolution = "winograd";
  /// Keep each photo's colours: the output takes only the stylized image's
  /// luminance (WithChromaOf, data/image.h). For every network kind.
  bool preserve_colour = false;
  /// An arbitrary-style model's style images, one or more (required for such
  /// a model, refused for the others). Each is resized and centre-cropped to
  /// the model's style image size and summarized by its loss network; the
  /// predictor's embedding of several is their blend: `blend` then holds one
  /// weight per image, in order (`0.7,0.3`), else they weigh alike.
  std::vector<std::string> style_images;
  /// An arbitrary-style model's style strength, 0..1: each photo's embedding
  /// is strength * the style's + (1 - strength) * the photo's own (0: the
  /// network's rendering of the photo's own style).
  double strength = 1.0;
  /// An arbitrary-style model's loss network (weights file or random:SEED);
  /// empty: the one its file names.
  std::string loss_network;
};

/// Why an input image is left out of a stylize run. These skips are on
/// purpose: each is logged and counted, and none fails the run.
enum class SkipReason {
  kInsideOutput,   ///< the image lies in the output folder (canonical paths compared)
  kOutputExists,   ///< its output file exists and `overwrite` is off
  kRepeatedInput,  ///< the same file (canonical path) is already an input of this run
};

struct SkippedImage {
  std::string input;
  std::string output;  ///< empty for kInsideOutput and kRepeatedInput
  SkipReason reason;
};

/// One log line: the input, and why it is skipped.
std::string DescribeSkip(const SkippedImage& skipped);

/// An image and the file its stylized version is written to.
struct StylizeTarget {
  std::string input;
  std::string output;
};

struct StylizePlan {
  std::vector<StylizeTarget> targets;  ///< in input order; folders sorted by path
  std::vector<SkippedImage> skipped;
};

/// Decides where each input goes, without reading any image. The tree under a
/// folder input is mirrored under `output_dir` (`imgs/sub/a.png` of input
/// `imgs` -> `OUT/sub/a.jpg`); a file input goes to `OUT/<its name>`; the
/// extension becomes `format`'s. Nothing inside the output folder is ever an
/// input, however it is spelled (symlinks, `..`, a nested output folder).
/// Throws ConfigError for a bad format, or listing every output path that two
/// different inputs would both write (`a.jpg` and `a.png` -> `a.jpg`): such a
/// run is refused as a whole, before anything is written. Throws DataError
/// for a folder that cannot be listed or holds no images.
StylizePlan PlanStylize(const StylizeOptions& options);

/// Stylizes every planned input (see PlanStylize). Throws on a bad model or a
/// refused plan; a bad input image is reported and skipped, and counts as a
/// failure in the result.
struct StylizeResult {
  std::vector<std::string> written;
  std::vector<std::string> failed;
  std::vector<SkippedImage> skipped;
};
StylizeResult StylizeImages(const StylizeOptions& options);

/// Writes the transformer of `model` as a plain state dict with the PyTorch
/// example's parameter names, loadable by `torch.load` + `load_state_dict`.
/// A conditional network's file also holds `stylefleet.network` and
/// `stylefleet.styles` (python/stylefleet_torch.py loads it). A per-style
/// network's name, job and step are kept only with `keep_names` (as
/// `stylefleet.*` entries, which the PyTorch example's strict
/// `load_state_dict` refuses). An arbitrary-style network's file holds its
/// predictor, its metadata and its loss network's layers down to the deepest
/// the predictor reads (`stylefleet.vgg.*`; the loss network `loss_network`,
/// else the one the model names). ConfigError when `output` is a folder, the
/// model file itself, or (without `overwrite`) a file that exists.
void ExportModel(const std::string& model, const std::string& output, bool overwrite,
                 bool keep_names = false, const std::string& loss_network = "");

/// What `stylefleet info MODEL` prints: the file, the network kind, its
/// styles, parameter counts (shared and per style) and the file's size.
std::string DescribeModel(const std::string& model);

/// What a conditional or arbitrary-style job's network holds, for `check`:
/// "the 3 styles", or with a conditional job's job.base_model "the base
/// network's 3 styles (a, b, c) and 1 new style (d)", or for an arbitrary-style
/// job's the base it starts from (and its distillation). Throws DataError
/// when a conditional job's base network does not load.
std::string DescribeNetworkStyles(const JobConfig& job);

struct LossesOptions {
  std::string loss_network;  ///< weights file or random:SEED; empty: the job's
  std::string model;         ///< transformer to stylize the content with; empty: the content itself
  std::string content;
  /// Without a job: the style image. With a job: the name of one of its styles,
  /// whose image and loss weights are used; may be empty when the job has one.
  std::string style;
  /// Crop side; 0: the job's data.image_size, or 256 without a job.
  int image_size = 0;
  const JobConfig* job = nullptr;  ///< layers, weights and image size from here when set
  /// The style loss on luminance only (training.style_luminance_only). Unset:
  /// the job's style's setting, or off without a job.
  std::optional<bool> style_luminance_only;
};

/// The seed's loss terms for one content image as a JSON document. Throws
/// ConfigError for a style name the job lacks (listing its styles) or a
/// missing style or loss network.
std::string ComputeLossesJson(const LossesOptions& options);

/// The loss network's convention as `check` and `train` report it.
struct LossNetworkReport {
  std::string description;  ///< name, input convention, activation scale, recorded or inferred
  /// Why loss weights in the seed's scale do not balance with this network;
  /// empty when they do (seed-balanced, the seed's input convention, random).
  std::string warning;
};

/// Loads `weights` (a file or random:SEED) and describes its convention.
/// Throws DataError when it cannot be read.
LossNetworkReport DescribeLossNetwork(const std::string& weights);

struct BenchOptions {
  int image_size = 256;
  int batch_size = 4;  ///< per rank
  int threads = 0;     ///< intra-op threads; 0: cores / ranks on the host
  int warmup_steps = 1;
  int steps = 3;  ///< timed steps per measurement (the median is reported)
  std::vector<std::string> precisions = {"fp32",
                                         "bf16"};  ///< bf16 skipped without BF16 instructions
  /// Also train this many styles at once in one process (shared content pass,
  /// one loss-network batch) and compare with one style; 0 or 1 skips it.
  int styles_at_once = 4;
  /// A folder of real images: also measure training through the data pipeline.
  std::string content_dir;
  int loader_threads = 2;
  std::vector<int> stylize_sizes = {256, 1024};
  std::string loss_network = "random:7";
  /// The job defaults: the bench measures the step a default job trains.
  std::vector<std::string> content_layers = LossNetworkOptions{}.content_layers;
  std::vector<std::string> style_layers = LossNetworkOptions{}.style_layers;
  /// As training.micro_batches; must divide batch_size.
  int micro_batches = TrainingOptions{}.micro_batches;
  /// As distributed.bucket_mb.
  double bucket_mb = DistributedOptions{}.bucket_mb;
  /// Chrome-trace JSON of every timed phase (per rank, as TrainRunOptions::trace_path).
  std::string trace_path;
  /// Progress lines on stderr.
  bool progress = true;
  /// Weights and images in channels-last (NHWC) memory layout.
  bool channels_last = false;
  /// GPU only: allow TF32 in fp32 convolutions and matrix products (off: true fp32).
  bool tf32 = false;
  /// fp32 3x3 convolutions on CPU: "winograd" (oneDNN's, where it applies) or
  /// "direct" (LibTorch's), as the job key job.convolution.
  std::string convolution = "winograd";
  /// Also measure what the machine's arithmetic does through LibTorch (a 3x3
  /// convolution and a matrix product, fp32 and bf16; a few seconds, on rank
  /// 0 only) and state each training precision's rate as a fraction of it.
  bool machine_throughput = true;
};

/// Measures training, stylizing, (with more than one rank) allreduce speed
/// and (with `machine_throughput`) the machine's kernel throughput
/// (commands/machine_throughput.h, measured on rank 0; each train_synthetic
/// entry then also holds `fraction_of_conv3x3_gflops`, its achieved GFLOP/s
/// per rank over the convolution rate of `conv3x3_compared_with`: fp32, or the
/// faster bf16 layout), and returns one JSON document (on rank 0; other ranks
/// get ""). Collective over `world`: all ranks train one model data-parallel,
/// with the training step and per-rank setup that `train` uses
/// (step/training_step.h, runtime/rank_runtime.h), so the figures are those
/// of training.
std::string RunBenchmark(const BenchOptions& options, World& world);

}  // namespace stylefleet
