#include "config/job_schema.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/fnv1a.h"
#include "common/utf8.h"
#include "common/vgg_layers.h"

namespace stylefleet::job_loader {
namespace fs = std::filesystem;

// Each validation photo is stylized at every preview and at the end of every run.
constexpr size_t kMaxValidationImages = 8;

std::string ShowValue(const std::string& value) { return value; }
std::string ShowValue(int value) { return std::to_string(value); }
std::string ShowValue(int64_t value) { return std::to_string(value); }
std::string ShowValue(uint64_t value) { return std::to_string(value); }
std::string ShowValue(bool value) { return value ? "true" : "false"; }
std::string ShowValue(double value) {
  char text[40];
  std::snprintf(text, sizeof(text), "%.17g", value);
  return text;
}
std::string ShowValue(const std::vector<std::string>& values) {
  std::string text = "[";
  for (size_t i = 0; i < values.size(); ++i) text += (i ? ", " : "") + values[i];
  return text + "]";
}

// A name becomes a folder, a log-line label and a JSON string: UTF-8 text
// without control characters (a newline would forge log lines).
bool IsPlainText(const std::string& name) {
  if (!IsUtf8(name)) return false;
  for (const char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  }
  return true;
}

bool ValidFolderName(const std::string& name) {
  if (!IsPlainText(name)) return false;
  return name.find_first_of("/\\") == std::string::npos && name != "." && name != "..";
}

extern const char kFolderNameRule[];
const char kFolderNameRule[] =
    "must be UTF-8 text without '/', '\\' or control characters, and not '.' or '..' (it "
    "names a folder)";

const FieldTable<JobConfig>& JobFields() {
  static const FieldTable<JobConfig> table = {
      {"name", "string", "file name without extension",
       "Job name: labels logs and metrics and is stored in every output directory so that a "
       "different job never overwrites it.",
       Agreement::kEveryRank, Show(&JobConfig::name),
       [](JobConfig& t, const Value& v) {
         if (!v.ReadString(&t.name)) return;
         if (!ValidFolderName(t.name)) {
           v.Fail(std::string(kFolderNameRule) + ", got '" + EscapeForMessage(t.name) + "'");
           t.name.clear();
         }
       }},
      {"output_dir", "path", "`runs/<name>`", "Folder that receives one sub-folder per style.",
       Agreement::kEveryRank, Show(&JobConfig::output_dir),
       [](JobConfig& t, const Value& v) { v.ReadString(&t.output_dir); }, OnResume::kMayChange},
      {"seed", "integer >= 0", "42",
       "Seeds the transformer init, the shuffling of the content set and everything random, "
       "so the same job gives the same batches and weights.",
       Agreement::kEveryRank, Show(&JobConfig::seed),
       [](JobConfig& t, const Value& v) {
         long long seed = 0;
         if (v.ReadInt(&seed, 0, INT64_MAX)) t.seed = static_cast<uint64_t>(seed);
       }},
      {"styles_at_once", "integer", "0",
       "Styles a group of ranks trains together, 1 to 64: they share each content batch, its "
       "pass through the loss network, and one loss-network pass over all their generated "
       "images (two with style_luminance_only). With `convolution: direct` their losses equal "
       "those of separate training bit "
       "for bit; with `winograd` oneDNN may choose its blocking by batch (it does on AMD Zen "
       "5), so the first step agrees to float rounding and Adam can grow that to percent-level "
       "differences within a few steps (README, Exactness). Styles are taken in job order; "
       "those "
       "with different batch_size, micro_batches, epochs, max_steps, precision or "
       "style_luminance_only, or resumed at "
       "different steps, are trained apart. 0: the runs of one sweep train together, up to 4 "
       "at a time, and other styles one at a time. Gains are largest on GPUs; on CPU up to "
       "about 1.1x for 4 styles (the shared content pass is the only saved work; `stylefleet "
       "bench` measures it).",
       Agreement::kEveryRank, Show(&JobConfig::styles_at_once),
       [](JobConfig& t, const Value& v) { v.ReadInt(&t.styles_at_once, 0, 64); },
       OnResume::kMayChange},
      {"network", "string", "per_style",
       "`per_style`: each style trains its own transformer (1.7M parameters each). "
       "`conditional`: all the job's styles train one conditional network (conditional "
       "instance normalization, Dumoulin et al. 2017): the convolutions are shared and each "
       "style owns one row of instance-norm scale and shift (3,200 numbers). Every batch mixes "
       "the styles image by image in a fixed rotation from the seed; each image's style loss "
       "uses its own style's Gram targets and weights. All ranks train the one network "
       "data-parallel. Its model and checkpoints go to `<output_dir>/conditional`; each style's "
       "metrics, previews and final images to its own folder. The styles must share every "
       "training key except content_weight, style_weight, tv_weight and style_image_size, and "
       "cannot be swept. `arbitrary`: the job's styles (at least 2) are the training set of one "
       "arbitrary-style network (Ghiasi et al. 2017): the convolutions are shared and a style "
       "predictor turns a style image's loss-network statistics (predictor_layers) into every "
       "instance norm's scale and shift through a bottleneck of predictor_embedding_size "
       "numbers, so that it can stylize with style images it never saw. It trains as "
       "`conditional` does (the same rotation, batches, rules and folders, in "
       "`<output_dir>/arbitrary`), each image's norms predicted from its style image.",
       Agreement::kEveryRank, Show(&JobConfig::network),
       [](JobConfig& t, const Value& v) {
         v.ReadChoice(&t.network, {"per_style", "conditional", "arbitrary"});
       }},
      {"predictor_embedding_size", "integer", "100",
       "With `network: arbitrary`: the style predictor's bottleneck, the numbers that describe "
       "one style (1 to 4096; the paper's 100). The predictor is two linear maps: the layers' "
       "statistics to this embedding, and the embedding to the 2,560 norm parameters.",
       Agreement::kEveryRank, Show(&JobConfig::predictor_embedding_size),
       [](JobConfig& t, const Value& v) { v.ReadInt(&t.predictor_embedding_size, 1, 4096); }},
      {"predictor_layers", "list of layer names", "`loss_network.style_layers`",
       "With `network: arbitrary`: the loss-network layers whose per-channel mean and standard "
       "deviation over a style image feed the style predictor (2 numbers per channel: 1,920 for "
       "the default layers). They come from the loss network already loaded, in one more "
       "float32 forward per style image at start-up (none per step).",
       Agreement::kEveryRank, Show(&JobConfig::predictor_layers),
       [](JobConfig& t, const Value& v) { v.ReadLayers(&t.predictor_layers); }},
      {"held_out_styles", "list of paths", "`[]`",
       "With `network: arbitrary`: style images the network never trains on, or folders of them "
       "(their image files directly inside, named after the files' stems, which must differ), at "
       "most 64 in all. At each preview step and at the last step the network, its norms predicted "
       "from each image, stylizes the validation "
       "photos (prepared as previews are), and the losses against that image's Gram targets go "
       "to `<output_dir>/arbitrary/held_out.jsonl` (per image and their mean) and to the log: "
       "how well the predictor does on styles it never saw. None may hold the same bytes as a "
       "training style's image. "
       "They change no training value, so a resumed run may change them.",
       Agreement::kEveryRank, Show(&JobConfig::held_out_styles),
       [](JobConfig& t, const Value& v) { v.ReadStringList(&t.held_out_styles, 64); },
       OnResume::kMayChange},
      {"base_model", "path", "none",
       "With `network: conditional`: a trained conditional network (model.pt, a checkpoint or "
       "its folder) that the job's styles are added to. Its convolutions and its styles' rows "
       "are frozen (those styles stay bit-identical); only the new styles' rows train. The "
       "job's styles must not repeat its style names. The new model holds its styles followed "
       "by the job's. With `network: arbitrary`: a trained conditional network whose "
       "convolutions the new network starts from (all of them then train; the predictor "
       "starts as without a base unless `distill_steps` fits it).",
       Agreement::kEveryRank, Show(&JobConfig::base_model),
       [](JobConfig& t, const Value& v) { v.ReadString(&t.base_model); }},
      {"distill_steps", "integer", "0",
       "With `network: arbitrary` and a `base_model`: before training, this many Adam steps "
       "(learning rate 0.01, on the mean squared difference) fit the new predictor so that each "
       "job style that the base network also has (same name) gets that style's trained row of "
       "norms from its style image. The log gives the difference before and after. 0 to "
       "100000; 0: no fitting. A resume fits again and then loads its checkpoint over the "
       "fit, so a resumed run may change it. Held-out styles should not be styles the base "
       "trained on: its convolutions (and, fitted, its rows) have seen them.",
       Agreement::kEveryRank, Show(&JobConfig::distill_steps),
       [](JobConfig& t, const Value& v) { v.ReadInt(&t.distill_steps, 0, 100000); },
       OnResume::kMayChange},
      {"convolution", "`winograd` or `direct`", "`winograd`",
       "How float32 3x3 convolutions run on CPU (the transformer's stride-1 layers and the loss "
       "network's). `winograd`: oneDNN's Winograd F(4x4,3x3) algorithm, about a quarter of the "
       "multiplications, where the CPU has it (AVX-512) and a layer has at least 16 channels; "
       "elsewhere LibTorch's. It trains faster than `direct` and takes more peak memory "
       "(docs/performance.md); its blocking may depend on the batch, so results agree with another "
       "batch composition only to rounding (README, Exactness). `direct`: LibTorch's "
       "convolutions everywhere, as PyTorch computes them; each image's result does not depend "
       "on the rest of its batch. bf16 steps and GPU training always use LibTorch's. `stylefleet "
       "bench "
       "--convolution` measures either (two runs compare them); `stylefleet stylize "
       "--convolution` chooses for stylizing. `train` and `stylize` log which runs.",
       Agreement::kEveryRank, Show(&JobConfig::convolution),
       [](JobConfig& t, const Value& v) {
         v.ReadChoice(&t.convolution, {"winograd", "direct"});
       },
       OnResume::kMayChange},
  };
  return table;
}

const FieldTable<DataOptions>& DataFields() {
  static const FieldTable<DataOptions> table = {
      {"content_dir", "path", "required",
       "Folder of content photos, searched recursively for JPEG, PNG, BMP, TGA and GIF files. "
       "Unreadable files are skipped with one warning each.",
       Agreement::kEveryRank, Show(&DataOptions::content_dir),
       [](DataOptions& t, const Value& v) { v.ReadString(&t.content_dir); }},
      {"image_size", "integer", "256",
       "Training crop side in pixels: the shorter side is resized to it, then the centre square "
       "is cropped. Multiple of 4, 64 to 4096. The filter is antialiased bilinear, that of PIL's "
       "`Image.resize(size, Image.BILINEAR)` (a test holds it within 1 level per channel of "
       "PIL); an image whose shorter side already has this size is only cropped, its pixels kept "
       "bit for bit. Style images are prepared the same way.",
       Agreement::kEveryRank, Show(&DataOptions::image_size),
       [](DataOptions& t, const Value& v) {
         int size = 0;
         if (!v.ReadInt(&size, 64, 4096)) return;
         if (size % 4 != 0) {
           v.Fail("must be a multiple of 4 (the network downsamples twice by 2), got " +
                  std::to_string(size));
           return;
         }
         t.image_size = size;
       }},
      {"max_image_pixels", "integer", "50000000",
       "Images whose header declares more pixels are skipped before decoding, with a warning "
       "(decompression bombs). Decoding costs about 11 bytes per pixel (the measured peaks are in "
       "docs/testing.md) and each of `loader_threads` decodes at once, "
       "so 50 MP keeps decoding near 0.5 GB per thread and covers cameras up to 50 MP; raise it "
       "for larger photos. `check` and `train` count it in their memory estimate.",
       Agreement::kEveryRank, Show(&DataOptions::max_image_pixels),
       [](DataOptions& t, const Value& v) {
         v.ReadInt(&t.max_image_pixels, 4096, int64_t{1} << 40);
       },
       OnResume::kMayChange},
      {"loader_threads", "integer", "2", "Image decoding threads, 1 to 64.", Agreement::kPerRank,
       Show(&DataOptions::loader_threads),
       [](DataOptions& t, const Value& v) { v.ReadInt(&t.loader_threads, 1, 64); }},
      {"prefetch_batches", "integer", "4",
       "Batches decoded ahead of the trainer, 1 to 64; bounds the loader's memory.",
       Agreement::kPerRank, Show(&DataOptions::prefetch_batches),
       [](DataOptions& t, const Value& v) { v.ReadInt(&t.prefetch_batches, 1, 64); }},
      {"validation_images", "list of paths", "`[]` (the first 4 content files)",
       "Photos every run is shown on, at most 8: its previews, and at the end of the run (also "
       "when it was already trained) its final stylizations `final/NN-<stem>.png`, each photo "
       "resized so that its shorter side is image_size, not cropped. Empty: the first 4 content "
       "files in the loader's sorted order. Same on all ranks so that every style and sweep run "
       "is shown on the same photos, whichever group trains it; they change no training value, "
       "so a resumed run may change them (an already trained run rewrites its final images).",
       Agreement::kEveryRank, Show(&DataOptions::validation_images),
       [](DataOptions& t, const Value& v) {
         v.ReadStringList(&t.validation_images, kMaxValidationImages);
       },
       OnResume::kMayChange},
  };
  return table;
}

const FieldTable<LossNetworkOptions>& LossNetworkFields() {
  static const FieldTable<LossNetworkOptions> table = {
      {"weights", "path or `random:SEED`", "required",
       "VGG-16 weights: a file written by `launch/convert_vgg16.py` (or any `torch.save` of a "
       "state dict with torchvision's `features.N.weight/bias` keys), or `random:SEED` for a "
       "deterministic random network (tests and demos; results are not artistic). Loss weights "
       "are in the seed's scale, which the converter's default output (convention "
       "seed-balanced) matches; `check` prints the file's convention and warns when it does not "
       "(see Loss weights and the loss network).",
       Agreement::kEveryRank, Show(&LossNetworkOptions::weights),
       [](LossNetworkOptions& t, const Value& v) { v.ReadString(&t.weights); }},
      {"content_layers", "list of layer names", "`[conv3_3]`",
       "Layers whose activations define the content loss. Names: conv1_1 ... conv5_3, also "
       "written relu3_3 or vgg_16/conv3/conv3_3 (the output of the conv after its ReLU).",
       Agreement::kEveryRank, Show(&LossNetworkOptions::content_layers),
       [](LossNetworkOptions& t, const Value& v) { v.ReadLayers(&t.content_layers); }},
      {"style_layers", "list of layer names", "`[conv1_2, conv2_2, conv3_3, conv4_3]`",
       "Layers whose Gram matrices define the style loss; each layer's loss is reported "
       "separately.",
       Agreement::kEveryRank, Show(&LossNetworkOptions::style_layers),
       [](LossNetworkOptions& t, const Value& v) { v.ReadLayers(&t.style_layers); }},
  };
  return table;
}

const FieldTable<TrainingOptions>& TrainingFields() {
  static const FieldTable<TrainingOptions> table = {
      {"content_weight", "number >= 0", "1.0", "Weight of the content loss in the total.",
       Agreement::kEveryRank, Show(&TrainingOptions::content_weight),
       [](TrainingOptions& t, const Value& v) { v.ReadDouble(&t.content_weight, 0, 1e12); }},
      {"style_weight", "number >= 0", "100.0",
       "Weight of the style loss (sum over style layers) in the total.", Agreement::kEveryRank,
       Show(&TrainingOptions::style_weight),
       [](TrainingOptions& t, const Value& v) { v.ReadDouble(&t.style_weight, 0, 1e12); }},
      {"tv_weight", "number >= 0", "0.0",
       "Weight of the total-variation loss (the seed trains with 0). The loss is the seed's: "
       "l2_loss(dx) / size(dx) + l2_loss(dy) / size(dy) on the generated image (0..255), with "
       "TensorFlow's l2_loss(d) = sum(d^2) / 2, i.e. half the mean squared neighbour difference "
       "per direction.",
       Agreement::kEveryRank, Show(&TrainingOptions::tv_weight),
       [](TrainingOptions& t, const Value& v) { v.ReadDouble(&t.tv_weight, 0, 1e12); }},
      {"batch_size", "integer", "4",
       "Images per step (per rank when distributed), 1 to 1024. A resume keeps the images per "
       "step (batch_size x ranks per style) its checkpoints were trained with: on another number "
       "of ranks it sets batch_size and micro_batches itself (elastic resume, README \"On a "
       "cluster\"); a changed batch_size on the same ranks is refused.",
       Agreement::kPassShape, Show(&TrainingOptions::batch_size),
       [](TrainingOptions& t, const Value& v) { v.ReadInt(&t.batch_size, 1, 1024); },
       OnResume::kMayChange},
      {"micro_batches", "integer", "1",
       "Gradient accumulation: each step runs its batch in this many parts (part m takes "
       "images m, m+M, m+2M, ...) and averages their gradients. The update is that of the whole "
       "batch, with less memory per pass; 2 ranks of batch b and one process of batch 2b in 2 "
       "micro-batches end bit for bit equal (same threads per rank; with more ranks MPI may add "
       "their gradients in another order: equal to rounding). Must divide batch_size.",
       Agreement::kPassShape, Show(&TrainingOptions::micro_batches),
       [](TrainingOptions& t, const Value& v) { v.ReadInt(&t.micro_batches, 1, 1024); },
       OnResume::kMayChange},
      {"epochs", "integer", "2",
       "Passes over the content set, 0 to 100000; 0 means max_steps alone ends training.",
       Agreement::kPassShape, Show(&TrainingOptions::epochs),
       [](TrainingOptions& t, const Value& v) { v.ReadInt(&t.epochs, 0, 100000); },
       OnResume::kMayChange},
      {"max_steps", "integer", "0",
       "Step limit, 0 for none. With epochs also set, whichever comes first ends training.",
       Agreement::kPassShape, Show(&TrainingOptions::max_steps),
       [](TrainingOptions& t, const Value& v) { v.ReadInt(&t.max_steps, 0, int64_t{1} << 40); },
       OnResume::kMayChange},
      {"learning_rate", "number > 0", "0.001", "Adam learning rate, up to 1.",
       Agreement::kEveryRank, Show(&TrainingOptions::learning_rate),
       [](TrainingOptions& t, const Value& v) { v.ReadDouble(&t.learning_rate, 0, 1, true); }},
      {"log_every_steps", "integer", "50",
       "A log line (and a metrics.jsonl record) every N steps, 1 to 1000000. Its losses are "
       "the mean over the images of the steps since the previous record (steps skipped for "
       "NaN/Inf left out; `images` says how many); `step_losses` holds the logged step's "
       "own values, and Prometheus every step's.",
       Agreement::kEveryRank, Show(&TrainingOptions::log_every_steps),
       [](TrainingOptions& t, const Value& v) { v.ReadInt(&t.log_every_steps, 1, 1000000); },
       OnResume::kMayChange},
      {"preview_every_steps", "integer", "500",
       "Stylize a few content images into `previews/` every N steps (and at the end); 0 "
       "disables.",
       Agreement::kEveryRank, Show(&TrainingOptions::preview_every_steps),
       [](TrainingOptions& t, const Value& v) { v.ReadInt(&t.preview_every_steps, 0, 1000000); },
       OnResume::kMayChange},
      {"max_bad_steps", "integer", "10",
       "A step whose loss or gradient is NaN or infinite is skipped (no update) and counted; "
       "after this many in a row the style stops with an error, keeping its last good "
       "checkpoint, and the job's other styles carry on. 1 to 1000000.",
       Agreement::kEveryRank, Show(&TrainingOptions::max_bad_steps),
       [](TrainingOptions& t, const Value& v) { v.ReadInt(&t.max_bad_steps, 1, 1000000); },
       OnResume::kMayChange},
      {"precision", "`fp32` or `bf16`", "`fp32`",
       "Arithmetic of the forward passes. `bf16` runs the convolutions of the transformer and "
       "the loss network in bfloat16 (autocast) and keeps losses, gradients, Adam and the "
       "weights in float32. On a CPU with AMX (amx_bf16) it trained faster than fp32 at 256 px, "
       "batch 4, with total losses within half a percent, but slower with small images; on "
       "one with avx512_bf16 but no AMX it trained slower than fp32, and training warns "
       "(figures: docs/performance.md, \"Earlier figures\" with AMX, \"2026-11-29 (night)\" "
       "without). Measure with `stylefleet bench`; on GPUs it always applies. On a CPU "
       "without BF16 instructions training runs in fp32 and says so.",
       Agreement::kPassShape, Show(&TrainingOptions::precision),
       [](TrainingOptions& t, const Value& v) {
         v.ReadChoice(&t.precision, {"fp32", "bf16"});
       }},
      {"style_image_size", "integer", "`data.image_size`",
       "Side in pixels the style image is resized (shorter side) and centre-cropped to before "
       "its Gram matrices are taken, 16 to 4096. A larger style image gives the style's "
       "features at a finer scale relative to the photos.",
       Agreement::kEveryRank, Show(&TrainingOptions::style_image_size),
       [](TrainingOptions& t, const Value& v) { v.ReadInt(&t.style_image_size, 16, 4096); }},
      {"style_layers", "list of layer names", "`loss_network.style_layers`",
       "The style loss's VGG-16 layers for this style (same names as "
       "`loss_network.style_layers`). Styles trained together may use different layers.",
       Agreement::kEveryRank, Show(&TrainingOptions::style_layers),
       [](TrainingOptions& t, const Value& v) { v.ReadLayers(&t.style_layers); }},
      {"style_luminance_only", "boolean", "false",
       "Style loss on luminance only (Gatys et al. 2016, \"Preserving color in neural artistic "
       "style transfer\"): the generated images and the style image each go to the loss "
       "network as their BT.601 luma (0.299 R + 0.587 G + 0.114 B, the same value in all three "
       "channels) for the style loss, so the network learns the style's strokes and textures "
       "but not its colours, and the content loss (on the colours) keeps the photo's. The "
       "content and TV losses are unchanged. Costs a second loss-network pass over the "
       "generated images each step (the colours' pass stops at the deepest content layer, the "
       "luminance pass at the deepest style layer: about a fifth fewer images per second and "
       "1.6 KB more memory per pixel of the batch, docs/performance.md). For the stylized "
       "result's chroma to equal the photo's exactly, stylize with --preserve-colour.",
       Agreement::kPassShape, Show(&TrainingOptions::style_luminance_only),
       [](TrainingOptions& t, const Value& v) { v.ReadBool(&t.style_luminance_only); }},
  };
  return table;
}

const FieldTable<CheckpointOptions>& CheckpointFields() {
  static const FieldTable<CheckpointOptions> table = {
      {"every_steps", "integer", "1000",
       "Write a checkpoint every N steps (and at the end), as the seed does.",
       Agreement::kEveryRank, Show(&CheckpointOptions::every_steps),
       [](CheckpointOptions& t, const Value& v) { v.ReadInt(&t.every_steps, 1, int64_t{1} << 40); },
       OnResume::kMayChange},
      {"keep", "integer", "3", "Checkpoints kept per style, newest first, 1 to 1000.",
       Agreement::kEveryRank, Show(&CheckpointOptions::keep),
       [](CheckpointOptions& t, const Value& v) { v.ReadInt(&t.keep, 1, 1000); },
       OnResume::kMayChange},
  };
  return table;
}

const FieldTable<DistributedOptions>& DistributedFields() {
  static const FieldTable<DistributedOptions> table = {
      {"backend", "`auto`, `mpi` or `nccl`", "`auto`",
       "Gradient transport: NCCL when tensors live on CUDA GPUs, MPI (CPU tensors) otherwise.",
       Agreement::kEveryRank, Show(&DistributedOptions::backend),
       [](DistributedOptions& t, const Value& v) {
         v.ReadChoice(&t.backend, {"auto", "mpi", "nccl"});
       },
       OnResume::kMayChange},
      {"ranks_per_style", "integer", "0 (auto)",
       "Ranks that train one style together, data-parallel (each reads its own shard; gradients "
       "averaged every step). Must divide the number of ranks. 0: the number of groups is the "
       "largest divisor of the rank count not above the style count.",
       Agreement::kEveryRank, Show(&DistributedOptions::ranks_per_style),
       [](DistributedOptions& t, const Value& v) { v.ReadInt(&t.ranks_per_style, 0, 1 << 20); },
       OnResume::kMayChange},
      {"bucket_mb", "number", "25",
       "Gradients are flattened into buckets of at most this many MiB, one collective each "
       "(0.001 to 1024).",
       Agreement::kEveryRank, Show(&DistributedOptions::bucket_mb),
       [](DistributedOptions& t, const Value& v) { v.ReadDouble(&t.bucket_mb, 0.001, 1024); },
       OnResume::kMayChange},
      {"check_every_steps", "integer", "100",
       "Every N steps the ranks of a group compare a checksum of their parameters and stop with "
       "an error if they diverged; 0 disables.",
       Agreement::kEveryRank, Show(&DistributedOptions::check_every_steps),
       [](DistributedOptions& t, const Value& v) {
         v.ReadInt(&t.check_every_steps, 0, int64_t{1} << 40);
       },
       OnResume::kMayChange},
      {"stall_warn_seconds", "number", "60",
       "A collective (gradient allreduce, broadcast, barrier) still waiting for its peers after "
       "this long logs a warning and counts in stylefleet_collective_stalls_total (1 to 86400).",
       Agreement::kEveryRank, Show(&DistributedOptions::stall_warn_seconds),
       [](DistributedOptions& t, const Value& v) { v.ReadDouble(&t.stall_warn_seconds, 1, 86400); },
       OnResume::kMayChange},
      {"timeout_seconds", "number", "600",
       "A collective still waiting after this long ends the whole launch with an error naming the "
       "rank, instead of hanging on a dead or stalled peer (1 to 86400). Must exceed the longest "
       "step plus checkpoint write.",
       Agreement::kEveryRank, Show(&DistributedOptions::timeout_seconds),
       [](DistributedOptions& t, const Value& v) { v.ReadDouble(&t.timeout_seconds, 1, 86400); },
       OnResume::kMayChange},
  };
  return table;
}

namespace {

bool ValidHostPort(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 >= text.size()) return false;
  const std::string port = text.substr(colon + 1);
  return port.size() <= 5 && port.find_first_not_of("0123456789") == std::string::npos &&
         std::stoi(port) <= 65535;
}

}  // namespace

const FieldTable<MonitoringOptions>& MonitoringFields() {
  static const FieldTable<MonitoringOptions> table = {
      {"listen", "`host:port` or `off`", "`0.0.0.0:9450`",
       "Where each process serves Prometheus metrics at /metrics (nothing else is served). The "
       "port is offset by the local rank so ranks on one node do not collide; port 0 takes any "
       "free port. 0.0.0.0 (all interfaces) is the usual exporter practice so that Prometheus "
       "on another host can scrape; the values are training statistics, but anyone who reaches "
       "the port can read them: bind 127.0.0.1 or a cluster-internal address where that matters.",
       Agreement::kPerRank, Show(&MonitoringOptions::listen),
       [](MonitoringOptions& t, const Value& v) {
         std::string listen;
         if (!v.ReadString(&listen)) return;
         if (listen != "off" && !ValidHostPort(listen)) {
           v.Fail("expected host:port (e.g. 0.0.0.0:9450) or off, got '" + listen + "'");
           return;
         }
         t.listen = listen;
       }},
      {"listen_strict", "boolean", "false",
       "When the listen port is taken (another job on the host): false serves on a free port "
       "instead, with a warning, and writes the real address into the targets file (metrics "
       "must not stop training); true fails the run with exit code 1.",
       Agreement::kPerRank, Show(&MonitoringOptions::listen_strict),
       [](MonitoringOptions& t, const Value& v) { v.ReadBool(&t.listen_strict); }},
      {"linger_seconds", "number", "30",
       "After training ends, keep serving until Prometheus has scraped the final values once, "
       "at most this long (0 to 86400). A run that nobody scraped does not linger at all.",
       Agreement::kPerRank, Show(&MonitoringOptions::linger_seconds),
       [](MonitoringOptions& t, const Value& v) { v.ReadDouble(&t.linger_seconds, 0, 86400); }},
      {"pushgateway", "`host:port`", "none",
       "Also push the metrics to this Prometheus Pushgateway every push_interval_seconds and at "
       "the end (for short jobs or where scraping is impossible).",
       Agreement::kPerRank, Show(&MonitoringOptions::pushgateway),
       [](MonitoringOptions& t, const Value& v) {
         std::string address;
         if (!v.ReadString(&address)) return;
         if (!ValidHostPort(address)) {
           v.Fail("expected host:port, got '" + address + "'");
           return;
         }
         t.pushgateway = address;
       }},
      {"push_interval_seconds", "number", "10", "Seconds between pushes (0.1 to 3600).",
       Agreement::kPerRank, Show(&MonitoringOptions::push_interval_seconds),
       [](MonitoringOptions& t, const Value& v) {
         v.ReadDouble(&t.push_interval_seconds, 0.1, 3600);
       }},
  };
  return table;
}

const FieldTable<StyleEntry>& StyleFields() {
  static const FieldTable<StyleEntry> table = {
      {"name", "string", "file name of `image` without extension",
       "Style name: unique within the job; names its output folder and its metrics.",
       Agreement::kEveryRank, Show(&StyleEntry::name),
       [](StyleEntry& t, const Value& v) {
         if (!v.ReadString(&t.name)) return;
         if (!ValidFolderName(t.name)) {
           v.Fail(std::string(kFolderNameRule) + ", got '" + EscapeForMessage(t.name) + "'");
           t.name.clear();
         }
       }},
      {"image", "path", "required", "The style image (JPEG, PNG, BMP, TGA or GIF).",
       Agreement::kEveryRank, Show(&StyleEntry::image),
       [](StyleEntry& t, const Value& v) { v.ReadString(&t.image); }},
      {"output_dir", "path", "`<job output_dir>/<name>`", "Where this style's files go.",
       Agreement::kEveryRank, Show(&StyleEntry::output_dir),
       [](StyleEntry& t, const Value& v) { v.ReadString(&t.output_dir); }, OnResume::kMayChange},
  };
  return table;
}

namespace {

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string UnknownKeyMessage(const std::string& section, const std::string& key,
                              const std::vector<std::string>& valid) {
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (const auto& candidate : valid) {
    const size_t d = EditDistance(key, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  const std::string where = section.empty() ? "" : " in '" + section + "'";
  std::string message = "unknown key '" + key + "'" + where;
  if (!best.empty() && best_distance <= std::max<size_t>(2, best.size() / 3)) {
    return message + "; did you mean '" + best + "'?";
  }
  std::string list;
  for (const auto& candidate : valid) list += (list.empty() ? "" : ", ") + candidate;
  return message + "; valid keys: " + list;
}

const std::vector<std::string>& JobSections() {
  static const std::vector<std::string> sections = {"job",        "data",       "loss_network",
                                                    "training",   "checkpoint", "distributed",
                                                    "monitoring", "sweep",      "styles"};
  return sections;
}

// Seed-format keys (the TensorFlow project's conf/*.yml).
const std::vector<std::string>& SeedKeys() {
  static const std::vector<std::string> keys = {"style_image",
                                                "naming",
                                                "model_path",
                                                "content_weight",
                                                "style_weight",
                                                "tv_weight",
                                                "image_size",
                                                "batch_size",
                                                "epoch",
                                                "loss_model",
                                                "content_layers",
                                                "style_layers",
                                                "checkpoint_exclude_scopes",
                                                "loss_model_file"};
  return keys;
}

}  // namespace stylefleet::job_loader
