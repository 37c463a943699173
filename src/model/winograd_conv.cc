#include "model/winograd_conv.h"

#include <ATen/autocast_mode.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <tuple>
#include <unordered_map>

#ifdef STYLEFLEET_HAVE_ONEDNN
#include <dnnl.hpp>
#endif

#include "common/error.h"

namespace stylefleet {
namespace {

// Per thread: in-process ranks are threads, each running its job.
thread_local bool g_enabled = true;

}  // namespace

void SetWinogradEnabled(bool enabled) { g_enabled = enabled; }
bool WinogradEnabled() { return g_enabled; }

std::string ConvolutionsUsed(const std::string& setting) {
  return setting == "winograd" && WinogradAvailable() ? "winograd" : "direct";
}

std::string DescribeConvolutions(const std::string& setting) {
  if (setting == "direct") return "convolutions: LibTorch's (convolution: direct)";
  if (!WinogradAvailable()) {
    return "convolutions: LibTorch's (this CPU or build has no oneDNN Winograd kernel)";
  }
  return "convolutions: oneDNN's Winograd for fp32 3x3 layers, LibTorch's for the rest";
}

ScopedWinograd::ScopedWinograd(bool enabled) : previous_(g_enabled) { g_enabled = enabled; }
ScopedWinograd::~ScopedWinograd() { g_enabled = previous_; }

torch::Tensor ToBlocked(const torch::Tensor& nchw) {
  SF_CHECK(nchw.dim() == 4 && nchw.size(1) % kWinogradBlock == 0,
           "ToBlocked takes NCHW with channels a multiple of 16");
  const int64_t n = nchw.size(0), c = nchw.size(1), h = nchw.size(2), w = nchw.size(3);
  return nchw.reshape({n, c / kWinogradBlock, kWinogradBlock, h, w})
      .permute({0, 1, 3, 4, 2})
      .contiguous();
}

torch::Tensor FromBlocked(const torch::Tensor& blocked) {
  SF_CHECK(blocked.dim() == 5 && blocked.size(4) == kWinogradBlock,
           "FromBlocked takes [N, C/16, H, W, 16]");
  const int64_t n = blocked.size(0), cb = blocked.size(1), h = blocked.size(2), w = blocked.size(3);
  return blocked.permute({0, 1, 4, 2, 3}).reshape({n, cb * kWinogradBlock, h, w});
}

torch::Tensor MaxPool2x2Blocked(const torch::Tensor& blocked) {
  const int64_t n = blocked.size(0), cb = blocked.size(1), h = blocked.size(2), w = blocked.size(3);
  // [N*C/16, H, W, 16] seen as a channels-last [N*C/16, 16, H, W]: LibTorch's
  // pooling keeps that layout, so the result is blocked again without a copy.
  const torch::Tensor pooled = torch::max_pool2d(
      blocked.reshape({n * cb, h, w, kWinogradBlock}).permute({0, 3, 1, 2}), 2, 2);
  return pooled.permute({0, 2, 3, 1}).reshape({n, cb, h / 2, w / 2, kWinogradBlock});
}

#ifndef STYLEFLEET_HAVE_ONEDNN

torch::Tensor Conv3x3(const torch::Tensor& x, const torch::Tensor& weight,
                      const torch::Tensor& bias, int64_t padding) {
  return torch::conv2d(x, weight, bias, 1, padding);
}
torch::Tensor Conv3x3Blocked(const torch::Tensor& x, const torch::Tensor& weight,
                             const torch::Tensor& bias, int64_t padding) {
  return ToBlocked(torch::conv2d(FromBlocked(x), weight, bias, 1, padding));
}
bool WinogradApplies(const torch::Tensor&, const torch::Tensor&, int64_t) { return false; }
bool BlockedWinogradApplies(const torch::Tensor&) { return false; }
bool WinogradAvailable() { return false; }

#else

namespace {

using dnnl::memory;
using Tag = memory::format_tag;

const dnnl::engine& CpuEngine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Batches run in parts of at most this many images, each by its own
// primitive: per image, oneDNN's Winograd ran slower on 16 images than on 4
// at 256 px (its working set outgrows the caches), which made 4 styles
// trained at once slower than one at a time (docs/performance.md).
constexpr int64_t kImagesPerCall = 4;

template <typename Body>
void ForEachChunk(int64_t images, const Body& body) {
  for (int64_t start = 0; start < images; start += kImagesPerCall) {
    body(start, std::min(kImagesPerCall, images - start));
  }
}

// One convolution: batch (a part, see above), channels in/out, input height/width, padding, bias,
// whether the activations are in oneDNN's blocked layout (Conv3x3Blocked),
// and the calling thread's OpenMP team size: a primitive keeps the team size
// it was made with, and its blocking (so its rounding) depends on it.
using ShapeKey = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, int>;

// The primitives of one shape. The backward ones are made on first use: the
// frozen loss network never needs weight gradients, and inference no backward.
struct Primitives {
  bool supported = false;
  memory::dims src, weights, bias, dst;  // logical NCHW/OIHW dimensions
  // The activations' layout in tensors: NCHW, or nChw16c for Conv3x3Blocked,
  // and the tensor sizes that hold them.
  Tag activation_tag = Tag::nchw;
  std::vector<int64_t> src_sizes, dst_sizes;
  dnnl::convolution_forward::primitive_desc forward_pd;
  dnnl::convolution_forward forward;
  std::unique_ptr<dnnl::convolution_backward_data::primitive_desc> backward_data_pd;
  dnnl::convolution_backward_data backward_data;
  std::unique_ptr<dnnl::convolution_backward_weights::primitive_desc> backward_weights_pd;
  dnnl::convolution_backward_weights backward_weights;
};

std::mutex g_cache_mutex;
std::map<ShapeKey, std::shared_ptr<Primitives> > g_cache;
// Shapes vary only with image sizes (training, previews, stylized images);
// past this many the cache starts again rather than grow without bound.
constexpr size_t kMaxCachedShapes = 256;

memory::desc AnyDesc(const memory::dims& dims) {
  return memory::desc(dims, memory::data_type::f32, Tag::any);
}

// Activations: oneDNN's choice (reordered from and to NCHW), or nChw16c as
// the blocked tensors already are.
memory::desc ActivationDesc(const Primitives& p, const memory::dims& dims) {
  return p.activation_tag == Tag::nchw ? AnyDesc(dims)
                                       : memory::desc(dims, memory::data_type::f32, Tag::nChw16c);
}

std::vector<int64_t> TensorSizes(const memory::dims& nchw, bool blocked) {
  if (!blocked) return nchw;
  return {nchw[0], nchw[1] / kWinogradBlock, nchw[2], nchw[3], kWinogradBlock};
}

dnnl::convolution_forward::desc ForwardDesc(const Primitives& p, bool with_bias, int64_t pad) {
  const memory::dims ones = {1, 1}, pads = {pad, pad};
  if (with_bias) {
    return {dnnl::prop_kind::forward_training,
            dnnl::algorithm::convolution_winograd,
            ActivationDesc(p, p.src),
            AnyDesc(p.weights),
            memory::desc(p.bias, memory::data_type::f32, Tag::x),
            ActivationDesc(p, p.dst),
            ones,
            pads,
            pads};
  }
  return {dnnl::prop_kind::forward_training,
          dnnl::algorithm::convolution_winograd,
          ActivationDesc(p, p.src),
          AnyDesc(p.weights),
          ActivationDesc(p, p.dst),
          ones,
          pads,
          pads};
}

// Every call brings its own scratchpad: with oneDNN's library-managed one,
// threads running cached primitives at once (in-process ranks are threads)
// crashed in winograd_conv_test.
dnnl::primitive_attr UserScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// Adds a scratchpad for `pd` to `args`, in a buffer that `keep` holds.
void AddScratchpad(const memory::desc& desc, std::unordered_map<int, memory>& args,
                   torch::Tensor& keep) {
  if (desc.get_size() == 0) return;
  keep = torch::empty({static_cast<int64_t>(desc.get_size())}, torch::kUInt8);
  args[DNNL_ARG_SCRATCHPAD] = memory(desc, CpuEngine(), keep.data_ptr());
}

// `x` is NCHW, or [N, C/16, H, W, 16] when `blocked`.
ShapeKey KeyOf(const torch::Tensor& x, const torch::Tensor& weight, bool with_bias, int64_t padding,
               bool blocked) {
  const int64_t part = std::min(x.size(0), kImagesPerCall);
  return {part,      weight.size(1), weight.size(0),       x.size(2), x.size(3), padding,
          with_bias, blocked,        at::get_num_threads()};
}

// The primitives for this shape, made (or found unsupported) once.
std::shared_ptr<Primitives> PrimitivesFor(const ShapeKey& key) {
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  auto found = g_cache.find(key);
  if (found != g_cache.end()) return found->second;
  if (g_cache.size() >= kMaxCachedShapes) g_cache.clear();
  auto p = std::make_shared<Primitives>();
  const auto [n, ic, oc, h, w, pad, with_bias, blocked, threads] = key;
  (void)threads;
  p->src = {n, ic, h, w};
  p->weights = {oc, ic, 3, 3};
  p->bias = {oc};
  p->dst = {n, oc, h + 2 * pad - 2, w + 2 * pad - 2};
  p->activation_tag = blocked ? Tag::nChw16c : Tag::nchw;
  p->src_sizes = TensorSizes(p->src, blocked);
  p->dst_sizes = TensorSizes(p->dst, blocked);
  try {
    p->forward_pd = dnnl::convolution_forward::primitive_desc(ForwardDesc(*p, with_bias, pad),
                                                              UserScratchpad(), CpuEngine());
    p->forward = dnnl::convolution_forward(p->forward_pd);
    p->supported = true;
  } catch (const dnnl::error&) {
    // No Winograd kernel for this shape or CPU: LibTorch's convolution runs.
    p->supported = false;
  }
  g_cache.emplace(key, p);
  return p;
}

const dnnl::convolution_backward_data& BackwardDataOf(Primitives& p, int64_t pad) {
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  if (!p.backward_data_pd) {
    const memory::dims ones = {1, 1}, pads = {pad, pad};
    dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_winograd,
                                               ActivationDesc(p, p.src), AnyDesc(p.weights),
                                               ActivationDesc(p, p.dst), ones, pads, pads);
    // Both or neither: a primitive that failed to build is made again next time.
    auto pd = std::make_unique<dnnl::convolution_backward_data::primitive_desc>(
        desc, UserScratchpad(), CpuEngine(), p.forward_pd);
    p.backward_data = dnnl::convolution_backward_data(*pd);
    p.backward_data_pd = std::move(pd);
  }
  return p.backward_data;
}

const dnnl::convolution_backward_weights& BackwardWeightsOf(Primitives& p, bool with_bias,
                                                            int64_t pad) {
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  if (!p.backward_weights_pd) {
    const memory::dims ones = {1, 1}, pads = {pad, pad};
    const auto alg = dnnl::algorithm::convolution_winograd;
    auto desc = with_bias ? dnnl::convolution_backward_weights::desc(
                                alg, ActivationDesc(p, p.src), AnyDesc(p.weights),
                                memory::desc(p.bias, memory::data_type::f32, Tag::x),
                                ActivationDesc(p, p.dst), ones, pads, pads)
                          : dnnl::convolution_backward_weights::desc(
                                alg, ActivationDesc(p, p.src), AnyDesc(p.weights),
                                ActivationDesc(p, p.dst), ones, pads, pads);
    auto pd = std::make_unique<dnnl::convolution_backward_weights::primitive_desc>(
        desc, UserScratchpad(), CpuEngine(), p.forward_pd);
    p.backward_weights = dnnl::convolution_backward_weights(*pd);
    p.backward_weights_pd = std::move(pd);
  }
  return p.backward_weights;
}

// A plain (NCHW/OIHW/X) view of a contiguous float tensor, without a copy.
memory PlainMemory(const torch::Tensor& t, const memory::dims& dims, Tag tag) {
  return memory({dims, memory::data_type::f32, tag}, CpuEngine(), t.data_ptr());
}

// `plain` in the layout `desc` wants: itself when it already has it, else a
// reordered copy in a buffer that `keep` holds.
memory InLayout(memory plain, const memory::desc& desc, dnnl::stream& stream, torch::Tensor& keep) {
  if (plain.get_desc() == desc) return plain;
  keep = torch::empty({static_cast<int64_t>(desc.get_size())}, torch::kUInt8);
  memory blocked(desc, CpuEngine(), keep.data_ptr());
  dnnl::reorder(plain, blocked).execute(stream, plain, blocked);
  return blocked;
}

// A buffer in the layout `desc` for a primitive to write into: `plain` itself
// when it has that layout (then nothing needs copying back).
memory OutputIn(const memory& plain, const memory::desc& desc, torch::Tensor& keep) {
  if (plain.get_desc() == desc) return plain;
  keep = torch::empty({static_cast<int64_t>(desc.get_size())}, torch::kUInt8);
  return memory(desc, CpuEngine(), keep.data_ptr());
}

void CopyBack(memory& from, memory& plain, dnnl::stream& stream) {
  if (from.get_data_handle() == plain.get_data_handle()) return;
  dnnl::reorder(from, plain).execute(stream, from, plain);
}

// Writes the convolution of `x` into `out` (contiguous, of p.dst_sizes).
void RunForward(Primitives& p, const torch::Tensor& x, const torch::Tensor& weight,
                const torch::Tensor& bias, torch::Tensor& out) {
  dnnl::stream stream(CpuEngine());
  const torch::Tensor xc = x.contiguous(), wc = weight.contiguous();
  torch::Tensor src_keep, weights_keep, dst_keep;
  memory plain_dst = PlainMemory(out, p.dst, p.activation_tag);
  memory src =
      InLayout(PlainMemory(xc, p.src, p.activation_tag), p.forward_pd.src_desc(), stream, src_keep);
  memory weights = InLayout(PlainMemory(wc, p.weights, Tag::oihw), p.forward_pd.weights_desc(),
                            stream, weights_keep);
  memory dst = OutputIn(plain_dst, p.forward_pd.dst_desc(), dst_keep);
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
  torch::Tensor bc;
  if (bias.defined()) {
    bc = bias.contiguous();
    args[DNNL_ARG_BIAS] = PlainMemory(bc, p.bias, Tag::x);
  }
  torch::Tensor scratchpad_keep;
  AddScratchpad(p.forward_pd.scratchpad_desc(), args, scratchpad_keep);
  p.forward.execute(stream, args);
  CopyBack(dst, plain_dst, stream);
  stream.wait();
}

// Writes the input gradient into `grad_x` (contiguous, of p.src_sizes).
void RunBackwardData(Primitives& p, const torch::Tensor& grad, const torch::Tensor& weight,
                     int64_t pad, torch::Tensor& grad_x) {
  const auto& primitive = BackwardDataOf(p, pad);
  const auto& pd = *p.backward_data_pd;
  dnnl::stream stream(CpuEngine());
  const torch::Tensor gc = grad.contiguous(), wc = weight.contiguous();
  torch::Tensor diff_dst_keep, weights_keep, diff_src_keep;
  memory plain_diff_src = PlainMemory(grad_x, p.src, p.activation_tag);
  memory diff_dst =
      InLayout(PlainMemory(gc, p.dst, p.activation_tag), pd.diff_dst_desc(), stream, diff_dst_keep);
  memory weights =
      InLayout(PlainMemory(wc, p.weights, Tag::oihw), pd.weights_desc(), stream, weights_keep);
  memory diff_src = OutputIn(plain_diff_src, pd.diff_src_desc(), diff_src_keep);
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DIFF_SRC, diff_src}};
  torch::Tensor scratchpad_keep;
  AddScratchpad(pd.scratchpad_desc(), args, scratchpad_keep);
  primitive.execute(stream, args);
  CopyBack(diff_src, plain_diff_src, stream);
  stream.wait();
}

// The gradients of the weights and (when `with_bias`) the bias.
std::pair<torch::Tensor, torch::Tensor> RunBackwardWeights(Primitives& p, const torch::Tensor& x,
                                                           const torch::Tensor& grad,
                                                           bool with_bias, int64_t pad) {
  const auto& primitive = BackwardWeightsOf(p, with_bias, pad);
  const auto& pd = *p.backward_weights_pd;
  dnnl::stream stream(CpuEngine());
  const torch::Tensor xc = x.contiguous(), gc = grad.contiguous();
  torch::Tensor grad_w = torch::empty(p.weights, grad.options());
  torch::Tensor grad_b = with_bias ? torch::empty(p.bias, grad.options()) : torch::Tensor();
  torch::Tensor src_keep, diff_dst_keep, diff_weights_keep, diff_bias_keep;
  memory plain_diff_weights = PlainMemory(grad_w, p.weights, Tag::oihw);
  memory src = InLayout(PlainMemory(xc, p.src, p.activation_tag), pd.src_desc(), stream, src_keep);
  memory diff_dst =
      InLayout(PlainMemory(gc, p.dst, p.activation_tag), pd.diff_dst_desc(), stream, diff_dst_keep);
  memory diff_weights = OutputIn(plain_diff_weights, pd.diff_weights_desc(), diff_weights_keep);
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_WEIGHTS, diff_weights}};
  memory plain_diff_bias, diff_bias;
  if (with_bias) {
    plain_diff_bias = PlainMemory(grad_b, p.bias, Tag::x);
    diff_bias = OutputIn(plain_diff_bias, pd.diff_bias_desc(), diff_bias_keep);
    args[DNNL_ARG_DIFF_BIAS] = diff_bias;
  }
  torch::Tensor scratchpad_keep;
  AddScratchpad(pd.scratchpad_desc(), args, scratchpad_keep);
  primitive.execute(stream, args);
  CopyBack(diff_weights, plain_diff_weights, stream);
  if (with_bias) CopyBack(diff_bias, plain_diff_bias, stream);
  stream.wait();
  return {grad_w, grad_b};
}

// A oneDNN failure (out of memory, a kernel it could not build) as an Error
// that says which convolution and how to do without.
[[noreturn]] void ThrowWithContext(const dnnl::error& e, const char* pass, const Primitives& p) {
  std::ostringstream message;
  message << "oneDNN's Winograd convolution failed in its " << pass << " (batch " << p.src[0]
          << ", " << p.src[1] << " to " << p.dst[1] << " channels, " << p.src[2] << "x" << p.src[3]
          << " pixels): " << e.what()
          << "; `job.convolution: direct` trains with LibTorch's convolutions instead";
  throw Error(message.str());
}

// Autograd around the primitives. The input is saved only when the weights
// need a gradient: the frozen loss network keeps no extra activations.
class WinogradConvFunction : public torch::autograd::Function<WinogradConvFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight,
                               const c10::optional<torch::Tensor>& optional_bias, int64_t padding,
                               bool blocked) {
    // An undefined bias travels as nullopt: autograd takes no undefined inputs.
    const torch::Tensor bias = optional_bias.value_or(torch::Tensor());
    const bool keep_input = weight.requires_grad() || (bias.defined() && bias.requires_grad());
    ctx->save_for_backward({keep_input ? x : torch::Tensor(), weight});
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["with_bias"] = bias.defined();
    ctx->saved_data["blocked"] = blocked;
    ctx->saved_data["x_sizes"] = x.sizes().vec();
    const torch::Tensor input = x.contiguous();
    torch::Tensor out;
    ForEachChunk(input.size(0), [&](int64_t start, int64_t count) {
      const torch::Tensor part = input.narrow(0, start, count);
      auto p = PrimitivesFor(KeyOf(part, weight, bias.defined(), padding, blocked));
      if (!out.defined()) {
        std::vector<int64_t> sizes = p->dst_sizes;
        sizes[0] = input.size(0);
        out = torch::empty(sizes, x.options());
      }
      torch::Tensor out_part = out.narrow(0, start, count);
      try {
        RunForward(*p, part, weight, bias, out_part);
      } catch (const dnnl::error& e) {
        ThrowWithContext(e, "forward pass", *p);
      }
    });
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& weight = saved[1];
    const int64_t padding = ctx->saved_data["padding"].toInt();
    const bool with_bias = ctx->saved_data["with_bias"].toBool();
    const bool blocked = ctx->saved_data["blocked"].toBool();
    const auto x_sizes = ctx->saved_data["x_sizes"].toIntVector();
    const torch::Tensor grad = grads[0].contiguous();
    const bool want_weights = ctx->needs_input_grad(1) || (with_bias && ctx->needs_input_grad(2));
    torch::Tensor grad_x, grad_w, grad_b;
    if (ctx->needs_input_grad(0)) grad_x = torch::empty(x_sizes, grad.options());
    ForEachChunk(x_sizes[0], [&](int64_t start, int64_t count) {
      const ShapeKey key = {count,      weight.size(1), weight.size(0),
                            x_sizes[2], x_sizes[3],     padding,
                            with_bias,  blocked,        at::get_num_threads()};
      auto p = PrimitivesFor(key);
      const torch::Tensor grad_part = grad.narrow(0, start, count);
      try {
        if (grad_x.defined()) {
          torch::Tensor grad_x_part = grad_x.narrow(0, start, count);
          RunBackwardData(*p, grad_part, weight, padding, grad_x_part);
        }
      } catch (const dnnl::error& e) {
        ThrowWithContext(e, "input gradient", *p);
      }
      if (!want_weights) return;
      try {
        auto [w, b] =
            RunBackwardWeights(*p, x.narrow(0, start, count), grad_part, with_bias, padding);
        grad_w = grad_w.defined() ? grad_w.add_(w) : w;
        if (with_bias) grad_b = grad_b.defined() ? grad_b.add_(b) : b;
      } catch (const dnnl::error& e) {
        ThrowWithContext(e, "weight gradient", *p);
      }
    });
    if (want_weights) {
      if (!ctx->needs_input_grad(1)) grad_w = torch::Tensor();
      if (!with_bias || !ctx->needs_input_grad(2)) grad_b = torch::Tensor();
    }
    return {grad_x, grad_w, grad_b, torch::Tensor(), torch::Tensor()};
  }
};

// A float32 CPU tensor in LibTorch's strided layout.
bool CpuFloat(const torch::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.layout() == torch::kStrided;
}

// The checks before asking oneDNN, shared by both layouts: not under
// autocast (bf16 training: the convolutions stay LibTorch's, in bf16), a 3x3
// float32 kernel, at least 16 channels in and out, a padding oneDNN's Winograd
// may take that leaves an output, and sizes within 32-bit offsets.
bool Eligible(int64_t n, int64_t h, int64_t w, const torch::Tensor& weight,
              const torch::Tensor& bias, int64_t padding) {
  if (at::autocast::is_cpu_enabled() || !CpuFloat(weight) || weight.dim() != 4 ||
      weight.size(2) != 3 || weight.size(3) != 3) {
    return false;
  }
  if (bias.defined() && !(CpuFloat(bias) && bias.dim() == 1 && bias.size(0) == weight.size(0))) {
    return false;
  }
  const int64_t oc = weight.size(0), ic = weight.size(1);
  const int64_t oh = h + 2 * padding - 2, ow = w + 2 * padding - 2;
  // Fewer than 16 channels (VGG's image layer: 3) fill oneDNN's 16-wide
  // blocks with zeros: Winograd ran 0.65x the direct kernel there.
  if (ic < 16 || oc < 16 || padding < 0 || padding > 2 || n < 1 || oh < 1 || ow < 1) return false;
  // oneDNN's Winograd kernels index their transformed tiles (6x6 values per
  // 4x4 output tile and channel) with 32-bit integers: beyond that (training
  // at 4096 px, say) LibTorch's convolution runs.
  const int64_t tiles = n * ((oh + 3) / 4) * ((ow + 3) / 4);
  const int64_t limit = int64_t(1) << 31;
  return tiles * 36 * std::max(ic, oc) < limit && n * std::max(ic, oc) * (h + 2) * (w + 2) < limit;
}

// The NCHW path: also a contiguous float32 CPU input whose channels match.
bool Eligible(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
              int64_t padding) {
  return x.dim() == 4 && CpuFloat(x) && x.is_contiguous() && weight.dim() == 4 &&
         weight.size(1) == x.size(1) &&
         Eligible(x.size(0), x.size(2), x.size(3), weight, bias, padding);
}

bool TakesWinograd(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                   int64_t padding) {
  return g_enabled && Eligible(x, weight, bias, padding) &&
         PrimitivesFor(KeyOf(x, weight, bias.defined(), padding, false))->supported;
}

c10::optional<torch::Tensor> OptionalBias(const torch::Tensor& bias) {
  c10::optional<torch::Tensor> optional_bias;
  if (bias.defined()) optional_bias = bias;
  return optional_bias;
}

}  // namespace

bool WinogradApplies(const torch::Tensor& x, const torch::Tensor& weight, int64_t padding) {
  return TakesWinograd(x, weight, torch::Tensor(), padding);
}

torch::Tensor Conv3x3(const torch::Tensor& x, const torch::Tensor& weight,
                      const torch::Tensor& bias, int64_t padding) {
  if (!TakesWinograd(x, weight, bias, padding)) return torch::conv2d(x, weight, bias, 1, padding);
  return WinogradConvFunction::apply(x, weight, OptionalBias(bias), padding, false);
}

bool BlockedWinogradApplies(const torch::Tensor& x) {
  return g_enabled && WinogradAvailable() && x.dim() == 4 && x.device().is_cpu() &&
         x.scalar_type() == torch::kFloat32 && x.is_contiguous() &&
         x.size(1) % kWinogradBlock == 0 && x.numel() > 0;
}

torch::Tensor Conv3x3Blocked(const torch::Tensor& x, const torch::Tensor& weight,
                             const torch::Tensor& bias, int64_t padding) {
  SF_CHECK(x.dim() == 5 && x.size(4) == kWinogradBlock && weight.dim() == 4 &&
               weight.size(1) == x.size(1) * kWinogradBlock &&
               weight.size(0) % kWinogradBlock == 0 && weight.size(2) == 3 && weight.size(3) == 3 &&
               (!bias.defined() || (bias.dim() == 1 && bias.size(0) == weight.size(0))),
           "Conv3x3Blocked takes [N, C/16, H, W, 16], 3x3 weights of C in and a multiple of 16 "
           "out, and a bias of one value per output channel");
  const bool eligible =
      CpuFloat(x) && Eligible(x.size(0), x.size(2), x.size(3), weight, bias, padding);
  if (!g_enabled || !eligible ||
      !PrimitivesFor(KeyOf(x, weight, bias.defined(), padding, true))->supported) {
    return ToBlocked(torch::conv2d(FromBlocked(x), weight, bias, 1, padding));
  }
  return WinogradConvFunction::apply(x.contiguous(), weight, OptionalBias(bias), padding, true);
}

bool WinogradAvailable() {
  static const bool available = [] {
    const ShapeKey probe = {1, 16, 16, 8, 8, 1, false, false, at::get_num_threads()};
    return PrimitivesFor(probe)->supported;
  }();
  return available;
}

#endif  // STYLEFLEET_HAVE_ONEDNN

}  // namespace stylefleet
