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
