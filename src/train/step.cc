#include "train/step.h"

#include <ATen/autocast_mode.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "common/cpu_info.h"
#include "common/error.h"
#include "common/torch_compat.h"
#include "common/vgg_layers.h"

namespace stylefleet {
namespace {

// Autocast to bfloat16 on the tensors' device for the guard's lifetime, as
// Python's torch.autocast does (including the cast cache being dropped at the
// outermost exit).
class Bf16Autocast {
 public:
  Bf16Autocast(bool enabled, const torch::Device& device) : enabled_(enabled), device_(device.type()) {
    if (!enabled_) return;
    previous_ = GetAutocast(device_);
    SetAutocast(device_, AutocastState{true, at::kBFloat16});
    at::autocast::increment_nesting();
  }
  ~Bf16Autocast() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    SetAutocast(device_, previous_);
  }
  Bf16Autocast(const Bf16Autocast&) = delete;
  Bf16Autocast& operator=(const Bf16Autocast&) = delete;

 private:
  bool enabled_;
  c10::DeviceType device_;
  AutocastState previous_;
};

torch::ScalarType ComputeType(Precision precision) {
  return precision == Precision::kBf16 ? torch::kBFloat16 : torch::kFloat32;
}

double ConvFlops(double cin, double cout, double kernel, double out_side) {
  return 2.0 * cin * cout * kernel * kernel * out_side * out_side;
}

double VggForwardFlops(int image_size, int deepest) {
  double total = 0, side = image_size;
  for (int l = 0; l <= deepest; ++l) {
    total += ConvFlops(double(VggLayerInChannels(l)), double(VggLayerChannels(l)), 3, side);
    if (VggPoolAfter(l)) side = std::floor(side / 2);
  }
  return total;
}

// Transformer convolutions as (in, out, kernel, output side / image side).
struct ConvShape {
  double cin, cout, kernel, scale;
};
std::vector<ConvShape> TransformerConvs() {
  std::vector<ConvShape> convs = {{3, 32, 9, 1}, {32, 64, 3, 0.5}, {64, 128, 3, 0.25}};
  for (int i = 0; i < 10; ++i) convs.push_back({128, 128, 3, 0.25});
  convs.push_back({128, 64, 3, 0.5});
  convs.push_back({64, 32, 3, 1});
  convs.push_back({32, 3, 9, 1});
  return convs;
}

}  // namespace

const char* PrecisionName(Precision precision) {
  return precision == Precision::kBf16 ? "bf16" : "fp32";
}

int UseIntraOpThreads(int requested, int ranks_on_host) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = requested > 0 ? requested : std::max(1, cores / std::max(1, ranks_on_host));
  torch::set_num_threads(threads);
  return threads;
}

torch::Device DeviceOfLocalRank(int local_rank) {
  if (!torch::cuda::is_available()) return torch::Device(torch::kCPU);
  return torch::Device(torch::kCUDA,
                       static_cast<c10::DeviceIndex>(local_rank % torch::cuda::device_count()));
}

bool CpuHasBf16() {
  static const bool has = CpuHasFlag("avx512_bf16") || CpuHasFlag("amx_bf16");
  return has;
}

std::vector<torch::Tensor> StyleGrams(const Vgg16& vgg, const torch::Tensor& style_image,
                                      const std::vector<int>& layers, Precision precision) {
  torch::NoGradGuard no_grad;
  const auto features = vgg.Forward(style_image, layers, ComputeType(precision));
  std::vector<torch::Tensor> grams;
  for (int layer : layers) grams.push_back(Gram(features.at(layer).to(torch::kFloat32)));
  return grams;
}

std::vector<LossTerms> ForwardStyleLosses(const std::vector<TransformerNet*>& nets,
                                          const Vgg16& vgg, const torch::Tensor& content,
                                          const std::vector<StyleLossTarget>& targets,
                                          const LossNetworkUse& use, StepClock* clock) {
  SF_CHECK(!nets.empty() && nets.size() == targets.size(), "one loss target per network");
  auto begin = [&](Phase phase, const char* detail) {
    if (clock != nullptr) clock->Begin(phase, detail);
  };
  const torch::ScalarType type = ComputeType(use.precision);
  const bool bf16 = use.precision == Precision::kBf16;
  std::map<int, torch::Tensor> content_features;
  {
    // The content batch only needs the content layers, and no gradients.
    begin(Phase::kVggForward, "content");
    torch::NoGradGuard no_grad;
    content_features = vgg.Forward(content, use.content_layers, type);
  }
  std::vector<torch::Tensor> generated;
  {
    begin(Phase::kTransformerForward, "");
    Bf16Autocast autocast(bf16, content.device());
    for (TransformerNet* net : nets) generated.push_back((*net)->forward(content).to(torch::kFloat32));
  }
  std::vector<int> all_layers = use.content_layers;
  all_layers.insert(all_layers.end(), use.style_layers.begin(), use.style_layers.end());
  begin(Phase::kVggForward, "generated");
  const torch::Tensor stacked = generated.size() == 1 ? generated[0] : torch::cat(generated, 0);
  const auto features = vgg.Forward(stacked, all_layers, type);

  begin(Phase::kLoss, "");
  const int64_t batch = content.size(0);
  std::vector<torch::Tensor> target_content;  // the same targets for every style
  for (int layer : use.content_layers) target_content.push_back(content_features.at(layer).to(torch::kFloat32));
  std::vector<LossTerms> out;
  for (size_t k = 0; k < nets.size(); ++k) {
    auto part = [&](int layer) {
      const torch::Tensor& f = features.at(layer);
      const torch::Tensor mine =
          nets.size() == 1 ? f : f.narrow(0, static_cast<int64_t>(k) * batch, batch);
      return mine.to(torch::kFloat32);
    };
    std::vector<torch::Tensor> gen_content, gen_style;
    for (int layer : use.content_layers) gen_content.push_back(part(layer));
    for (int layer : use.style_layers) gen_style.push_back(part(layer));
    SF_CHECK(targets[k].style_grams != nullptr, "style grams missing");
    out.push_back(ComputeLosses(gen_content, target_content, gen_style, *targets[k].style_grams,
                                generated[k], targets[k].weights));
  }
  return out;
}

const char* PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kData: return "data";
    case Phase::kTransformerForward: return "transformer_forward";
    case Phase::kVggForward: return "vgg_forward";
    case Phase::kLoss: return "loss";
    case Phase::kBackward: return "backward";
    case Phase::kAllreduce: return "allreduce";
    case Phase::kOptimizer: return "optimizer";
    case Phase::kCount: break;
  }
  return "?";
}

StepClock::StepClock(const torch::Device& device, bool record_spans)
    : device_(device), record_spans_(record_spans), origin_(std::chrono::steady_clock::now()) {}

void StepClock::Begin(Phase phase, const std::string& detail) {
  End();
  running_ = true;
  phase_ = phase;
  detail_ = detail;
  start_ = std::chrono::steady_clock::now();
}

void StepClock::End() {
  if (!running_) return;
  SynchronizeDevice(device_);
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - start_).count();
  seconds_[static_cast<size_t>(phase_)] += seconds;
  if (record_spans_) {
    spans_.push_back({phase_, detail_,
                      std::chrono::duration<double, std::micro>(start_ - origin_).count(),
                      seconds * 1e6});
  }
  running_ = false;
}

void StepClock::WriteTrace(const std::string& path, int process,
                           const std::string& process_name) const {
  nlohmann::json events = nlohmann::json::array();
  events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", process}, {"tid", 0},
                    {"args", {{"name", process_name}}}});
  for (const Span& span : spans_) {
    nlohmann::json event = {{"name", PhaseName(span.phase)}, {"cat", "step"}, {"ph", "X"},
                            {"ts", span.start_us}, {"dur", span.duration_us},
                            {"pid", process}, {"tid", 0}};
    if (!span.detail.empty()) event["args"] = {{"detail", span.detail}};
    events.push_back(event);
  }
  std::ofstream out(path, std::ios::trunc);
  out << nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump() << "\n";
  if (!out) throw Error("cannot write the trace file " + path);
}

std::string RankTracePath(const std::string& path, int rank, int world_size) {
  if (world_size <= 1) return path;
  const std::filesystem::path p(path);
  return (p.parent_path() / (p.stem().string() + ".rank" + std::to_string(rank) + p.extension().string()))
      .string();
}

StepFlops TrainingFlopsPerImage(int image_size, const LossNetworkUse& use) {
  StepFlops flops;
  bool first = true;
  for (const ConvShape& c : TransformerConvs()) {
    const double f = ConvFlops(c.cin, c.cout, c.kernel, image_size * c.scale);
    flops.transformer_forward += f;
    // Weight gradients everywhere; input gradients except for the first
    // convolution, whose input (the content image) needs none.
    flops.transformer_backward += first ? f : 2 * f;
    first = false;
  }
  int deepest = 0, deepest_content = 0;
  for (int l : use.style_layers) deepest = std::max(deepest, l);
  for (int l : use.content_layers) {
    deepest = std::max(deepest, l);
    deepest_content = std::max(deepest_content, l);
  }
  // The loss network's weights are frozen: its backward is input gradients only.
  flops.vgg_generated = 2 * VggForwardFlops(image_size, deepest);
  flops.vgg_content = use.content_layers.empty() ? 0 : VggForwardFlops(image_size, deepest_content);
  return flops;
}

double StylizeFlopsPerImage(int image_size) {
  double total = 0;
  for (const ConvShape& c : TransformerConvs()) total += ConvFlops(c.cin, c.cout, c.kernel, image_size * c.scale);
  return total;
}

}  // namespace stylefleet
