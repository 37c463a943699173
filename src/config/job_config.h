// The job: one YAML file that describes a whole experiment (many styles), as
// typed structs. This folder is the only user of yaml-cpp.
//
// Two file formats load into the same JobConfig:
//  * a stylefleet job file (sections job, data, loss_network, training,
//    checkpoint, styles), relative paths resolved against the file's folder;
//  * a per-style file of the seed TensorFlow project (style_image, naming,
//    model_path, ...), loaded as a one-style job, relative paths resolved
//    against the working directory as the seed does.
// Every key, its type, default and meaning is listed in configs/README.md,
// which is generated from the same tables the loader uses (ConfigReference(),
// config/job_settings.h, with what ranks compare and resumes record).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace stylefleet {

/// The content image set and how images are prepared.
struct DataOptions {
  /// Folder searched recursively for .jpg/.jpeg/.png/.bmp/.tga/.gif files.
  std::string content_dir;
  /// Side of the square training crop in pixels: shorter side resized to it, then
  /// centre-cropped. Multiple of 4 (two stride-2 downsamplings in the network), 64..4096.
  int image_size = 256;
  /// Images with more pixels than this are refused before decoding (decompression bombs).
  /// Decoding costs about 11 bytes per pixel and each loader thread decodes at once:
  /// 50 MP keeps that near 0.5 GB per thread and covers cameras up to 50 MP.
  int64_t max_image_pixels = 50000000;
  /// Decode threads. 2: enough to keep up with training on CPU, where each image costs
  /// far more to train on than to decode.
  int loader_threads = 2;
  /// Batches decoded ahead of the trainer (bounded queue).
  int prefetch_batches = 4;
  /// Photos every run is shown on: its previews and its final stylizations
  /// (`final/NN-<stem>.png`). At most 8; empty means the first 4 content files
  /// in the loader's sorted order. Paths are resolved like the other paths.
  std::vector<std::string> validation_images;
};

/// The frozen VGG-16 whose activations define the losses.
struct LossNetworkOptions {
  /// A weights file (torch.save dict with torchvision's VGG-16 keys) or `random:SEED`.
  std::string weights;
  /// Canonical layer names (conv3_3 style), in the order given.
  std::vector<std::string> content_layers = {"conv3_3"};
  std::vector<std::string> style_layers = {"conv1_2", "conv2_2", "conv3_3", "conv4_3"};
};

/// Optimisation settings; job-wide defaults that each style may override.
struct TrainingOptions {
  double content_weight = 1.0;
  double style_weight = 100.0;
  double tv_weight = 0.0;
  int batch_size = 4;
  /// The job file's batch_size where an elastic resume set batch_size to
  /// another (train/run_settings.h KeepImagesPerStep); 0: batch_size is the
  /// job file's. Not a key: recorded in settings.json, not read from YAML.
  int configured_batch_size = 0;
  /// Gradient accumulation: a step runs its batch in this many parts (part m
  /// takes images m, m+M, ...) and sums their gradients. Must divide batch_size.
  int micro_batches = 1;
  /// Passes over the content set; 0 means limited by max_steps only.
  int epochs = 2;
  /// Step limit; 0 means limited by epochs only. With both set, the first reached ends training.
  int64_t max_steps = 0;
  double learning_rate = 1e-3;
  int log_every_steps = 50;
  /// Stylize a few content images with the current model every N steps; 0 disables.
  int preview_every_steps = 500;
  /// Steps in a row with a NaN/Inf loss or gradient (each skipped, no update)
  /// after which the style stops with an error.
  int max_bad_steps = 10;
  /// "fp32", or "bf16": convolutions in bfloat16 (autocast), losses, gradients
  /// and optimizer in float32.
  std::string precision = "fp32";
  /// Side in pixels the style image is resized and centre-cropped to before its
  /// Gram matrices are taken. 0 until loaded: a loaded job holds data.image_size there.
  int style_image_size = 0;
  /// Canonical VGG layer names of the style loss. Empty until loaded: a loaded
  /// job holds loss_network.style_layers there unless training or the style sets it.
  std::vector<std::string> style_layers;
  /// Style loss on luminance only (Gatys et al. 2016, "Preserving color in
  /// neural artistic style transfer"): the generated and the style image are
  /// each turned into their BT.601 luma, repeated over three channels, before
  /// the loss network takes their style features. Content and TV are unchanged.
  bool style_luminance_only = false;
};

struct CheckpointOptions {
  int64_t every_steps = 1000;
  int keep = 3;
};

/// How a job spreads over the processes of an `mpirun` launch.
struct DistributedOptions {
  /// "auto" (NCCL when tensors live on CUDA, else MPI), "mpi" or "nccl".
  std::string backend = "auto";
  /// Ranks that train one style together (data-parallel); 0 picks the largest
  /// group count that divides the world and does not exceed the style count.
  int ranks_per_style = 0;
  /// Gradient bucket cap in MiB: few large collectives per step. 25 as PyTorch DDP.
  double bucket_mb = 25.0;
  /// Every N steps the ranks of a group compare a parameter checksum; 0 disables.
  int64_t check_every_steps = 100;
  /// A collective still waiting after this long logs a warning (stall detector).
  double stall_warn_seconds = 60;
  /// A collective still waiting after this long ends the launch with an error.
  double timeout_seconds = 600;
};

/// Metrics for Prometheus: served over HTTP and/or pushed to a Pushgateway.
struct MonitoringOptions {
  /// host:port for /metrics, the port offset by the local rank; "off" disables.
  std::string listen = "0.0.0.0:9450";
  /// When the port is taken: false serves on a free port instead (with a
  /// warning; the targets file names it), true fails the run.
  bool listen_strict = false;
  /// After training ends, keep serving until one scrape has read the final
  /// values, at most this long; not at all when nothing scraped during the run.
  double linger_seconds = 30;
  /// host:port of a Pushgateway; empty: no push.
  std::string pushgateway;
  double push_interval_seconds = 10;
};

/// One style to train.
struct StyleSpec {
  std::string name;
  std::string image;         ///< path of the style image
  std::string output_dir;    ///< where its checkpoints, model, metrics and previews go
  TrainingOptions training;  ///< job defaults with this style's overrides applied
  std::string origin;        ///< "file:line" where the style was defined, for messages
  /// For one run of a sweep: the style it sweeps ("candy" for the run
  /// "candy/style_weight=50"); empty for a style that is not swept.
  std::string sweep;
  /// For one run of a sweep: each swept key and its value as written in the
  /// job file (lists joined by '+'), in the sweep's key order.
  std::vector<std::pair<std::string, std::string>> swept;
};

/// Most runs of one sweep that train together when job.styles_at_once is 0.
constexpr int kAutoStylesAtOnce = 4;

struct JobConfig {
  std::string name;
  std::string output_dir;
  uint64_t seed = 42;
  /// Styles a group trains together in one pass (shared content batch and loss
  /// network). 0 (the default): the runs of one sweep train together, up to
  /// kAutoStylesAtOnce at a time, and other styles one at a time.
  int styles_at_once = 0;
  /// "per_style": each style trains its own transformer. "conditional": all
  /// the job's styles train one conditional network (shared convolutions, a
  /// row of instance-norm scale and shift per style), in
  /// ConditionalNetworkDir(); each style's metrics, previews and final
  /// images still go to its own folder. "arbitrary": the job's styles are
  /// the training set of one arbitrary-style network (shared convolutions, a
  /// style predictor that makes every norm's scale and shift from a style
  /// image: model/style_predictor.h), in the same layout.
  std::string network = "per_style";
  /// With network arbitrary: the predictor's bottleneck (numbers per style).
  int predictor_embedding_size = 100;
  /// With network arbitrary: the loss-network layers (canonical names) whose
  /// per-channel means and deviations feed the predictor. Empty until
  /// loaded: a loaded job holds loss_network.style_layers there unless set.
  std::vector<std::string> predictor_layers;
  /// With network arbitrary: style images the network never trains on (or
  /// folders of them: the image files directly inside), whose losses on the
  /// validation photos are measured at each preview step. Absolute once
  /// loaded; the folders are listed when training starts.
  std::vector<std::string> held_out_styles;
  /// With network conditional: a trained conditional network (its model.pt or
  /// folder) that the job's styles are added to; only their new rows train and
  /// the network's other styles stay bit-identical. With network arbitrary: a
  /// trained conditional network whose convolutions start the new network.
  /// Empty: a new network.
  std::string base_model;
  /// With network arbitrary and a base_model: Adam steps that fit the new
  /// predictor, before training, to the base network's rows of the job's
  /// styles it also has (matched by name). 0: none.
  int distill_steps = 0;
  /// float32 3x3 convolutions on CPU: "winograd" (oneDNN's Winograd where it
  /// applies) or "direct" (LibTorch's everywhere), for each thread that
  /// trains the job (ScopedWinograd).
  std::string convolution = "winograd";
  DataOptions data;
  LossNetworkOptions loss_network;
  TrainingOptions training;  ///< defaults before per-style overrides
  CheckpointOptions checkpoint;
  DistributedOptions distributed;
  MonitoringOptions monitoring;
  std::vector<StyleSpec> styles;
  /// With network conditional or arbitrary: the run that trains the network
  /// of all the styles (named after the network's folder, in
  /// ConditionalNetworkDir(), with the first style's training settings, no
  /// image). Filled by the loader.
  StyleSpec conditional_run;

  std::string source_file;   ///< the file this job was loaded from
  bool seed_format = false;  ///< true when loaded from a seed-style per-style file
};

/// True when all the job's styles train one network: job.network
/// conditional or arbitrary.
bool OneNetworkForAllStyles(const JobConfig& job);

/// Where the one network of a conditional or arbitrary job (model,
/// checkpoints) lives: `<output_dir>/conditional` or `<output_dir>/arbitrary`.
std::string ConditionalNetworkDir(const JobConfig& job);

/// Name of the folder of a conditional job's network, and of its run in logs
/// (an arbitrary job's is kArbitraryNetworkName).
constexpr const char* kConditionalNetworkName = "conditional";
constexpr const char* kArbitraryNetworkName = "arbitrary";

/// The fewest pixels on each side of an arbitrary-style network's style image
/// (training and stylize): the predictor reads statistics of the image
/// enlarged to the style image size, and those of a smaller one describe the
/// enlargement more than the style.
constexpr int kMinArbitraryStyleImageSide = 32;

struct LoadOptions {
  /// `section.key=value` overrides (value is YAML), applied after the file,
  /// validated like it. `styles.NAME.key=value` overrides one style.
  std::vector<std::string> overrides;
  /// Content folder for seed-style files, which have no key for it (the seed
  /// always reads train2014/ under the working directory). Empty: that default.
  std::string content_dir{};  // {}: lets LoadOptions{{overrides}} leave it empty
  /// Skip checks that touch the file system (for fuzzing the parser alone).
  bool check_files = true;
};

/// Loads and validates a job file. Throws ConfigError listing every problem
/// found, each as `file:line:column: message`.
JobConfig LoadJob(const std::string& path, const LoadOptions& options = {});

/// Same, from text; `path` names it in messages and anchors relative paths.
JobConfig LoadJobFromString(const std::string& text, const std::string& path,
                            const LoadOptions& options = {});

}  // namespace stylefleet
