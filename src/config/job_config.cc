#include "config/job_config.h"

#include <yaml-cpp/eventhandler.h>
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

namespace stylefleet {
namespace fs = std::filesystem;
namespace {

// Job files are small; anything larger is a mistake (or an attack on the parser).
constexpr size_t kMaxJobFileBytes = 1 << 20;
constexpr size_t kMaxStyles = 4096;
constexpr size_t kMaxProblems = 100;
// Each validation photo is stylized at every preview and at the end of every run.
constexpr size_t kMaxValidationImages = 8;

// ---------------------------------------------------------------------------
// Problem collection: every problem is kept with its position, so that a user
// sees all of them in one run.

class Problems {
 public:
  explicit Problems(std::string file) : file_(std::move(file)) {}

  void At(const YAML::Mark& mark, const std::string& message) { Add(Where(mark) + message); }
  // "file:line:column: ", or "file: " for a null mark.
  std::string Where(const YAML::Mark& mark) const {
    if (mark.is_null()) return file_ + ": ";
    return file_ + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1) +
           ": ";
  }
  void Add(const std::string& formatted) {
    // A job-wide sweep is checked for each style; its problems are said once.
    if (std::find(list_.begin(), list_.end(), formatted) != list_.end()) return;
    if (list_.size() < kMaxProblems)
      list_.push_back(formatted);
    else
      truncated_ = true;
  }
  const std::string& file() const { return file_; }
  void set_file(const std::string& file) { file_ = file; }
  // A value that could not be read keeps its default, so rules across keys
  // that involve it would report the default, not what was written.
  void MarkUnread(const std::string& path) { unread_.insert(path.substr(path.rfind('.') + 1)); }
  bool AnyUnread(std::initializer_list<const char*> keys) const {
    return std::any_of(keys.begin(), keys.end(), [&](const char* k) { return unread_.count(k); });
  }
  bool empty() const { return list_.empty(); }
  size_t size() const { return list_.size(); }
  const std::vector<std::string>& list() const { return list_; }
  void ThrowIfAny() {
    if (list_.empty()) return;
    if (truncated_)
      list_.push_back(file_ + ": too many problems, only the first " +
                      std::to_string(kMaxProblems) + " are shown");
    throw ConfigError(list_);
  }

 private:
  std::string file_;
  std::vector<std::string> list_;
  bool truncated_ = false;
  std::set<std::string> unread_;  // last components of the paths of values not read
};

// A value being read: the node, the dotted key path for messages, and the sink.
struct Value {
  const YAML::Node& node;
  std::string path;  // e.g. training.batch_size
  Problems& problems;
  // Command-line overrides have no position in a file.
  std::string override_text;
  // Where the value's key is: a blank value (`key:` and nothing after it) has
  // no position of its own, and yaml-cpp marks it at the next token, which may
  // be lines further down.
  YAML::Mark key_mark = YAML::Mark::null_mark();

  void Fail(const std::string& message) const {
    problems.MarkUnread(path);
    if (!override_text.empty()) {
      problems.Add("command line (--set " + override_text + "): " + path + ": " + message);
    } else {
      const bool blank = node.IsNull() && !key_mark.is_null();
      problems.At(blank ? key_mark : node.Mark(), path + ": " + message);
    }
  }

  std::string Describe() const {
    switch (node.Type()) {
      case YAML::NodeType::Null:
        return "nothing";
      case YAML::NodeType::Sequence:
        return "a list";
      case YAML::NodeType::Map:
        return "a mapping";
      case YAML::NodeType::Scalar:
        return node.Tag() == "!" ? "the string \"" + node.Scalar() + "\""
                                 : "'" + node.Scalar() + "'";
      default:
        return "an undefined value";
    }
  }

  // A plain (unquoted) scalar; quoted values are strings, never numbers.
  bool PlainScalar() const { return node.IsScalar() && node.Tag() != "!"; }

  bool ReadString(std::string* out) const {
    if (!node.IsScalar() || node.Scalar().empty()) {
      Fail("expected a non-empty string, got " + Describe());
      return false;
    }
    *out = node.Scalar();
    return true;
  }

  // One of `choices`; otherwise the message lists them.
  bool ReadChoice(std::string* out, const std::vector<std::string>& choices) const {
    const std::string text = node.IsScalar() ? node.Scalar() : "";
    if (std::find(choices.begin(), choices.end(), text) == choices.end()) {
      std::string expected;
      for (size_t i = 0; i < choices.size(); ++i) {
        expected += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + choices[i];
      }
      Fail("expected " + expected + ", got " + (node.IsScalar() ? "'" + text + "'" : Describe()));
      return false;
    }
    *out = text;
    return true;
  }

  template <typename Int>
  bool ReadInt(Int* out, long long min, long long max) const {
    if (!PlainScalar()) {
      Fail("expected an integer, got " + Describe());
      return false;
    }
    const std::string& text = node.Scalar();
    errno = 0;
    char* end = nullptr;
    const long long value = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE) {
      Fail("expected an integer, got " + Describe());
      return false;
    }
    if (value < min || value > max) {
      Fail("must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
           text);
      return false;
    }
    *out = static_cast<Int>(value);
    return true;
  }

  bool ReadDouble(double* out, double min, double max, bool min_exclusive = false) const {
    if (!PlainScalar()) {
      Fail("expected a number, got " + Describe());
      return false;
    }
    const std::string& text = node.Scalar();
    double value = 0;
    const std::string lower = [&] {
      std::string s = text;
      std::transform(s.begin(), s.end(), s.begin(), ::tolower);
      return s;
    }();
    if (lower == ".nan" || lower == "nan") {
      value = std::nan("");
    } else if (lower == ".inf" || lower == "+.inf" || lower == "inf") {
      value = HUGE_VAL;
    } else if (lower == "-.inf" || lower == "-inf") {
      value = -HUGE_VAL;
    } else {
      char* end = nullptr;
      value = std::strtod(text.c_str(), &end);
      if (text.empty() || end != text.c_str() + text.size()) {
        Fail("expected a number, got " + Describe());
        return false;
      }
    }
    if (!std::isfinite(value)) {
      Fail("must be a finite number, got " + text);
      return false;
    }
    if (value < min || value > max || (min_exclusive && value == min)) {
      std::ostringstream range;
      range << "must be " << (min_exclusive ? "> " : ">= ") << min << " and <= " << max << ", got "
            << text;
      Fail(range.str());
      return false;
    }
    *out = value;
    return true;
  }

  bool ReadBool(bool* out) const {
    const std::string text = PlainScalar() ? node.Scalar() : "";
    if (text != "true" && text != "false") {
      Fail("expected true or false, got " + Describe());
      return false;
    }
    *out = text == "true";
    return true;
  }

  // A list of at most `max` distinct non-empty strings (paths, resolved by the caller).
  bool ReadStringList(std::vector<std::string>* out, size_t max) const {
    if (!node.IsSequence()) {
      Fail("expected a list of paths, got " + Describe());
      return false;
    }
    if (node.size() > max) {
      Fail("at most " + std::to_string(max) + " entries, got " + std::to_string(node.size()));
      return false;
    }
    std::vector<std::string> values;
    bool ok = true;
    for (size_t i = 0; i < node.size(); ++i) {
      const YAML::Node item = node[i];
      Value element{item, path + "[" + std::to_string(i) + "]", problems, override_text};
      std::string value;
      if (!element.ReadString(&value)) {
        ok = false;
      } else if (std::find(values.begin(), values.end(), value) != values.end()) {
        element.Fail("'" + value + "' is listed twice");
        ok = false;
      } else {
        values.push_back(value);
      }
    }
    if (ok) *out = values;
    return ok;
  }

  bool ReadLayers(std::vector<std::string>* out) const {
    if (!node.IsSequence() || node.size() == 0) {
      Fail("expected a non-empty list of VGG-16 layer names, got " +
           (node.IsSequence() ? std::string("an empty list") : Describe()));
      return false;
    }
    std::vector<std::string> layers;
    bool ok = true;
    for (size_t i = 0; i < node.size() && i < 64; ++i) {
      const YAML::Node item = node[i];
      Value element{item, path + "[" + std::to_string(i) + "]", problems, override_text};
      std::string name;
      if (!element.ReadString(&name)) {
        ok = false;
        continue;
      }
      const auto index = VggLayerIndex(name);
      if (!index) {
        element.Fail("unknown layer '" + name + "'; valid layers are " + VggLayerNameList() +
                     " (also written relu3_3 or vgg_16/conv3/conv3_3)");
        ok = false;
        continue;
      }
      const std::string& canonical = VggLayerNames()[*index];
      if (std::find(layers.begin(), layers.end(), canonical) != layers.end()) {
        element.Fail("layer '" + name + "' is listed twice");
        ok = false;
        continue;
      }
      layers.push_back(canonical);
    }
    if (node.size() > 64) {
      Fail("too many layers");
      ok = false;
    }
    if (ok) *out = layers;
    return ok;
  }
};

// ---------------------------------------------------------------------------
// Key tables: one entry per key, the single source of the loader and of the docs.

// A value as text that reads back to the same value: what ranks compare and
// what `check` prints. Doubles at 17 significant digits, so 0.01 and
// 0.0100000001 differ.
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

template <typename Target, typename Member>
std::function<std::string(const Target&)> Show(Member Target::*member) {
  return [member](const Target& target) { return ShowValue(target.*member); };
}

// Job and style names become folder names under the output root.
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

const char kFolderNameRule[] =
    "must be UTF-8 text without '/', '\\' or control characters, and not '.' or '..' (it "
    "names a folder)";

template <typename Target>
struct Field {
  std::string key;
  std::string type;
  std::string default_text;
  std::string doc;
  Agreement agreement;
  std::function<std::string(const Target&)> show;
  std::function<void(Target&, const Value&)> read;
  /// Whether a resumed style may go on after this key changed (kPerRank keys
  /// always may); kMustMatch unless the entry says otherwise.
  OnResume on_resume = OnResume::kMustMatch;
};

template <typename Target>
using FieldTable = std::vector<Field<Target>>;

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
       "images. With `convolution: direct` their losses equal those of separate training bit "
       "for bit; with `winograd` oneDNN may choose its blocking by batch (it does on AMD Zen "
       "5), so the first step agrees to float rounding and Adam can grow that to percent-level "
       "differences within a few steps (README, Exactness). Styles are taken in job order; "
       "those "
       "with different batch_size, micro_batches, epochs, max_steps or precision, or resumed at "
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
       "cannot be swept.",
       Agreement::kEveryRank, Show(&JobConfig::network),
       [](JobConfig& t, const Value& v) {
         v.ReadChoice(&t.network, {"per_style", "conditional"});
       }},
      {"base_model", "path", "none",
       "With `network: conditional`: a trained conditional network (model.pt, a checkpoint or "
       "its folder) that the job's styles are added to. Its convolutions and its styles' rows "
       "are frozen (those styles stay bit-identical); only the new styles' rows train. The "
       "job's styles must not repeat its style names. The new model holds its styles followed "
       "by the job's.",
       Agreement::kEveryRank, Show(&JobConfig::base_model),
       [](JobConfig& t, const Value& v) { v.ReadString(&t.base_model); }},
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

bool ValidHostPort(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 >= text.size()) return false;
  const std::string port = text.substr(colon + 1);
  return port.size() <= 5 && port.find_first_not_of("0123456789") == std::string::npos &&
         std::stoi(port) <= 65535;
}

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

// Keys of one entry of `styles:` besides the training overrides.
struct StyleEntry {
  std::string name;
  std::string image;
  std::string output_dir;
};

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

// ---------------------------------------------------------------------------

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

template <typename Target>
std::vector<std::string> KeysOf(const FieldTable<Target>& table) {
  std::vector<std::string> keys;
  for (const auto& f : table) keys.push_back(f.key);
  return keys;
}

template <typename Target>
const Field<Target>* FindField(const FieldTable<Target>& table, const std::string& key) {
  for (const auto& f : table) {
    if (f.key == key) return &f;
  }
  return nullptr;
}

// Reads the keys of `map` that `table` knows into `target`. Keys listed in
// `handled_elsewhere` are skipped (the caller reads them); other keys are
// errors with a suggestion from `suggest_from`.
template <typename Target>
void ReadMap(const YAML::Node& map, const std::string& section, const FieldTable<Target>& table,
             Target& target, Problems& problems, std::set<std::string>* seen_keys = nullptr,
             const std::vector<std::string>& handled_elsewhere = {},
             const std::vector<std::string>& extra_suggestions = {}) {
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node key_node = it->first;
    const YAML::Node value_node = it->second;
    if (!key_node.IsScalar()) {
      problems.At(key_node.Mark(), "keys must be plain names");
      continue;
    }
    const std::string key = key_node.Scalar();
    const std::string path = section.empty() ? key : section + "." + key;
    if (!seen.insert(key).second) {
      problems.At(key_node.Mark(), "duplicate key '" + path + "'");
      continue;
    }
    if (std::find(handled_elsewhere.begin(), handled_elsewhere.end(), key) !=
        handled_elsewhere.end()) {
      continue;
    }
    const Field<Target>* field = FindField(table, key);
    if (field == nullptr) {
      std::vector<std::string> valid = KeysOf(table);
      valid.insert(valid.end(), handled_elsewhere.begin(), handled_elsewhere.end());
      valid.insert(valid.end(), extra_suggestions.begin(), extra_suggestions.end());
      problems.At(key_node.Mark(), UnknownKeyMessage(section, key, valid));
      continue;
    }
    field->read(target, Value{value_node, path, problems, "", key_node.Mark()});
  }
  if (seen_keys != nullptr) seen_keys->insert(seen.begin(), seen.end());
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

std::string ResolvePath(const std::string& path, const fs::path& base) {
  if (path.empty() || path.rfind("random:", 0) == 0) return path;
  fs::path p(path);
  if (p.is_relative()) p = base / p;
  return p.lexically_normal().string();
}

std::string Stem(const std::string& path) { return fs::path(path).stem().string(); }

// yaml-cpp recurses once per level of flow nesting and gives up past its limit
// with "bad file": say what is wrong instead. Returns the 0-based offset where
// the nesting first exceeds kMaxNesting, or npos.
constexpr int kMaxNesting = 256;
size_t ExcessiveNesting(const std::string& text) {
  int depth = 0;
  char quote = 0;
  bool comment = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (comment) {
      comment = c != '\n';
    } else if (quote != 0) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '#') {
      comment = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxNesting) return i;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return std::string::npos;
}

// Where the first thing of a document after the first is (null when none
// holds anything). Read as parser events, never as nodes, and at most
// kMaxDocuments of them: yaml-cpp 0.7's LoadAll never returns on some inputs
// (", x" yields empty documents without end; found by the fuzzer).
YAML::Mark SecondDocumentContent(const std::string& text) {
  class FirstContent : public YAML::EventHandler {
   public:
    int documents = 0;
    YAML::Mark found = YAML::Mark::null_mark();

   private:
    void Content(const YAML::Mark& mark) {
      if (documents > 1 && found.is_null()) found = mark;
    }
    void OnDocumentStart(const YAML::Mark&) override { ++documents; }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Content(mark); }
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  const std::string&) override {
      Content(mark);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {
      Content(mark);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {
      Content(mark);
    }
    void OnMapEnd() override {}
  };
  constexpr int kMaxDocuments = 64;
  std::istringstream in(text);
  YAML::Parser parser(in);
  FirstContent handler;
  for (int i = 0; i < kMaxDocuments && handler.found.is_null(); ++i) {
    if (!parser.HandleNextDocument(handler)) break;
  }
  return handler.found;
}

YAML::Node ParseYaml(const std::string& text, Problems& problems) {
  const size_t deep = ExcessiveNesting(text);
  if (deep != std::string::npos) {
    const size_t line_start = text.rfind('\n', deep);
    YAML::Mark mark;
    mark.line = static_cast<int>(std::count(text.begin(), text.begin() + deep, '\n'));
    mark.column = static_cast<int>(line_start == std::string::npos ? deep : deep - line_start - 1);
    problems.At(mark, "lists and mappings are nested more than " + std::to_string(kMaxNesting) +
                          " levels deep here; a job file never needs that (is it a job file?)");
    return YAML::Node();
  }
  try {
    YAML::Node document = YAML::Load(text);
    // A second document would otherwise be dropped without a word (a job
    // pasted after another, say); an empty one after '---' changes nothing.
    const YAML::Mark second = SecondDocumentContent(text);
    if (!second.is_null()) {
      problems.At(second,
                  "a second YAML document starts here (after '---'); a job file holds one job: "
                  "split it into two files, or remove the '---' line");
      return YAML::Node();
    }
    return document;
  } catch (const YAML::ParserException& e) {
    problems.At(e.mark, "YAML syntax error: " + e.msg);
  } catch (const YAML::Exception& e) {
    problems.At(e.mark, "YAML error: " + e.msg);
  }
  return YAML::Node();
}

// Where a job value came from, for cross-field messages.
struct Origins {
  YAML::Mark content_dir, weights, output_dir;
  /// Where data.content_dir came from when not from the file: "command line
  /// (--content)" or "command line (--set data.content_dir=...)".
  std::string content_dir_given;
  std::vector<YAML::Mark> validation_images;  ///< one per entry; empty from the command line
};

// "file:line:column: " of data.content_dir, or the command-line option that set it.
std::string ContentDirWhere(const Origins& origins, const Problems& problems) {
  return origins.content_dir_given.empty() ? problems.Where(origins.content_dir)
                                           : origins.content_dir_given + ": ";
}

// Relative validation photos are found like the other paths: against `base`.
void ResolveValidationImages(DataOptions& data, const fs::path& base) {
  for (std::string& path : data.validation_images) path = ResolvePath(path, base);
}

// ---------------------------------------------------------------------------
// Seed-format files.

// Reads one seed-format file. The style it describes is returned in `style`;
// job-level keys (image size, layers, loss network, output folder) go to `job`.
void ReadSeedFile(const YAML::Node& root, JobConfig& job, StyleSpec& style, Origins& origins,
                  Problems& problems) {
  const fs::path cwd = fs::current_path();
  std::set<std::string> seen;
  std::string naming, model_path = "models";
  for (auto it = root.begin(); it != root.end(); ++it) {
    const YAML::Node key_node = it->first;
    const YAML::Node value_node = it->second;
    if (!key_node.IsScalar()) {
      problems.At(key_node.Mark(), "keys must be plain names");
      continue;
    }
    const std::string key = key_node.Scalar();
    if (!seen.insert(key).second) {
      problems.At(key_node.Mark(), "duplicate key '" + key + "'");
      continue;
    }
    const Value v{value_node, key, problems, ""};
    if (key == "style_image") {
      if (v.ReadString(&style.image)) style.image = ResolvePath(style.image, cwd);
      style.origin = problems.file() + ":" + std::to_string(value_node.Mark().line + 1) + ":" +
                     std::to_string(value_node.Mark().column + 1);
    } else if (key == "naming") {
      v.ReadString(&naming);
    } else if (key == "model_path") {
      v.ReadString(&model_path);
      origins.output_dir = value_node.Mark();
    } else if (key == "content_weight") {
      TrainingFields()[0].read(job.training, v);
    } else if (key == "style_weight") {
      TrainingFields()[1].read(job.training, v);
    } else if (key == "tv_weight") {
      TrainingFields()[2].read(job.training, v);
    } else if (key == "batch_size") {
      FindField(TrainingFields(), "batch_size")->read(job.training, v);
    } else if (key == "epoch") {
      FindField(TrainingFields(), "epochs")->read(job.training, v);
    } else if (key == "image_size") {
      FindField(DataFields(), "image_size")->read(job.data, v);
    } else if (key == "content_layers") {
      v.ReadLayers(&job.loss_network.content_layers);
    } else if (key == "style_layers") {
      v.ReadLayers(&job.loss_network.style_layers);
    } else if (key == "loss_model") {
      std::string model;
      if (v.ReadString(&model) && model != "vgg_16") {
        v.Fail("only 'vgg_16' is supported, got '" + model + "'");
      }
    } else if (key == "loss_model_file") {
      if (v.ReadString(&job.loss_network.weights)) {
        job.loss_network.weights = ResolvePath(job.loss_network.weights, cwd);
      }
      origins.weights = value_node.Mark();
    } else if (key == "checkpoint_exclude_scopes") {
      // TF-slim detail (which variables not to restore); meaningless here.
    } else {
      problems.At(key_node.Mark(), UnknownKeyMessage("", key, SeedKeys()));
    }
  }
  for (const char* required : {"style_image", "naming"}) {
    if (!seen.count(required)) {
      problems.At(root.Mark(), std::string("missing required key '") + required + "'");
    }
  }
  style.name = naming;
  if (!naming.empty() && naming.find_first_of("/\\") != std::string::npos) {
    problems.At(root.Mark(), "naming must not contain '/' or '\\', got '" + naming + "'");
  }
  job.output_dir = ResolvePath(model_path, cwd);
  style.output_dir = (fs::path(job.output_dir) / naming).lexically_normal().string();
  if (style.origin.empty()) style.origin = problems.file();
}

// ---------------------------------------------------------------------------
// Overrides from the command line.

struct Override {
  std::string text;  // as given
  std::vector<std::string> path;
  YAML::Node value;
};

bool ParseOverrideValue(const std::string& text, const std::string& where, Override& o,
                        Problems& problems) {
  try {
    o.value = YAML::Load(text);
    return true;
  } catch (const YAML::Exception& e) {
    problems.Add(where + "value is not valid YAML: " + e.msg);
    return false;
  }
}

std::vector<Override> ParseOverrides(const std::vector<std::string>& texts, Problems& problems) {
  std::vector<Override> out;
  for (const auto& text : texts) {
    const auto eq = text.find('=');
    const std::string where = "command line (--set " + text + "): ";
    if (eq == std::string::npos || eq == 0) {
      problems.Add(where + "expected section.key=value");
      continue;
    }
    Override o;
    o.text = text;
    std::stringstream keys(text.substr(0, eq));
    std::string part;
    while (std::getline(keys, part, '.')) o.path.push_back(part);
    if (o.path.size() < 2) {
      problems.Add(where + "expected section.key=value, e.g. training.batch_size=8");
      continue;
    }
    // A style's name may hold '.' and '=' (sweep runs): styles.NAME.key=value
    // is split once the job's names are known (ApplyStyleOverrides).
    if (o.path[0] != "styles" && !ParseOverrideValue(text.substr(eq + 1), where, o, problems)) {
      continue;
    }
    out.push_back(o);
  }
  return out;
}

// `styles.NAME.key=value` with NAME the longest style, run or sweep name of
// `job` that fits; false when none does.
bool SplitStyleOverride(const Override& o, const JobConfig& job, Override& split,
                        Problems& problems) {
  const std::string rest = o.text.substr(std::string("styles.").size());
  std::string name;
  for (const auto& style : job.styles) {
    for (const std::string* candidate : {&style.name, &style.sweep}) {
      if (!candidate->empty() && candidate->size() > name.size() &&
          rest.compare(0, candidate->size() + 1, *candidate + ".") == 0) {
        name = *candidate;
      }
    }
  }
  if (name.empty()) return false;
  const std::string tail = rest.substr(name.size() + 1);
  const size_t eq = tail.find('=');
  split = o;
  split.path = {"styles", name, eq == std::string::npos ? tail : tail.substr(0, eq)};
  const std::string where = "command line (--set " + o.text + "): ";
  if (eq == std::string::npos || eq == 0 || tail.substr(0, eq).find('.') != std::string::npos) {
    problems.Add(where + "expected styles.NAME.key=value");
    split.path.clear();
    return true;
  }
  if (!ParseOverrideValue(tail.substr(eq + 1), where, split, problems)) split.path.clear();
  return true;
}

template <typename Target>
bool ApplyOverride(const Override& o, const std::string& section, const FieldTable<Target>& table,
                   Target& target, Problems& problems) {
  const std::string& key = o.path.back();
  const Field<Target>* field = FindField(table, key);
  if (field == nullptr) {
    problems.Add("command line (--set " + o.text +
                 "): " + UnknownKeyMessage(section, key, KeysOf(table)));
    return false;
  }
  field->read(target, Value{o.value, section + "." + key, problems, o.text});
  return true;
}

// Job-level overrides (every section but styles).
void ApplyJobOverrides(const std::vector<Override>& overrides, JobConfig& job, Origins& origins,
                       const fs::path& cwd, Problems& problems) {
  for (const auto& o : overrides) {
    const std::string& section = o.path[0];
    if (section == "styles") continue;
    const std::string where = "command line (--set " + o.text + "): ";
    if (section == "sweep") {  // any depth: sweep.max_runs, sweep.grid.style_weight, ...
      problems.Add(where +
                   "the sweep section is set in the job file only (its lists do not fit "
                   "a command line); edit the file, or pass --set styles.NAME.KEY=VALUE "
                   "for one value");
      continue;
    }
    if (o.path.size() != 2) {
      problems.Add(where + "expected section.key=value");
      continue;
    }
    const std::string& key = o.path[1];
    if (section == "job") {
      ApplyOverride(o, section, JobFields(), job, problems);
      if (key == "output_dir") {
        job.output_dir = ResolvePath(job.output_dir, cwd);
        origins.output_dir = YAML::Mark::null_mark();
      }
      if (key == "base_model" && !job.base_model.empty())
        job.base_model = ResolvePath(job.base_model, cwd);
    } else if (section == "data") {
      ApplyOverride(o, section, DataFields(), job.data, problems);
      if (key == "content_dir") {
        job.data.content_dir = ResolvePath(job.data.content_dir, cwd);
        origins.content_dir = YAML::Mark::null_mark();
        origins.content_dir_given = "command line (--set " + o.text + ")";
      }
      if (key == "validation_images") {
        ResolveValidationImages(job.data, cwd);
        origins.validation_images.clear();
      }
    } else if (section == "loss_network") {
      ApplyOverride(o, section, LossNetworkFields(), job.loss_network, problems);
      if (key == "weights") {
        job.loss_network.weights = ResolvePath(job.loss_network.weights, cwd);
        origins.weights = YAML::Mark::null_mark();
      }
    } else if (section == "training") {
      ApplyOverride(o, section, TrainingFields(), job.training, problems);
    } else if (section == "checkpoint") {
      ApplyOverride(o, section, CheckpointFields(), job.checkpoint, problems);
    } else if (section == "distributed") {
      ApplyOverride(o, section, DistributedFields(), job.distributed, problems);
    } else if (section == "monitoring") {
      ApplyOverride(o, section, MonitoringFields(), job.monitoring, problems);
    } else {
      problems.Add(where + UnknownKeyMessage("", section, JobSections()));
    }
  }
}

// `styles.NAME.key=value`: NAME is a style, a run of a sweep (names may hold
// dots), or a swept style, which changes every run of its sweep.
void ApplyStyleOverrides(const std::vector<Override>& overrides, JobConfig& job,
                         const fs::path& cwd, Problems& problems) {
  for (const auto& given : overrides) {
    if (given.path[0] != "styles") continue;
    const std::string where = "command line (--set " + given.text + "): ";
    Override o;
    if (!SplitStyleOverride(given, job, o, problems)) {
      const bool run_name = given.text.substr(0, given.text.find('=')).find('/') !=
                            std::string::npos;  // NAME=VALUE parts: the split is not known
      if (given.path.size() < 3 && !run_name) {
        problems.Add(where + "expected styles.NAME.key=value");
      } else if (given.path.size() < 3) {
        std::string names;
        for (const auto& s : job.styles) names += (names.empty() ? "" : ", ") + s.name;
        problems.Add(where +
                     "no style or sweep run of that name; expected styles.NAME.key=value with "
                     "NAME one of " +
                     names);
      } else {
        std::string names;
        for (const auto& s : job.styles) names += (names.empty() ? "" : ", ") + s.name;
        problems.Add(where + "no style named '" + given.path[1] + "'; styles are " + names);
      }
      continue;
    }
    if (o.path.empty()) continue;  // reported
    const std::string& name = o.path[1];
    const std::string& key = o.path[2];
    std::vector<StyleSpec*> targets;
    for (auto& s : job.styles) {
      if (s.name == name || s.sweep == name) targets.push_back(&s);
    }
    if (key == "name") {
      problems.Add(where + "a style cannot be renamed from the command line");
      continue;
    }
    for (StyleSpec* style : targets) {
      const bool swept = std::any_of(style->swept.begin(), style->swept.end(),
                                     [&](const auto& pair) { return pair.first == key; });
      if (swept) {
        problems.Add(where + "'" + key + "' is swept in style '" + style->sweep +
                     "'; change its values in the job file's sweep");
        break;
      }
      if (key == "image" || key == "output_dir") {
        StyleEntry entry{style->name, style->image, style->output_dir};
        ApplyOverride(o, "styles." + name, StyleFields(), entry, problems);
        style->image = ResolvePath(entry.image, cwd);
        style->output_dir = ResolvePath(entry.output_dir, cwd);
        // A whole sweep moves: each run keeps its own folder below the new one.
        if (key == "output_dir" && style->sweep == name && style->name != name) {
          style->output_dir = (fs::path(style->output_dir) / style->name.substr(name.size() + 1))
                                  .lexically_normal()
                                  .string();
        }
      } else {
        ApplyOverride(o, "styles." + name, TrainingFields(), style->training, problems);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Job-format files.

void ReadJobFile(const YAML::Node& root, JobConfig& job, Origins& origins, const fs::path& base,
                 const std::vector<Override>& overrides, Problems& problems) {
  std::set<std::string> seen;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const YAML::Node key_node = it->first;
    const YAML::Node value = it->second;
    if (!key_node.IsScalar()) {
      problems.At(key_node.Mark(), "keys must be plain names");
      continue;
    }
    const std::string key = key_node.Scalar();
    if (!seen.insert(key).second) {
      problems.At(key_node.Mark(), "duplicate section '" + key + "'");
      continue;
    }
    if (key == "styles" || key == "sweep") continue;  // read after the defaults are final
    const bool known =
        std::find(JobSections().begin(), JobSections().end(), key) != JobSections().end();
    if (!known) {
      problems.At(key_node.Mark(), UnknownKeyMessage("", key, JobSections()));
      continue;
    }
    if (!value.IsMap()) {
      problems.At(value.Mark(), "'" + key + "' must be a mapping of keys");
      continue;
    }
    if (key == "job") {
      ReadMap(value, key, JobFields(), job, problems);
      if (value["output_dir"]) origins.output_dir = value["output_dir"].Mark();
    } else if (key == "data") {
      std::set<std::string> keys;
      ReadMap(value, key, DataFields(), job.data, problems, &keys);
      if (keys.count("content_dir")) origins.content_dir = value["content_dir"].Mark();
      const YAML::Node photos = value["validation_images"];
      if (photos && photos.IsSequence()) {
        for (const auto& photo : photos) origins.validation_images.push_back(photo.Mark());
      }
    } else if (key == "loss_network") {
      ReadMap(value, key, LossNetworkFields(), job.loss_network, problems);
      if (value["weights"]) origins.weights = value["weights"].Mark();
    } else if (key == "training") {
      ReadMap(value, key, TrainingFields(), job.training, problems);
    } else if (key == "checkpoint") {
      ReadMap(value, key, CheckpointFields(), job.checkpoint, problems);
    } else if (key == "distributed") {
      ReadMap(value, key, DistributedFields(), job.distributed, problems);
    } else if (key == "monitoring") {
      ReadMap(value, key, MonitoringFields(), job.monitoring, problems);
    }
  }
  job.data.content_dir = ResolvePath(job.data.content_dir, base);
  job.loss_network.weights = ResolvePath(job.loss_network.weights, base);
  ResolveValidationImages(job.data, base);
  if (job.name.empty()) job.name = Stem(problems.file());
  job.output_dir = job.output_dir.empty() ? ResolvePath("runs/" + job.name, base)
                                          : ResolvePath(job.output_dir, base);
  if (!job.base_model.empty()) job.base_model = ResolvePath(job.base_model, base);
  if (!seen.count("data") || job.data.content_dir.empty()) {
    if (std::none_of(overrides.begin(), overrides.end(), [](const Override& o) {
          return o.path.size() == 2 && o.path[0] == "data" && o.path[1] == "content_dir";
        })) {
      problems.At(root.Mark(), "missing required key 'data.content_dir'");
    }
  }
  if (job.loss_network.weights.empty() &&
      std::none_of(overrides.begin(), overrides.end(), [](const Override& o) {
        return o.path.size() == 2 && o.path[0] == "loss_network" && o.path[1] == "weights";
      })) {
    problems.At(root.Mark(),
                "missing required key 'loss_network.weights' (a weights file or random:SEED)");
  }
  if (!seen.count("styles")) {
    problems.At(root.Mark(), "missing required section 'styles' (a list of styles to train)");
  }
}

// Training keys whose default is another section's value take it before the
// styles copy the defaults, so that every loaded style holds concrete values.
void ResolveTrainingDefaults(JobConfig& job) {
  if (job.training.style_image_size == 0) job.training.style_image_size = job.data.image_size;
  if (job.training.style_layers.empty()) job.training.style_layers = job.loss_network.style_layers;
}

// ---------------------------------------------------------------------------
// Sweeps: a `sweep:` mapping (job-wide, or in one style) makes a style one run
// per combination of values of training keys.

constexpr int kDefaultMaxSweepRuns = 64;
constexpr size_t kMaxSweepValues = 256;

// One axis of a sweep: a grid key with its values, or the zipped keys, whose
// i-th values go together. points[i][k] is the i-th value of keys[k].
struct SweepAxis {
  std::vector<std::string> keys;
  std::vector<std::vector<YAML::Node>> points;
  std::vector<std::string> paths;  // "sweep.grid.style_weight", per key, for messages
};

struct Sweep {
  std::vector<SweepAxis> axes;  // empty: not swept
  // texts[a][i]: "KEY=VALUE,..." of point i of axis a, as it appears in run names.
  std::vector<std::vector<std::string>> texts;
  int max_runs = kDefaultMaxSweepRuns;
  std::string where;  // "sweep" or "styles[].sweep"
  YAML::Mark mark;
};

// Reads `key: [values]` pairs of a grid or zip mapping; false on a problem.
bool ReadSweepLists(const YAML::Node& map, const std::string& path, Problems& problems,
                    std::set<std::string>& swept_keys,
                    std::vector<std::pair<std::string, YAML::Node>>& lists) {
  if (!map.IsMap() || map.size() == 0) {
    problems.At(map.Mark(), path + ": expected a mapping of training keys to lists of values");
    return false;
  }
  bool ok = true;
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (!it->first.IsScalar()) {
      problems.At(it->first.Mark(), "keys must be plain names");
      ok = false;
      continue;
    }
    const std::string key = it->first.Scalar();
    if (FindField(TrainingFields(), key) == nullptr) {
      problems.At(it->first.Mark(), UnknownKeyMessage(path, key, KeysOf(TrainingFields())) +
                                        " (a sweep varies training keys)");
      ok = false;
      continue;
    }
    if (!swept_keys.insert(key).second) {
      problems.At(it->first.Mark(), path + "." + key + ": '" + key + "' is swept twice");
      ok = false;
      continue;
    }
    const YAML::Node values = it->second;
    if (!values.IsSequence() || values.size() == 0 || values.size() > kMaxSweepValues) {
      problems.At(values.Mark(), path + "." + key + ": expected a list of 1 to " +
                                     std::to_string(kMaxSweepValues) + " values");
      ok = false;
      continue;
    }
    lists.emplace_back(key, values);
  }
  return ok;
}

void CheckSweepValues(Sweep& sweep, Problems& problems);

Sweep ReadSweep(const YAML::Node& node, const std::string& where, Problems& problems) {
  Sweep sweep;
  sweep.where = where;
  sweep.mark = node.Mark();
  // `sweep:` left empty (or `{}`) in a style: that style is not swept.
  if (node.IsNull() || (node.IsMap() && node.size() == 0)) return sweep;
  if (!node.IsMap()) {
    problems.At(node.Mark(), where + ": expected a mapping with grid, zip and max_runs");
    return sweep;
  }
  std::set<std::string> swept_keys;
  bool ok = true;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
    if (key == "grid") {
      std::vector<std::pair<std::string, YAML::Node>> lists;
      ok = ReadSweepLists(it->second, where + ".grid", problems, swept_keys, lists) && ok;
      for (const auto& [name, values] : lists) {
        SweepAxis axis;
        axis.keys = {name};
        axis.paths = {where + ".grid." + name};
        for (size_t i = 0; i < values.size(); ++i) axis.points.push_back({values[i]});
        sweep.axes.push_back(axis);
      }
    } else if (key == "zip") {
      std::vector<std::pair<std::string, YAML::Node>> lists;
      ok = ReadSweepLists(it->second, where + ".zip", problems, swept_keys, lists) && ok;
      if (lists.empty()) continue;
      SweepAxis axis;
      for (const auto& [name, values] : lists) {
        axis.keys.push_back(name);
        axis.paths.push_back(where + ".zip." + name);
        if (values.size() != lists.front().second.size()) {
          problems.At(values.Mark(), where + ".zip." + name + ": has " +
                                         std::to_string(values.size()) + " values but zip." +
                                         lists.front().first + " has " +
                                         std::to_string(lists.front().second.size()) +
                                         "; zipped lists go together value by value, so they "
                                         "must be equally long");
          ok = false;
        }
      }
      if (!ok) continue;
      for (size_t i = 0; i < lists.front().second.size(); ++i) {
        std::vector<YAML::Node> point;
        for (const auto& list : lists) point.push_back(list.second[i]);
        axis.points.push_back(point);
      }
      sweep.axes.push_back(axis);
    } else if (key == "max_runs") {
      Value{it->second, where + ".max_runs", problems, "", it->first.Mark()}.ReadInt(
          &sweep.max_runs, 1, static_cast<long long>(kMaxStyles));
    } else {
      problems.At(it->first.Mark(),
                  UnknownKeyMessage(where, key.empty() ? "?" : key, {"grid", "zip", "max_runs"}));
      ok = false;
    }
  }
  if (!ok) sweep.axes.clear();
  CheckSweepValues(sweep, problems);
  return sweep;
}

// A swept value as it appears in run names and folders: the scalar as
// written, a list's items joined by '+'. Empty when it cannot name a folder.
std::string SweptValueText(const YAML::Node& node) {
  std::string text;
  if (node.IsScalar()) {
    text = node.Scalar();
  } else if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) {
      if (!node[i].IsScalar()) return "";
      text += (i ? "+" : "") + node[i].Scalar();
    }
  }
  const bool plain = !text.empty() && text.size() <= 64 &&
                     text.find_first_not_of(
                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                         "0123456789._+-") == std::string::npos &&
                     text != "." && text != "..";
  return plain ? text : "";
}

// Reads (and names) every value of `sweep` once, when the sweep is read, so
// that a bad value is reported once and a job-wide sweep costs each style only
// its runs. Clears the axes when a value is bad.
void CheckSweepValues(Sweep& sweep, Problems& problems) {
  // Every value is read (and named) once, so that a bad one is reported once.
  bool ok = true;
  std::vector<std::vector<std::string>>& texts = sweep.texts;
  texts.assign(sweep.axes.size(), {});
  for (size_t a = 0; a < sweep.axes.size(); ++a) {
    const SweepAxis& axis = sweep.axes[a];
    for (size_t i = 0; i < axis.points.size(); ++i) {
      std::string text;
      for (size_t k = 0; k < axis.keys.size(); ++k) {
        const YAML::Node& node = axis.points[i][k];
        const std::string path = axis.paths[k] + "[" + std::to_string(i) + "]";
        TrainingOptions scratch;
        Problems read_problems(problems.file());
        FindField(TrainingFields(), axis.keys[k])
            ->read(scratch, Value{node, path, read_problems, ""});
        if (!read_problems.empty()) {
          for (const auto& p : read_problems.list()) problems.Add(p);
          ok = false;
          continue;
        }
        const std::string value = SweptValueText(node);
        if (value.empty()) {
          ok = false;
          problems.At(node.Mark(), path +
                                       ": this value names the run's folder; write it with "
                                       "letters, digits, '.', '_', '+' and '-' only (at most 64)");
        }
        text += (k ? "," : "") + axis.keys[k] + "=" + value;
      }
      texts[a].push_back(text);
    }
  }
  if (!ok) sweep.axes.clear();
}

// Adds `style` to the job: as it is when `sweep` has no axes, else as one run
// per combination (first axis slowest), named STYLE/KEY=VALUE,KEY=VALUE.
void AddStyleRuns(const StyleSpec& style, const Sweep& sweep, JobConfig& job, Problems& problems) {
  if (sweep.axes.empty()) {
    job.styles.push_back(style);
    return;
  }
  size_t runs = 1;
  std::string shape;
  for (const SweepAxis& axis : sweep.axes) {
    runs = std::min(runs * axis.points.size(), kMaxStyles + 1);
    std::string keys;
    for (const auto& key : axis.keys) keys += (keys.empty() ? "" : "+") + key;
    shape += (shape.empty() ? "" : " x ") + std::to_string(axis.points.size()) + " " + keys;
  }
  if (runs > static_cast<size_t>(sweep.max_runs)) {
    problems.At(
        sweep.mark,
        sweep.where + ": the sweep " +
            (sweep.where == "sweep" ? std::string("of every style")
                                    : "of style '" + style.name + "'") +
            " makes " +
            (runs > kMaxStyles ? "more than " + std::to_string(kMaxStyles) : std::to_string(runs)) +
            " runs (" + shape + "), more than max_runs " + std::to_string(sweep.max_runs) +
            "; sweep fewer values, or raise " + sweep.where + ".max_runs");
    return;
  }
  if (job.styles.size() + runs > kMaxStyles) {
    problems.At(sweep.mark, sweep.where + ": the job would have more than " +
                                std::to_string(kMaxStyles) + " styles and sweep runs");
    return;
  }
  std::set<std::string> settings_seen;
  for (size_t r = 0; r < runs; ++r) {
    StyleSpec run = style;
    std::string suffix;
    size_t rest = r;
    std::vector<size_t> index(sweep.axes.size());
    for (size_t a = sweep.axes.size(); a-- > 0;) {
      index[a] = rest % sweep.axes[a].points.size();
      rest /= sweep.axes[a].points.size();
    }
    for (size_t a = 0; a < sweep.axes.size(); ++a) {
      const SweepAxis& axis = sweep.axes[a];
      for (size_t k = 0; k < axis.keys.size(); ++k) {
        const YAML::Node& node = axis.points[index[a]][k];
        FindField(TrainingFields(), axis.keys[k])
            ->read(run.training, Value{node, axis.paths[k], problems, ""});
        run.swept.emplace_back(axis.keys[k], SweptValueText(node));
      }
      suffix += (suffix.empty() ? "" : ",") + sweep.texts[a][index[a]];
    }
    run.sweep = style.name;
    run.name = style.name + "/" + suffix;
    run.output_dir = (fs::path(style.output_dir) / suffix).lexically_normal().string();
    std::string settings;
    for (const auto& f : TrainingFields()) settings += f.key + "=" + f.show(run.training) + "\n";
    if (!settings_seen.insert(settings).second) {
      problems.At(sweep.mark, sweep.where + ": run '" + run.name +
                                  "' trains with the same settings as an earlier run of the "
                                  "sweep (a value listed twice, e.g. 50 and 50.0)");
      return;
    }
    job.styles.push_back(run);
  }
}

void ReadStyleMap(const YAML::Node& item, JobConfig& job, const fs::path& base,
                  const Sweep& job_sweep, Problems& problems) {
  StyleSpec style;
  style.training = job.training;
  style.origin = problems.file() + ":" + std::to_string(item.Mark().line + 1) + ":" +
                 std::to_string(item.Mark().column + 1);
  StyleEntry entry;
  std::set<std::string> keys;
  // Style keys and training overrides share one mapping: read each with its table.
  std::vector<std::string> training_keys = KeysOf(TrainingFields());
  training_keys.push_back("sweep");
  ReadMap(item, "styles[]", StyleFields(), entry, problems, &keys, training_keys);
  std::vector<std::string> style_keys = KeysOf(StyleFields());
  for (auto it = item.begin(); it != item.end(); ++it) {
    if (!it->first.IsScalar()) continue;
    const Field<TrainingOptions>* field = FindField(TrainingFields(), it->first.Scalar());
    if (field != nullptr) {
      field->read(style.training,
                  Value{it->second, "styles[]." + field->key, problems, "", it->first.Mark()});
    }
  }
  if (!keys.count("image")) {
    problems.At(item.Mark(), "style is missing required key 'image'");
    return;
  }
  style.image = ResolvePath(entry.image, base);
  style.name = entry.name.empty() ? Stem(entry.image) : entry.name;
  // A name from the image's file name follows the rules of a written one:
  // `...png` gave '..', whose outputs landed beside the job's output folder
  // (issue 32). Text that is not plain is said by ValidateRecordedText.
  if (entry.name.empty() && IsPlainText(style.name) && !ValidFolderName(style.name)) {
    problems.At(item.Mark(), "style name '" + style.name + "' (from the image file '" +
                                 EscapeForMessage(entry.image) + "') " + kFolderNameRule +
                                 "; set the style's name: key");
    return;
  }
  style.output_dir = entry.output_dir.empty()
                         ? (fs::path(job.output_dir) / style.name).lexically_normal().string()
                         : ResolvePath(entry.output_dir, base);
  if (keys.count("sweep")) {
    AddStyleRuns(style, ReadSweep(item["sweep"], "styles[].sweep", problems), job, problems);
  } else {
    AddStyleRuns(style, job_sweep, job, problems);
  }
}

// A style given as the path of a seed-format file: its style, weights and
// training values become this style's; its job-level values must agree with the job.
void ReadSeedStyle(const YAML::Node& item, JobConfig& job, const fs::path& base,
                   const Sweep& job_sweep, Problems& problems) {
  std::string relative;
  const Value v{item, "styles[]", problems, ""};
  if (!v.ReadString(&relative)) return;
  const std::string path = ResolvePath(relative, base);
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    v.Fail("cannot open seed-style file '" + path + "' (missing, or not a file)");
    return;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    v.Fail("cannot open seed-style file '" + path + "'");
    return;
  }
  std::stringstream text;
  text << in.rdbuf();
  Problems inner(path);
  const YAML::Node root = ParseYaml(text.str(), inner);
  if (inner.empty() && !root.IsMap()) {
    inner.Add(path + ":1:1: expected a mapping of seed keys (style_image, naming, ...)");
  }
  if (inner.empty()) {
    JobConfig seed_job;
    seed_job.training = job.training;
    seed_job.data = job.data;
    seed_job.loss_network = job.loss_network;
    StyleSpec style;
    Origins unused;
    ReadSeedFile(root, seed_job, style, unused, inner);
    if (inner.empty()) {
      auto differs = [&](const std::string& what) {
        v.Fail("seed-style file '" + relative + "' sets " + what +
               " differently from the job; one job shares one content pipeline and loss "
               "network, so put it in its own job");
      };
      if (seed_job.data.image_size != job.data.image_size) differs("image_size");
      if (seed_job.loss_network.content_layers != job.loss_network.content_layers)
        differs("content_layers");
      if (seed_job.loss_network.style_layers != job.loss_network.style_layers)
        differs("style_layers");
      style.training = seed_job.training;
      style.output_dir = (fs::path(job.output_dir) / style.name).lexically_normal().string();
      AddStyleRuns(style, job_sweep, job, problems);
    }
  }
  // Problems inside the listed file are reported with that file's positions.
  try {
    inner.ThrowIfAny();
  } catch (const ConfigError& e) {
    for (const auto& p : e.problems()) problems.Add(p);
  }
}

void ReadStyles(const YAML::Node& list, JobConfig& job, const fs::path& base,
                const Sweep& job_sweep, Problems& problems) {
  if (!list.IsSequence() || list.size() == 0) {
    problems.At(list.Mark(), "'styles' must be a non-empty list of styles");
    return;
  }
  if (list.size() > kMaxStyles) {
    problems.At(list.Mark(), "too many styles (" + std::to_string(list.size()) + "); at most " +
                                 std::to_string(kMaxStyles));
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node item = list[i];
    if (item.IsMap()) {
      ReadStyleMap(item, job, base, job_sweep, problems);
    } else if (item.IsScalar()) {
      ReadSeedStyle(item, job, base, job_sweep, problems);
    } else {
      problems.At(item.Mark(),
                  "each style must be a mapping (name, image, overrides) or the path of a "
                  "seed-style file");
    }
  }
}

// ---------------------------------------------------------------------------
// Cross-field rules and file checks, in one place.

// Whether `name` can be written in a blend (`NAME=W,NAME=W`, names trimmed of
// spaces) and in the model file's newline-separated list of names.
bool BlendableStyleName(const std::string& name) {
  if (!name.empty() && (name.front() == ' ' || name.back() == ' ')) return false;
  return std::none_of(name.begin(), name.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return c == ',' || c == '=' || byte < 0x20 || byte == 0x7f;
  });
}

// The styles of one conditional network train with one optimizer on one
// batch: only their loss weights and style image size may differ.
void ValidateConditional(const JobConfig& job, const LoadOptions& options, Problems& problems) {
  const std::string where = problems.file() + ": ";
  if (job.network != "conditional") {
    if (!job.base_model.empty())
      problems.Add(where + "job.base_model is set but job.network is not conditional");
    return;
  }
  if (options.check_files && !job.base_model.empty()) {
    std::error_code ec;
    if (!fs::exists(job.base_model, ec)) {
      problems.Add(where + "job.base_model: '" + job.base_model + "' does not exist");
    }
  }
  const std::string network_dir = ConditionalNetworkDir(job);
  const std::set<std::string> may_differ = {"content_weight", "style_weight", "tv_weight",
                                            "style_image_size"};
  for (const StyleSpec& style : job.styles) {
    if (!style.sweep.empty()) {
      problems.Add(style.origin + ": style '" + style.sweep +
                   "' is swept, which a conditional network (job.network) cannot do: its "
                   "styles share one training; list the variants as styles instead");
      return;
    }
    if (!BlendableStyleName(style.name)) {
      problems.Add(style.origin + ": style '" + style.name +
                   "': a conditional network's style names must not contain ',', '=' or "
                   "control characters (such as a newline) nor begin or end with a space: "
                   "--blend NAME=W,NAME=W and the model file's newline-separated list of names "
                   "could not tell them apart; rename the style");
    }
    if (style.output_dir == network_dir) {
      problems.Add(style.origin + ": style '" + style.name + "' writes to '" + network_dir +
                   "', the conditional network's own folder; rename the style or set its "
                   "output_dir");
    }
    for (const auto& field : TrainingFields()) {
      const std::string mine = field.show(style.training);
      const std::string first = field.show(job.styles.front().training);
      if (may_differ.count(field.key) || mine == first) continue;
      problems.Add(style.origin + ": style '" + style.name + "': training." + field.key + " is " +
                   mine + " but " + first + " for style '" + job.styles.front().name +
                   "'; the styles of a conditional network share one optimizer and one batch, so "
                   "only content_weight, style_weight, tv_weight and style_image_size may differ");
    }
  }
}

// Names and paths are recorded in JSON files (owner, settings, metrics), which
// hold UTF-8 only: a folder name in Latin-1 would fail the first write, after
// training had started. Names that come from a file name (the job file's, a
// style image's) are checked here; names written in the job at their key.
void ValidateRecordedText(const JobConfig& job, const Origins& origins, Problems& problems) {
  const std::string not_utf8 =
      "is not UTF-8 text; stylefleet records names and paths in JSON files, which hold UTF-8 "
      "only: rename it";
  // `where`: "file:line:column: " of the value, or of its style.
  auto check_path = [&](const std::string& where, const std::string& what,
                        const std::string& path) {
    if (!IsUtf8(path)) problems.Add(where + what + " '" + EscapeForMessage(path) + "' " + not_utf8);
  };
  if (!job.name.empty() && !ValidFolderName(job.name)) {
    problems.Add(problems.file() + ": job name '" + EscapeForMessage(job.name) + "' (from the " +
                 "file name; set job.name) " + kFolderNameRule);
  }
  check_path(ContentDirWhere(origins, problems), "data.content_dir:", job.data.content_dir);
  check_path(problems.Where(origins.weights), "loss_network.weights:", job.loss_network.weights);
  check_path(problems.Where(YAML::Mark::null_mark()), "job.base_model:", job.base_model);
  for (size_t i = 0; i < job.data.validation_images.size(); ++i) {
    check_path(problems.Where(i < origins.validation_images.size() ? origins.validation_images[i]
                                                                   : YAML::Mark::null_mark()),
               "data.validation_images[" + std::to_string(i) + "]:", job.data.validation_images[i]);
  }
  // A swept run's name holds a '/' (its folder is inside its style's): only
  // the text is checked here.
  for (const StyleSpec& style : job.styles) {
    if (!IsPlainText(style.name)) {
      problems.Add(style.origin + ": style name '" + EscapeForMessage(style.name) +
                   "' must be UTF-8 text without control characters (it names a folder)");
    }
    check_path(style.origin + ": ", "style image", style.image);
    check_path(style.origin + ": ", "output folder", style.output_dir);
  }
}

void Validate(JobConfig& job, const Origins& origins, const LoadOptions& options,
              Problems& problems) {
  auto at = [&](const YAML::Mark& mark, const std::string& message) { problems.At(mark, message); };
  auto check_training = [&](const TrainingOptions& t, const std::string& who) {
    if (t.epochs == 0 && t.max_steps == 0 && !problems.AnyUnread({"epochs", "max_steps"})) {
      problems.Add(problems.file() + ": " + who +
                   "epochs and max_steps are both 0; set at least one to end training");
    }
    if (t.batch_size % t.micro_batches != 0 &&
        !problems.AnyUnread({"batch_size", "micro_batches"})) {
      problems.Add(problems.file() + ": " + who + "micro_batches (" +
                   std::to_string(t.micro_batches) + ") must divide batch_size (" +
                   std::to_string(t.batch_size) + ")");
    }
    if (t.content_weight == 0 && t.style_weight == 0 &&
        !problems.AnyUnread({"content_weight", "style_weight"})) {
      problems.Add(problems.file() + ": " + who +
                   "content_weight and style_weight are both 0; nothing would be learned");
    }
  };
  // The job's training section is each style's default: it is checked as
  // itself when a style trains with it unchanged (a job whose styles all set
  // max_steps may leave it at 0).
  if (std::any_of(job.styles.begin(), job.styles.end(), [&](const StyleSpec& style) {
        return SameTraining(style.training, job.training);
      })) {
    check_training(job.training, "training: ");
  }
  if (job.distributed.stall_warn_seconds > job.distributed.timeout_seconds) {
    problems.Add(problems.file() + ": distributed: stall_warn_seconds (" +
                 std::to_string(job.distributed.stall_warn_seconds) +
                 ") exceeds timeout_seconds (" + std::to_string(job.distributed.timeout_seconds) +
                 ")");
  }
  std::map<std::string, const StyleSpec*> by_name;
  std::map<std::string, const StyleSpec*> by_dir;
  // The names written in the job: a swept style's runs share its name (and its origin), so
  // two entries are told apart by origin; a run name could not repeat a style name otherwise.
  std::map<std::string, const StyleSpec*> by_written_name;
  std::set<std::string> duplicates_reported;  // one message per entry, not per run
  for (const auto& style : job.styles) {
    if (!SameTraining(style.training, job.training))
      check_training(style.training, "style '" + style.name + "': ");
    const std::string& written = style.sweep.empty() ? style.name : style.sweep;
    const auto first = by_written_name.emplace(written, &style).first;
    if (first->second->origin != style.origin) {
      if (duplicates_reported.insert(style.origin).second) {
        problems.Add(style.origin + ": duplicate style name '" + written + "' (first defined at " +
                     first->second->origin + ")");
      }
    } else if (!by_name.emplace(style.name, &style).second) {
      problems.Add(style.origin + ": duplicate style name '" + style.name + "' (first defined at " +
                   by_name[style.name]->origin + ")");
    } else if (!by_dir.emplace(style.output_dir, &style).second) {
      problems.Add(style.origin + ": style '" + style.name + "' writes to the same folder '" +
                   style.output_dir + "' as style '" + by_dir[style.output_dir]->name + "'");
    }
    if (options.check_files && !style.image.empty()) {
      std::error_code ec;
      if (!fs::is_regular_file(style.image, ec)) {
        problems.Add(style.origin + ": style '" + style.name + "': style image '" + style.image +
                     "' does not exist or is not a file");
      }
    }
  }
  ValidateRecordedText(job, origins, problems);
  ValidateConditional(job, options, problems);
  if (!options.check_files) return;
  std::error_code ec;
  if (!job.data.content_dir.empty() && !fs::is_directory(job.data.content_dir, ec)) {
    problems.Add(ContentDirWhere(origins, problems) + "data.content_dir: content folder '" +
                 job.data.content_dir + "' does not exist or is not a folder" +
                 (job.seed_format ? " (seed-style files read train2014/ under the working "
                                    "directory; pass --content DIR)"
                                  : ""));
  }
  // The content folder is read with its sub-folders: outputs inside it (previews,
  // final images) would join the training photos of the next run.
  if (!job.data.content_dir.empty() && fs::is_directory(job.data.content_dir, ec)) {
    const fs::path content = fs::weakly_canonical(job.data.content_dir, ec);
    for (const StyleSpec& style : job.styles) {
      const fs::path out = fs::weakly_canonical(style.output_dir, ec);
      if (std::mismatch(content.begin(), content.end(), out.begin(), out.end()).first ==
          content.end()) {
        problems.Add(style.origin + ": style '" + style.name + "' writes to '" + style.output_dir +
                     "', inside data.content_dir '" + job.data.content_dir +
                     "', whose sub-folders are read too: its previews and final images would "
                     "become training photos; choose a job.output_dir outside it");
        break;
      }
    }
  }
  for (size_t i = 0; i < job.data.validation_images.size(); ++i) {
    const std::string& photo = job.data.validation_images[i];
    const YAML::Mark mark = i < origins.validation_images.size() ? origins.validation_images[i]
                                                                 : YAML::Mark::null_mark();
    if (!fs::is_regular_file(photo, ec)) {
      at(mark, "data.validation_images[" + std::to_string(i) + "]: validation photo '" + photo +
                   "' does not exist or is not a file");
      continue;
    }
    // The same file spelled twice (./a.jpg and a.jpg, a link) would be shown twice.
    for (size_t j = 0; j < i; ++j) {
      if (fs::equivalent(photo, job.data.validation_images[j], ec)) {
        at(mark, "data.validation_images[" + std::to_string(i) + "]: '" + photo +
                     "' is the same photo as data.validation_images[" + std::to_string(j) + "] ('" +
                     job.data.validation_images[j] + "')");
        break;
      }
    }
  }
  const std::string& weights = job.loss_network.weights;
  if (weights.rfind("random:", 0) == 0) {
    if (!RandomNetworkSeed(weights)) {
      at(origins.weights,
         "loss_network.weights: expected random:SEED with SEED a non-negative "
         "integer, got '" +
             weights + "'");
    }
  } else if (!weights.empty()) {
    const std::string ext = fs::path(weights).extension().string();
    if (ext == ".ckpt" || ext == ".index" || ext == ".meta") {
      at(origins.weights,
         "loss_network.weights: '" + weights +
             "' is a TensorFlow checkpoint, which stylefleet cannot read; convert torchvision's "
             "VGG-16 with launch/convert_vgg16.py and pass --set loss_network.weights=FILE (or "
             "random:SEED for a test run)");
    } else if (!fs::is_regular_file(weights, ec)) {
      at(origins.weights, "loss_network.weights: weights file '" + weights +
                              "' does not exist (use random:SEED for a random network)");
    }
  }
}

}  // namespace

JobConfig LoadJobFromString(const std::string& text, const std::string& path,
                            const LoadOptions& options) {
  Problems problems(path);
  if (text.size() > kMaxJobFileBytes) {
    problems.Add(path + ": job file is " + std::to_string(text.size()) +
                 " bytes; at most 1 MiB is accepted");
    problems.ThrowIfAny();
  }
  const YAML::Node root = ParseYaml(text, problems);
  problems.ThrowIfAny();
  if (root.IsNull()) {
    problems.Add(path +
                 ":1:1: job file is empty (expected a job with 'styles:', or a seed-style "
                 "file with 'style_image:')");
    problems.ThrowIfAny();
  }
  if (!root.IsMap()) {
    problems.At(root.Mark(),
                "expected a mapping at the top of the file (a job with 'styles:', "
                "or a seed-style file with 'style_image:')");
    problems.ThrowIfAny();
  }
  const std::vector<Override> overrides = ParseOverrides(options.overrides, problems);
  const fs::path cwd = fs::current_path();
  const fs::path base =
      fs::path(path).parent_path().empty() ? cwd : fs::absolute(fs::path(path).parent_path());
  JobConfig job;
  job.source_file = path;
  Origins origins;
  job.seed_format = root["style_image"].IsDefined() && !root["styles"].IsDefined();
  if (job.seed_format) {
    StyleSpec style;
    ReadSeedFile(root, job, style, origins, problems);
    job.name = style.name.empty() ? Stem(path) : style.name;
    job.data.content_dir = ResolvePath(
        options.content_dir.empty() ? std::string("train2014") : options.content_dir, cwd);
    if (!options.content_dir.empty()) origins.content_dir_given = "command line (--content)";
    ApplyJobOverrides(overrides, job, origins, cwd, problems);
    ResolveTrainingDefaults(job);
    style.training = job.training;
    if (!style.name.empty()) job.styles.push_back(style);
  } else {
    ReadJobFile(root, job, origins, base, overrides, problems);
    if (!options.content_dir.empty()) {
      job.data.content_dir = ResolvePath(options.content_dir, cwd);
      origins.content_dir = YAML::Mark::null_mark();
      origins.content_dir_given = "command line (--content)";
    }
    ApplyJobOverrides(overrides, job, origins, cwd, problems);
    ResolveTrainingDefaults(job);
    const Sweep job_sweep =
        root["sweep"].IsDefined() ? ReadSweep(root["sweep"], "sweep", problems) : Sweep{};
    if (root["styles"].IsDefined()) ReadStyles(root["styles"], job, base, job_sweep, problems);
  }
  ApplyStyleOverrides(overrides, job, cwd, problems);
  Validate(job, origins, options, problems);
  problems.ThrowIfAny();
  if (job.network == "conditional" && !job.styles.empty()) {
    StyleSpec& run = job.conditional_run;
    run.name = kConditionalNetworkName;
    run.output_dir = ConditionalNetworkDir(job);
    run.training = job.styles.front().training;
    run.origin = job.source_file;
  }
  return job;
}

JobConfig LoadJob(const std::string& path, const LoadOptions& options) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw ConfigError({path + ": job file does not exist or is not a file"});
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError({path + ": cannot open job file"});
  std::string text;
  text.resize(kMaxJobFileBytes + 1);
  in.read(&text[0], static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return LoadJobFromString(text, path, options);
}

namespace {
// The "ranks" column of the reference: what every rank of a launch must share.
const char* AgreementText(Agreement agreement) {
  switch (agreement) {
    case Agreement::kPerRank:
      return "may differ";
    case Agreement::kEveryRank:
      return "same on all";
    case Agreement::kPassShape:
      return "same on all; styles trained together share it";
  }
  return "";
}

// The "resume" column: whether a style resumes after the key changed.
template <typename Target>
OnResume EffectiveOnResume(const Field<Target>& f) {
  return f.agreement == Agreement::kPerRank ? OnResume::kMayChange : f.on_resume;
}

template <typename Target>
void AppendTable(std::ostringstream& out, const std::string& title, const FieldTable<Target>& t) {
  out << "### `" << title
      << "`\n\n| key | type | default | ranks | resume | meaning |\n|---|---|---|---|---|---|\n";
  for (const auto& f : t) {
    out << "| `" << f.key << "` | " << f.type << " | " << f.default_text << " | "
        << AgreementText(f.agreement) << " | "
        << (EffectiveOnResume(f) == OnResume::kMustMatch ? "must match" : "may change") << " | "
        << f.doc << " |\n";
  }
  out << "\n";
}
}  // namespace

std::string ConfigReference() {
  std::ostringstream out;
  AppendTable(out, "job", JobFields());
  AppendTable(out, "data", DataFields());
  AppendTable(out, "loss_network", LossNetworkFields());
  AppendTable(out, "training", TrainingFields());
  AppendTable(out, "checkpoint", CheckpointFields());
  AppendTable(out, "distributed", DistributedFields());
  AppendTable(out, "monitoring", MonitoringFields());
  out << "### `styles` (a list; each entry a mapping, or the path of a seed-style file)\n\n"
         "Each mapping takes these keys, plus any key of `training` to override the job's "
         "default for this style.\n\n";
  AppendTable(out, "styles[]", StyleFields());
  return out.str();
}

namespace {

// Appends `prefix + key` and its value for every key of `table`.
template <typename Target>
void AppendSettings(const std::string& prefix, const FieldTable<Target>& table,
                    const Target& target, std::vector<Setting>& out) {
  for (const auto& f : table) {
    out.push_back({prefix + f.key, f.show(target), f.agreement, EffectiveOnResume(f)});
  }
}

template <typename Target>
void AppendKeys(const std::string& prefix, const FieldTable<Target>& table,
                std::vector<KeyInfo>& out) {
  for (const auto& f : table) out.push_back({prefix + f.key, f.default_text, f.agreement});
}

// True when every key of `table` for which `selected` holds shows the same value.
template <typename Target, typename Predicate>
bool SameValues(const FieldTable<Target>& table, const Target& a, const Target& b,
                Predicate selected) {
  for (const auto& f : table) {
    if (selected(f) && f.show(a) != f.show(b)) return false;
  }
  return true;
}

}  // namespace

std::string ConditionalNetworkDir(const JobConfig& job) {
  return (fs::path(job.output_dir) / kConditionalNetworkName).lexically_normal().string();
}

std::vector<Setting> ListSettings(const JobConfig& job) {
  std::vector<Setting> out;
  AppendSettings("job.", JobFields(), job, out);
  AppendSettings("data.", DataFields(), job.data, out);
  AppendSettings("loss_network.", LossNetworkFields(), job.loss_network, out);
  AppendSettings("training.", TrainingFields(), job.training, out);
  AppendSettings("checkpoint.", CheckpointFields(), job.checkpoint, out);
  AppendSettings("distributed.", DistributedFields(), job.distributed, out);
  AppendSettings("monitoring.", MonitoringFields(), job.monitoring, out);
  for (const auto& style : job.styles) {
    const std::string prefix = "styles." + style.name + ".";
    AppendSettings(prefix, StyleFields(), StyleEntry{style.name, style.image, style.output_dir},
                   out);
    AppendSettings(prefix, TrainingFields(), style.training, out);
  }
  return out;
}

std::vector<Setting> StyleRunSettings(const JobConfig& job, const StyleSpec& style) {
  std::vector<Setting> out;
  AppendSettings("job.", JobFields(), job, out);
  AppendSettings("data.", DataFields(), job.data, out);
  AppendSettings("loss_network.", LossNetworkFields(), job.loss_network, out);
  AppendSettings("checkpoint.", CheckpointFields(), job.checkpoint, out);
  AppendSettings("distributed.", DistributedFields(), job.distributed, out);
  AppendSettings("monitoring.", MonitoringFields(), job.monitoring, out);
  const std::string prefix = "styles." + style.name + ".";
  AppendSettings(prefix, StyleFields(), StyleEntry{style.name, style.image, style.output_dir}, out);
  AppendSettings(prefix, TrainingFields(), style.training, out);
  return out;
}

std::vector<KeyInfo> ListKeys() {
  std::vector<KeyInfo> out;
  AppendKeys("job.", JobFields(), out);
  AppendKeys("data.", DataFields(), out);
  AppendKeys("loss_network.", LossNetworkFields(), out);
  AppendKeys("training.", TrainingFields(), out);
  AppendKeys("checkpoint.", CheckpointFields(), out);
  AppendKeys("distributed.", DistributedFields(), out);
  AppendKeys("monitoring.", MonitoringFields(), out);
  AppendKeys("styles[].", StyleFields(), out);
  return out;
}

bool SameTraining(const TrainingOptions& a, const TrainingOptions& b) {
  return SameValues(TrainingFields(), a, b, [](const auto&) { return true; });
}

bool CanShareTrainingPass(const TrainingOptions& a, const TrainingOptions& b) {
  return SameValues(TrainingFields(), a, b,
                    [](const auto& f) { return f.agreement == Agreement::kPassShape; });
}

std::string DescribeJob(const JobConfig& job) {
  std::ostringstream out;
  out << "job " << job.name << " (" << job.source_file
      << (job.seed_format ? ", seed-style file" : "") << ")\n";
  const std::vector<Setting> settings = ListSettings(job);
  for (const auto& s : settings) {
    if (s.key.rfind("styles.", 0) != 0) out << "  " << s.key << ": " << s.value << "\n";
  }
  std::vector<std::string> sweeps;
  for (const auto& style : job.styles) {
    if (!style.sweep.empty() &&
        std::find(sweeps.begin(), sweeps.end(), style.sweep) == sweeps.end())
      sweeps.push_back(style.sweep);
  }
  for (const auto& sweep : sweeps) {
    std::vector<std::string> runs, keys;
    for (const auto& style : job.styles) {
      if (style.sweep != sweep) continue;
      runs.push_back(style.name);
      if (keys.empty())
        for (const auto& pair : style.swept) keys.push_back(pair.first);
    }
    out << "  sweep " << sweep << ": " << runs.size() << " run(s) over " << ShowValue(keys) << "\n";
    for (const auto& run : runs) out << "    " << run << "\n";
  }
  out << "  styles (" << job.styles.size() << "):\n";
  std::vector<Setting> defaults;
  AppendSettings("", TrainingFields(), job.training, defaults);
  for (const auto& style : job.styles) {
    std::vector<Setting> own;
    AppendSettings("", StyleFields(), StyleEntry{style.name, style.image, style.output_dir}, own);
    out << "  - " << style.name << "\n";
    for (size_t i = 1; i < own.size(); ++i) {
      out << "      " << own[i].key << ": " << own[i].value << "\n";
    }
    std::vector<Setting> training;
    AppendSettings("", TrainingFields(), style.training, training);
    for (size_t i = 0; i < training.size(); ++i) {
      if (training[i].value != defaults[i].value) {
        out << "      " << training[i].key << ": " << training[i].value << " (overrides "
            << defaults[i].value << ")\n";
      }
    }
  }
  return out.str();
}

uint64_t JobFingerprint(const JobConfig& job) {
  uint64_t hash = Fnv1a("");
  for (const auto& s : ListSettings(job)) {
    if (s.agreement != Agreement::kPerRank) hash = Fnv1a(s.key + "=" + s.value + "\n", hash);
  }
  return hash;
}

}  // namespace stylefleet
