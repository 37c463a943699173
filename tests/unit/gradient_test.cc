// The gradients a training step computes, against PyTorch's autograd
// (tests/reference/reference.py, float64) on the same weights and images. The
// loss values can agree while the gradients do not (a custom backward, such
// as the Gram's, is invisible to a forward check), and the gradients are what
// training uses.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "model/tensor_file.h"
#include "model/transformer_net.h"
#include "model/vgg16.h"
#include "step/forward_pass.h"
#include "tensor_check.h"
#include "test_util.h"

namespace stylefleet {
namespace {
using testing::MaxRelativeDifference;

// One style's step as the trainer runs it (ForwardStyleLosses, then backward
// of the total), fp32, on a torchvision-convention loss network (std != 1, so
// the input normalization matters) with every loss term weighted in. Only
// the parameters training updates are compared: the biases an instance norm
// cancels have a true gradient of 0, and both sides hold rounding noise there.
TEST(GradientCrossCheckTest, TransformerGradientsMatchPyTorchAutogradWithin1e4) {
  testing::TempDir dir;
  const testing::CommandResult reference = testing::RunReference("gradients " + dir.path());
  ASSERT_EQ(reference.exit_code, 0) << reference.output;
  const TensorDict expected = LoadTensorDict(dir / "expected.pt");
  auto get = [&](const std::string& key) {
    const torch::Tensor* t = FindTensor(expected, key);
    if (t == nullptr) throw std::runtime_error("expected.pt lacks " + key);
    return *t;
  };

  const Vgg16 vgg = Vgg16::Load(dir / "vgg.pt");
  TransformerNet net;
  LoadTransformerParameters(net, LoadTensorDict(dir / "transformer.pt"), "transformer.pt");
  LossNetworkUse use;
  use.content_layers = {6};
  use.style_layers = {1, 3, 6, 9};
  const std::vector<torch::Tensor> grams =
      StyleGrams(vgg, get("style_image"), use.style_layers, Precision::kFp32);
  const torch::Tensor w = get("weights");
  const StyleLossTarget target{
      &grams, LossWeights{w[0].item<double>(), w[1].item<double>(), w[2].item<double>()}};
  const std::vector<LossTerms> terms =
      ForwardStyleLosses({&net}, vgg, get("content_image"), {target}, use, nullptr);
  ASSERT_EQ(terms.size(), 1u);
  terms[0].total.backward();

  EXPECT_LT(MaxRelativeDifference(terms[0].content, get("content")), 1e-5);
  EXPECT_LT(MaxRelativeDifference(terms[0].style, get("style")), 1e-5);
  EXPECT_LT(MaxRelativeDifference(terms[0].tv, get("tv")), 1e-5);
  EXPECT_LT(MaxRelativeDifference(terms[0].total, get("total")), 1e-5);
  const auto trainable = TrainableParameters(net);
  ASSERT_GT(trainable.size(), 30u);
  for (const auto& [name, param] : trainable) {
    ASSERT_TRUE(param.grad().defined()) << name;
    EXPECT_LT(MaxRelativeDifference(param.grad(), get("grad." + name)), 1e-4) << name;
  }
}

}  // namespace
}  // namespace stylefleet
