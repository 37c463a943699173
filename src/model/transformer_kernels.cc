#include "model/transformer_kernels.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>

#include <vector>

#include "common/error.h"

namespace stylefleet {
namespace F = torch::nn::functional;

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

bool PlainCpuFloat(const torch::Tensor& t) {
  return t.defined() && t.device().is_cpu() && t.scalar_type() == torch::kFloat32 &&
         t.is_contiguous() && !at::autocast::is_cpu_enabled();
}

std::vector<int64_t> SourceIndex(int64_t size, int64_t upsample, int64_t pad) {
  std::vector<int64_t> index(size * upsample + 2 * pad);
  for (int64_t j = 0; j < int64_t(index.size()); ++j) {
    index[j] = UpsampledReflectedSource(j, size, upsample, pad);
  }
  return index;
}

// Each output plane is gathered from its input plane through two index
// tables (rows, columns); the backward pass scatter-adds through the same
// tables, one plane per task, so no two tasks write the same element.
class UpsampleReflectionPadFunction
    : public torch::autograd::Function<UpsampleReflectionPadFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, int64_t upsample,
                               int64_t pad) {
    const int64_t planes = x.size(0) * x.size(1), h = x.size(2), w = x.size(3);
    const std::vector<int64_t> rows = SourceIndex(h, upsample, pad);
    const std::vector<int64_t> cols = SourceIndex(w, upsample, pad);
    const int64_t out_h = int64_t(rows.size()), out_w = int64_t(cols.size());
    torch::Tensor out = torch::empty({x.size(0), x.size(1), out_h, out_w}, x.options());
    const float* in = x.data_ptr<float>();
    float* dst = out.data_ptr<float>();
    at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const float* plane = in + p * h * w;
        float* target = dst + p * out_h * out_w;
        for (int64_t r = 0; r < out_h; ++r) {
          const float* source_row = plane + rows[r] * w;
          float* row = target + r * out_w;
          if (upsample == 1) {
            // The interior is a plain copy; only the 2 * pad edge columns reflect.
            std::copy(source_row, source_row + w, row + pad);
            for (int64_t c = 0; c < pad; ++c) row[c] = source_row[cols[c]];
            for (int64_t c = pad + w; c < out_w; ++c) row[c] = source_row[cols[c]];
          } else {
            for (int64_t c = 0; c < out_w; ++c) row[c] = source_row[cols[c]];
          }
        }
      }
    });
    ctx->saved_data["upsample"] = upsample;
    ctx->saved_data["pad"] = pad;
    ctx->saved_data["x_sizes"] = x.sizes().vec();
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const int64_t upsample = ctx->saved_data["upsample"].toInt();
    const int64_t pad = ctx->saved_data["pad"].toInt();
    const auto x_sizes = ctx->saved_data["x_sizes"].toIntVector();
    const torch::Tensor grad = grads[0].contiguous();
    const int64_t planes = x_sizes[0] * x_sizes[1], h = x_sizes[2], w = x_sizes[3];
    const std::vector<int64_t> rows = SourceIndex(h, upsample, pad);
    const std::vector<int64_t> cols = SourceIndex(w, upsample, pad);
    const int64_t out_h = int64_t(rows.size()), out_w = int64_t(cols.size());
    SF_CHECK(grad.size(2) == out_h && grad.size(3) == out_w,
             "UpsampleReflectionPad: gradient of an unexpected shape");
    torch::Tensor grad_x = torch::zeros(x_sizes, grad.options());
    const float* from = grad.data_ptr<float>();
    float* to = grad_x.data_ptr<float>();
    at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const float* source = from + p * out_h * out_w;
        float* plane = to + p * h * w;
        for (int64_t r = 0; r < out_h; ++r) {
          const float* row = source + r * out_w;
          float* target_row = plane + rows[r] * w;
          if (upsample == 1) {
            for (int64_t c = 0; c < w; ++c) target_row[c] += row[c + pad];
            for (int64_t c = 0; c < pad; ++c) target_row[cols[c]] += row[c];
            for (int64_t c = pad + w; c < out_w; ++c) target_row[cols[c]] += row[c];
          } else {
            for (int64_t c = 0; c < out_w; ++c) target_row[cols[c]] += row[c];
          }
        }
      }
    });
    return {grad_x, torch::Tensor(), torch::Tensor()};
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

torch::Tensor UpsampleReflectionPad(const torch::Tensor& x, int64_t upsample, int64_t pad) {
  SF_CHECK(upsample >= 1 && pad >= 0, "UpsampleReflectionPad: upsample >= 1 and pad >= 0");
  if (upsample == 1 && pad == 0) return x;
  const bool own =
      PlainCpuFloat(x) && x.dim() == 4 && pad < x.size(2) * upsample && pad < x.size(3) * upsample;
  if (own) return UpsampleReflectionPadFunction::apply(x, upsample, pad);
  torch::Tensor y = x;
  if (upsample > 1) {
    y = F::interpolate(y, F::InterpolateFuncOptions()
                              .scale_factor(std::vector<double>{double(upsample), double(upsample)})
                              .mode(torch::kNearest));
  }
  if (pad == 0) return y;
  return F::pad(y, F::PadFuncOptions({pad, pad, pad, pad}).mode(torch::kReflect));
}

bool NarrowOutputConvApplies(const torch::Tensor& x, const torch::Tensor& weight) {
  return PlainCpuFloat(x) && x.dim() == 4 && weight.defined() && weight.device().is_cpu() &&
         weight.scalar_type() == torch::kFloat32 && weight.dim() == 4 && weight.size(0) < 16 &&
         weight.size(2) > 1 && weight.size(1) == x.size(1) && weight.size(2) <= x.size(2) &&
         weight.size(3) <= x.size(3);
}

torch::Tensor NarrowOutputConv(const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias) {
  if (!NarrowOutputConvApplies(x, weight) ||
      (bias.defined() && bias.scalar_type() != torch::kFloat32)) {
    return torch::conv2d(x, weight, bias);
  }
  c10::optional<torch::Tensor> optional_bias;
  if (bias.defined()) optional_bias = bias;
  return NarrowOutputConvFunction::apply(x, weight, optional_bias);
}

}  // namespace stylefleet
