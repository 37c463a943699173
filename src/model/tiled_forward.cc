#include "model/tiled_forward.h"

#include <string>
#include <vector>

#include "common/error.h"

namespace stylefleet {
namespace {
using torch::indexing::Slice;

// One ConvLayer's geometry along one axis (rows or columns).
struct Axis {
  int64_t in_size;   // of the layer's input, before upsampling
  int64_t upsample;  // nearest-neighbour factor
  int64_t pad;       // reflection padding after upsampling
  int64_t kernel;
  int64_t stride;

  int64_t OutSize() const { return (in_size * upsample + 2 * pad - kernel) / stride + 1; }
};

// For output positions [first, end): the input index each position of their
// receptive window reads. Upsampling, reflection padding and stride become an
// index, so a tile's window is gathered from the unpadded, not upsampled input
// and an unpadded convolution over it gives exactly the untiled values.
torch::Tensor WindowIndex(const Axis& axis, int64_t first, int64_t end) {
  const int64_t size = axis.in_size * axis.upsample;
  SF_CHECK(axis.pad < size, "reflection padding wider than the layer input");
  std::vector<int64_t> index;
  for (int64_t j = first * axis.stride; j < (end - 1) * axis.stride + axis.kernel; ++j) {
    int64_t at = j - axis.pad;
    if (at < 0) at = -at;
    if (at >= size) at = 2 * (size - 1) - at;
    index.push_back(at / axis.upsample);
  }
  return torch::tensor(index, torch::kLong);
}

// Per-channel mean and biased variance of a whole layer output, merged from
// its tiles with the pairwise update of Chan et al. in double precision.
class ChannelStats {
 public:
  void Add(const torch::Tensor& part) {
    const auto [var, mean] = torch::var_mean(part, {0, 2, 3}, /*unbiased=*/false);
    const double n = double(part.numel() / part.size(1));
    const torch::Tensor part_mean = mean.to(torch::kDouble);
    const torch::Tensor part_m2 = var.to(torch::kDouble) * n;
    if (count_ == 0) {
      mean_ = part_mean;
      m2_ = part_m2;
    } else {
      const double total = count_ + n;
      const torch::Tensor delta = part_mean - mean_;
      mean_ = mean_ + delta * (n / total);
      m2_ = m2_ + part_m2 + delta.square() * (count_ * n / total);
    }
    count_ += n;
  }
  const torch::Tensor& Mean() const { return mean_; }
  torch::Tensor Variance() const { return m2_ / count_; }

 private:
  double count_ = 0;
  torch::Tensor mean_, m2_;
};

// The geometry of `layer` along rows and columns of an input of in_h x in_w.
std::pair<Axis, Axis> LayerAxes(ConvLayerImpl& layer, int64_t in_h, int64_t in_w) {
  const int64_t kernel = layer.conv().weight.size(2);
  const int64_t stride = layer.conv().options.stride()->at(0);
  return {Axis{in_h, layer.upsample(), kernel / 2, kernel, stride},
          Axis{in_w, layer.upsample(), kernel / 2, kernel, stride}};
}

// Writes the output of `layer` on `in` (1 x C x H x W) into `out`, computed in
// tiles of `tile` x `tile` output pixels; feeds every tile to `stats` when given.
void ConvInTiles(const torch::Tensor& in, ConvLayerImpl& layer, int64_t tile, ChannelStats* stats,
                 torch::Tensor& out) {
  const auto [rows, cols] = LayerAxes(layer, in.size(2), in.size(3));
  const int64_t out_h = rows.OutSize(), out_w = cols.OutSize();
  SF_CHECK(out.size(2) == out_h && out.size(3) == out_w, "tiled output buffer of a wrong size");
  for (int64_t y = 0; y < out_h; y += tile) {
    const int64_t y_end = std::min(out_h, y + tile);
    const torch::Tensor row_index = WindowIndex(rows, y, y_end).view({-1, 1});
    for (int64_t x = 0; x < out_w; x += tile) {
      const int64_t x_end = std::min(out_w, x + tile);
      const torch::Tensor window =
          in.index({Slice(), Slice(), row_index, WindowIndex(cols, x, x_end)});
      // The same convolution as the whole-image forward (Winograd for 3x3).
      const torch::Tensor part = layer.Convolve(window);
      if (stats != nullptr) stats->Add(part);
      out.index({Slice(), Slice(), Slice(y, y_end), Slice(x, x_end)}).copy_(part);
    }
  }
}

// out = instance_norm(out) with the statistics given, in place: the affine
// form ATen's own instance norm uses (x * scale + shift).
void NormalizeInPlace(torch::Tensor& out, const ChannelStats& stats, InstanceNormLayerImpl& norm) {
  const torch::Tensor scale =
      norm.weight.to(torch::kDouble) / (stats.Variance() + InstanceNormLayerImpl::kEps).sqrt();
  const torch::Tensor shift = norm.bias.to(torch::kDouble) - stats.Mean() * scale;
  out.mul_(scale.to(out.scalar_type()).view({1, -1, 1, 1}))
      .add_(shift.to(out.scalar_type()).view({1, -1, 1, 1}));
}

// The steps of TransformerNetImpl::forward, by module name.
enum class After { kNormRelu, kNormAddBlockInput, kNothing };
struct Step {
  std::string conv, norm;
  After after;
  bool starts_block;
};

std::vector<Step> ForwardSteps() {
  std::vector<Step> steps = {{"conv1", "in1", After::kNormRelu, false},
                             {"conv2", "in2", After::kNormRelu, false},
                             {"conv3", "in3", After::kNormRelu, false}};
  for (int i = 1; i <= 5; ++i) {
    const std::string block = "res" + std::to_string(i) + ".";
    steps.push_back({block + "conv1", block + "in1", After::kNormRelu, true});
    steps.push_back({block + "conv2", block + "in2", After::kNormAddBlockInput, false});
  }
  steps.push_back({"deconv1", "in4", After::kNormRelu, false});
  steps.push_back({"deconv2", "in5", After::kNormRelu, false});
  steps.push_back({"deconv3", "", After::kNothing, false});
  return steps;
}

template <typename Module>
Module& FindModule(TransformerNet& net, const std::string& name) {
  const auto modules = net->named_modules("", /*include_self=*/false);
  const auto* found = modules.find(name);
  SF_CHECK(found != nullptr, "transformer has no module " + name);
  Module* module = (*found)->template as<Module>();
  SF_CHECK(module != nullptr, "transformer module " + name + " has an unexpected type");
  return *module;
}

// Where each step's output lives in one buffer reused by every layer: the
// first offset that overlaps neither the step's input nor a residual block's
// input, which are the only activations alive then. One allocation instead
// of one per layer keeps the heap from growing with freed holes too small for
// the next layer (malloc never returns memory here: see src/cli/main.cc).
// Returns the offsets (in elements) and the buffer's size; the last step's
// output is not placed (it is returned to the caller).
std::vector<int64_t> PlanBuffer(const std::vector<Step>& steps, const std::vector<int64_t>& sizes,
                                int64_t* buffer_size) {
  std::vector<int64_t> offsets(steps.size(), 0);
  *buffer_size = 0;
  int input = -1, block_input = -1;  // step indices; -1: the image, outside the buffer
  for (size_t i = 0; i + 1 < steps.size(); ++i) {
    if (steps[i].starts_block) block_input = input;
    std::vector<std::pair<int64_t, int64_t>> alive;
    for (int step : {input, block_input}) {
      if (step >= 0) alive.emplace_back(offsets[step], offsets[step] + sizes[step]);
    }
    std::vector<int64_t> candidates = {0};
    for (const auto& [begin, end] : alive) candidates.push_back(end);
    int64_t best = -1;
    for (int64_t at : candidates) {
      bool free = true;
      for (const auto& [begin, end] : alive) free = free && (at + sizes[i] <= begin || at >= end);
      if (free && (best < 0 || at < best)) best = at;
    }
    offsets[i] = best;
    *buffer_size = std::max(*buffer_size, best + sizes[i]);
    if (steps[i].after == After::kNormAddBlockInput) block_input = -1;
    input = int(i);
  }
  return offsets;
}

torch::Tensor ForwardOne(TransformerNet& net, const std::vector<Step>& steps,
                         const torch::Tensor& image, int64_t tile) {
  std::vector<ConvLayerImpl*> layers;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<int64_t> sizes;
  int64_t h = image.size(2), w = image.size(3);
  for (const Step& step : steps) {
    layers.push_back(&FindModule<ConvLayerImpl>(net, step.conv));
    const auto [rows, cols] = LayerAxes(*layers.back(), h, w);
    h = rows.OutSize();
    w = cols.OutSize();
    shapes.push_back({1, layers.back()->conv().weight.size(0), h, w});
    sizes.push_back(shapes.back()[1] * h * w);
  }
  int64_t buffer_size = 0;
  const std::vector<int64_t> offsets = PlanBuffer(steps, sizes, &buffer_size);
  const torch::Tensor buffer = torch::empty({buffer_size}, image.options());

  torch::Tensor act = image.contiguous();
  torch::Tensor block_input;
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& step = steps[i];
    if (step.starts_block) block_input = act;
    torch::Tensor out = i + 1 < steps.size()
                            ? buffer.narrow(0, offsets[i], sizes[i]).view(shapes[i])
                            : torch::empty(shapes[i], image.options());
    // Tiles cover the same image area at every resolution.
    const int64_t scale = std::max<int64_t>(1, image.size(2) / shapes[i][2]);
    const int64_t layer_tile = std::max<int64_t>(1, (tile + scale - 1) / scale);
    ChannelStats stats;
    ConvInTiles(act, *layers[i], layer_tile, step.after == After::kNothing ? nullptr : &stats, out);
    if (step.after != After::kNothing) {
      NormalizeInPlace(out, stats, FindModule<InstanceNormLayerImpl>(net, step.norm));
    }
    if (step.after == After::kNormRelu) out.relu_();
    if (step.after == After::kNormAddBlockInput) {
      out.add_(block_input);
      block_input = torch::Tensor();
    }
    act = out;
  }
  return act;
}

}  // namespace

torch::Tensor ForwardInTiles(TransformerNet& net, const torch::Tensor& x, int64_t tile) {
  if (x.dim() != 4 || x.size(1) != 3 || x.size(2) % 4 != 0 || x.size(3) % 4 != 0 || x.size(2) < 8 ||
      x.size(3) < 8) {
    std::ostringstream message;
    message << "tiled stylize: expected N x 3 x H x W with H and W multiples of 4, at least 8; got "
            << x.sizes();
    throw Error(message.str());
  }
  if (tile < 1) throw Error("tiled stylize: tile must be at least 1, got " + std::to_string(tile));
  SF_CHECK(net->styles() == 0 && !net->predicts_norms(),
           "tiled stylize runs a per-style network (BlendedTransformer, FixedNormsTransformer)");
  const std::vector<Step> steps = ForwardSteps();
  std::vector<torch::Tensor> outs;
  for (int64_t n = 0; n < x.size(0); ++n) {
    outs.push_back(ForwardOne(net, steps, x.slice(0, n, n + 1), tile));
  }
  return outs.size() == 1 ? outs[0] : torch::cat(outs, 0);
}

}  // namespace stylefleet
