#include "model/transformer_kernels.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>

#include <vector>

#include "common/error.h"

namespace stylefleet {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

bool PlainCpuFloat(const torch::Tensor& t) {
  return t.defined() && t.device().is_cpu() && t.scalar_type() == torch::kFloat32 &&
         t.is_contiguous() && !at::autocast::is_cpu_enabled();
}

// Which input row or column padded index `at` copies: reflection about the
// first and last entries (size > pad, checked by the caller).
inline int64_t ReflectedSource(int64_t at, int64_t size, int64_t pad) {
  const int64_t j = at - pad;
  return j < 0 ? -j : j >= size ? 2 * (size - 1) - j : j;
}

// One padded row from its input row: the interior as a copy, `pad` reflected
// entries each side.
void PadRow(const float* __restrict source, int64_t w, int64_t pad, float* __restrict row) {
  std::copy(source, source + w, row + pad);
  for (int64_t c = 1; c <= pad; ++c) {
    row[pad - c] = source[c];
    row[pad + w - 1 + c] = source[w - 1 - c];
  }
}

// The gradient of PadRow: `grad_row` (w + 2 * pad entries) folded onto the w
// entries of `target`, assigned when `assign`, else added.
void FoldRow(const float* __restrict grad_row, int64_t w, int64_t pad, bool assign,
             float* __restrict target) {
  const float* interior = grad_row + pad;
  if (assign) {
    std::copy(interior, interior + w, target);
  } else {
    for (int64_t c = 0; c < w; ++c) target[c] += interior[c];
  }
  for (int64_t c = 1; c <= pad; ++c) {
    target[c] += grad_row[pad - c];
    target[w - 1 - c] += grad_row[pad + w - 1 + c];
  }
}

// LibTorch 1.13's reflection_pad2d computes a source index per element and
// ran at about 1 GB/s here; this copies rows. Each task owns whole planes, so
// the backward pass writes every input-gradient row from the padded rows that
// read it, with no zero fill and no two tasks on one element.
class ReflectionPadFunction : public torch::autograd::Function<ReflectionPadFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, int64_t pad) {
    const int64_t planes = x.size(0) * x.size(1), h = x.size(2), w = x.size(3);
    const int64_t out_h = h + 2 * pad, out_w = w + 2 * pad;
    torch::Tensor out = torch::empty({x.size(0), x.size(1), out_h, out_w}, x.options());
    const float* in = x.data_ptr<float>();
    float* dst = out.data_ptr<float>();
    at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        for (int64_t r = 0; r < out_h; ++r) {
          PadRow(in + (p * h + ReflectedSource(r, h, pad)) * w, w, pad,
                 dst + (p * out_h + r) * out_w);
        }
      }
    });
    ctx->saved_data["pad"] = pad;
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const int64_t pad = ctx->saved_data["pad"].toInt();
    const torch::Tensor grad = grads[0].contiguous();
    const int64_t out_h = grad.size(2), out_w = grad.size(3);
    const int64_t planes = grad.size(0) * grad.size(1), h = out_h - 2 * pad, w = out_w - 2 * pad;
    torch::Tensor grad_x = torch::empty({grad.size(0), grad.size(1), h, w}, grad.options());
    const float* from = grad.data_ptr<float>();
    float* to = grad_x.data_ptr<float>();
    at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const float* plane = from + p * out_h * out_w;
        for (int64_t r = 0; r < h; ++r) {
          float* target = to + (p * h + r) * w;
          FoldRow(plane + (r + pad) * out_w, w, pad, /*assign=*/true, target);
          // Padded rows above and below that reflect row r.
          if (r >= 1 && r <= pad) FoldRow(plane + (pad - r) * out_w, w, pad, false, target);
          if (r >= h - 1 - pad && r <= h - 2) {
            FoldRow(plane + (pad + 2 * (h - 1) - r) * out_w, w, pad, false, target);
          }
        }
      }
    });
    return {grad_x, torch::Tensor()};
  }
};

// [O, I, KH, KW] -> [O * KH, I, 1, KW]: output channel o * KH + j holds
// kernel row j of output channel o.
torch::Tensor RowSplitWeight(const torch::Tensor& weight) {
  const int64_t o = weight.size(0), i = weight.size(1), kh = weight.size(2), kw = weight.size(3);
  return weight.permute({0, 2, 1, 3}).reshape({o * kh, i, 1, kw});
}

class NarrowOutputConvFunction : public torch::autograd::Function<NarrowOutputConvFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight,
                               const c10::optional<torch::Tensor>& optional_bias) {
    // An undefined bias travels as nullopt: autograd takes no undefined inputs.
    const torch::Tensor bias = optional_bias.value_or(torch::Tensor());
    const int64_t n = x.size(0), o = weight.size(0), kh = weight.size(2);
    // rows[n, o * kh + j, r, c]: kernel row j of channel o applied to input row r.
    const torch::Tensor rows = torch::conv2d(x, RowSplitWeight(weight)).contiguous();
    const int64_t in_h = rows.size(2), out_w = rows.size(3), out_h = in_h - kh + 1;
    torch::Tensor out = torch::empty({n, o, out_h, out_w}, x.options());
    const float* split = rows.data_ptr<float>();
    const torch::Tensor shift_tensor = bias.defined() ? bias.contiguous() : torch::Tensor();
    const float* shift = bias.defined() ? shift_tensor.data_ptr<float>() : nullptr;
    float* dst = out.data_ptr<float>();
    at::parallel_for(0, n * o, 1, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const float* planes = split + p * kh * in_h * out_w;  // image p / o, channel p % o
        const float start = shift != nullptr ? shift[p % o] : 0.0f;
        for (int64_t r = 0; r < out_h; ++r) {
          float* row = dst + (p * out_h + r) * out_w;
          std::fill(row, row + out_w, start);
          for (int64_t j = 0; j < kh; ++j) {
            const float* source = planes + (j * in_h + r + j) * out_w;
            for (int64_t c = 0; c < out_w; ++c) row[c] += source[c];
          }
        }
      }
    });
    // The input only for the weight gradient (a frozen layer needs none).
    ctx->save_for_backward({weight.requires_grad() ? x : torch::Tensor(), weight});
    ctx->saved_data["with_bias"] = bias.defined();
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& weight = saved[1];
    const torch::Tensor grad = grads[0].contiguous();
    const int64_t o = weight.size(0), kh = weight.size(2), kw = weight.size(3);
    torch::Tensor grad_x, grad_w, grad_b;
    if (ctx->needs_input_grad(0)) {
      // The transposed convolution as a plain one: few channels in, many out.
      grad_x = torch::conv2d(grad, weight.flip({2, 3}).transpose(0, 1).contiguous(), {}, 1,
                             {kh - 1, kw - 1});
    }
    if (ctx->needs_input_grad(1)) {
      // The forward pass's row-split convolution received, for its channel
      // o * kh + j at input row r, the gradient of output row r - j.
      const int64_t n = grad.size(0), out_h = grad.size(2), out_w = grad.size(3);
      const int64_t in_h = x.size(2);
      torch::Tensor grad_rows = torch::zeros({n, o, kh, in_h, out_w}, grad.options());
      for (int64_t j = 0; j < kh; ++j) {
        grad_rows.select(2, j).narrow(2, j, out_h).copy_(grad);
      }
      grad_rows = grad_rows.view({n, o * kh, in_h, out_w});
      const torch::Tensor split = RowSplitWeight(weight);
      const torch::Tensor grad_split =
          std::get<1>(at::convolution_backward(grad_rows, x, split, c10::nullopt, {1, 1}, {0, 0},
                                               {1, 1}, false, {0, 0}, 1, {false, true, false}));
      grad_w = grad_split.view({o, kh, weight.size(1), kw}).permute({0, 2, 1, 3}).contiguous();
    }
    if (ctx->saved_data["with_bias"].toBool() && ctx->needs_input_grad(2)) {
      grad_b = grad.sum({0, 2, 3});
    }
    return {grad_x, grad_w, grad_b};
  }
};

}  // namespace

bool NarrowOutputConvApplies(const torch::Tensor& x, const torch::Tensor& weight) {
  const bool shapes = PlainCpuFloat(x) && x.dim() == 4 && weight.defined() &&
                      weight.device().is_cpu() && weight.scalar_type() == torch::kFloat32 &&
                      weight.dim() == 4 && weight.size(0) < 16 && weight.size(2) > 1 &&
                      weight.size(1) == x.size(1) && weight.size(2) <= x.size(2) &&
                      weight.size(3) <= x.size(3);
  if (!shapes) return false;
  // The row-split output is kernel-height times the output, held for a moment
  // with oneDNN's blocked copy of it: about 1.1 GB together for a 3000x1687
  // image in one pass. Training batches (29 MB at 256 px, batch 4) and
  // stylize's tiles stay below the bound.
  const double row_split_bytes = double(x.size(0)) * weight.size(0) * weight.size(2) * x.size(2) *
                                 (x.size(3) - weight.size(3) + 1) * sizeof(float);
  return row_split_bytes <= kNarrowOutputConvMaxBytes;
}

torch::Tensor ReflectionPad(const torch::Tensor& x, int64_t pad) {
  if (pad == 0) return x;
  if (!PlainCpuFloat(x) || x.dim() != 4 || x.size(2) <= pad || x.size(3) <= pad) {
    return torch::nn::functional::pad(
        x, torch::nn::functional::PadFuncOptions({pad, pad, pad, pad}).mode(torch::kReflect));
  }
  return ReflectionPadFunction::apply(x, pad);
}

torch::Tensor NarrowOutputConv(const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias) {
  if (!NarrowOutputConvApplies(x, weight) ||
      (bias.defined() && (bias.scalar_type() != torch::kFloat32 || bias.dim() != 1 ||
                          bias.size(0) != weight.size(0)))) {
    return torch::conv2d(x, weight, bias);
  }
  c10::optional<torch::Tensor> optional_bias;
  if (bias.defined()) optional_bias = bias;
  return NarrowOutputConvFunction::apply(x, weight, optional_bias);
}

}  // namespace stylefleet
