#include "loss/losses.h"

#include "common/error.h"

namespace stylefleet {

namespace {

// F F^T and its backward, routed through oneDNN's convolutions on CPU instead
// of the system BLAS: Debian's OpenBLAS falls back to generic SSE3 kernels on
// CPUs it does not know (about 30 GFLOP/s on two cores, where oneDNN reaches
// 100+), and the Gram matrices with their backward were a fifth of a step
// there. Measured per layer shape with tests/bench; bmm elsewhere (GPU, other
// types).
bool UseConvolutions(const torch::Tensor& f) {
  return f.device().is_cpu() && f.scalar_type() == torch::kFloat32;
}

// Forward: one 1x1 convolution per image, F^T viewed as a 1 x HW x C x 1
// image (HW input channels, C pixels) and F as C x HW x 1 x 1 weights. Below
// 128 channels the convolution's reorders cost more than they save.
constexpr int64_t kConvolutionGramMinChannels = 128;

class GramProduct : public torch::autograd::Function<GramProduct> {
 public:
  // f: B x C x HW; returns B x C x C.
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& f) {
    ctx->save_for_backward({f});
    const int64_t b = f.size(0), c = f.size(1), hw = f.size(2);
    if (!UseConvolutions(f) || c < kConvolutionGramMinChannels) {
      return torch::bmm(f, f.transpose(1, 2));
    }
    std::vector<torch::Tensor> grams;
    for (int64_t i = 0; i < b; ++i) {
      const torch::Tensor x = f[i];
      grams.push_back(torch::conv2d(x.t().unsqueeze(0).unsqueeze(-1), x.reshape({c, hw, 1, 1}))
                          .reshape({c, c}));
    }
    return torch::stack(grams);
  }

  // dL/dF = (dG + dG^T) F: one product (autograd's
  // generic bmm backward takes two and a sum). On CPU each image's product is
  // a 1x1 convolution of F (C channels, HW pixels) with C x C weights.
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const torch::Tensor f = ctx->get_saved_variables()[0];
    const torch::Tensor g = grads[0];
    const torch::Tensor symmetric = g + g.transpose(1, 2);
    if (!UseConvolutions(f)) return {torch::bmm(symmetric, f)};
    const int64_t b = f.size(0), c = f.size(1), hw = f.size(2);
    std::vector<torch::Tensor> parts;
    for (int64_t i = 0; i < b; ++i) {
      parts.push_back(torch::conv2d(f[i].reshape({1, c, hw, 1}),
                                    symmetric[i].contiguous().reshape({c, c, 1, 1}))
                          .reshape({c, hw}));
    }
    return {torch::stack(parts)};
  }
};

}  // namespace

torch::Tensor Gram(const torch::Tensor& features) {
  SF_CHECK(features.dim() == 4, "gram expects B x C x H x W");
  const int64_t b = features.size(0), c = features.size(1);
  const int64_t hw = features.size(2) * features.size(3);
  const torch::Tensor f = features.reshape({b, c, hw});
  return GramProduct::apply(f) / double(hw * c);
}

torch::Tensor ContentLayerLoss(const torch::Tensor& generated, const torch::Tensor& content) {
  return (generated - content).pow(2).sum() / double(generated.numel());
}

torch::Tensor StyleLayerLoss(const torch::Tensor& generated, const torch::Tensor& style_gram) {
  return (Gram(generated) - style_gram).pow(2).sum() / double(generated.numel());
}

torch::Tensor LuminanceImage(const torch::Tensor& rgb) {
  SF_CHECK(rgb.dim() == 4 && rgb.size(1) == 3, "LuminanceImage takes a B x 3 x H x W batch");
  const torch::Tensor luma =
      rgb.select(1, 0) * 0.299 + rgb.select(1, 1) * 0.587 + rgb.select(1, 2) * 0.114;
  return luma.unsqueeze(1).expand({-1, 3, -1, -1}).contiguous();
}

// The seed's total_variation_loss: tf.nn.l2_loss(dx) / tf.size(dx) + the same
// for dy, l2_loss being half the sum of squares. Content and style multiply
// their l2_loss by 2; the seed's TV does not, so the half stays.
torch::Tensor TotalVariationLoss(const torch::Tensor& image) {
  const int64_t h = image.size(2), w = image.size(3);
  const torch::Tensor dy = image.slice(2, 0, h - 1) - image.slice(2, 1, h);
  const torch::Tensor dx = image.slice(3, 0, w - 1) - image.slice(3, 1, w);
  return dx.pow(2).sum() / double(2 * dx.numel()) + dy.pow(2).sum() / double(2 * dy.numel());
}

LossTerms ComputeLosses(const std::vector<torch::Tensor>& generated_content,
                        const std::vector<torch::Tensor>& content_features,
                        const std::vector<torch::Tensor>& generated_style,
                        const std::vector<torch::Tensor>& style_grams,
                        const torch::Tensor& generated_image, const LossWeights& weights) {
  SF_CHECK(generated_content.size() == content_features.size(), "content layer count");
  SF_CHECK(generated_style.size() == style_grams.size(), "style layer count");
  LossTerms terms;
  const auto zero = torch::zeros({}, generated_image.options());
  terms.content = zero;
  for (size_t i = 0; i < generated_content.size(); ++i) {
    terms.content = terms.content + ContentLayerLoss(generated_content[i], content_features[i]);
  }
  terms.style = zero;
  for (size_t i = 0; i < generated_style.size(); ++i) {
    terms.style_layers.push_back(StyleLayerLoss(generated_style[i], style_grams[i]));
    terms.style = terms.style + terms.style_layers.back();
  }
  terms.tv = TotalVariationLoss(generated_image);
  terms.total = weights.style * terms.style + weights.content * terms.content;
  if (weights.tv != 0) terms.total = terms.total + weights.tv * terms.tv;
  return terms;
}

}  // namespace stylefleet
