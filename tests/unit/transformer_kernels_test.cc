// model/transformer_kernels: the transformer's own reflection pad and narrow
// convolution against LibTorch's (values and every gradient, float64 as the
// truth), their fallbacks, the whole transformer against the same network written with
// LibTorch's ops only, and its norm + ReLU against LibTorch's pair.
#include "model/transformer_kernels.h"

#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/transformer_net.h"
#include "model/winograd_conv.h"
#include "tensor_check.h"

namespace stylefleet {
namespace {

namespace F = torch::nn::functional;
using testing::MaxRelativeDifference;

torch::Tensor LibTorchUpsamplePad(const torch::Tensor& x, int64_t upsample, int64_t pad) {
  torch::Tensor y = x;
  if (upsample > 1) {
    y = F::interpolate(y, F::InterpolateFuncOptions()
                              .scale_factor(std::vector<double>{double(upsample), double(upsample)})
                              .mode(torch::kNearest));
  }
  return F::pad(y, F::PadFuncOptions({pad, pad, pad, pad}).mode(torch::kReflect));
}

struct ConvCase {
  int64_t batch, in, out, kernel_h, kernel_w, height, width;
  bool bias;
};

struct ConvResult {
  torch::Tensor out, x, weight, bias;
};

// Output and gradients of sum(out * probe); `own` picks NarrowOutputConv.
ConvResult RunConv(const torch::Tensor& x0, const torch::Tensor& w0, const torch::Tensor& b0,
                   const torch::Tensor& probe, bool own, bool x_grad = true) {
  torch::Tensor x = x0.detach().clone().requires_grad_(x_grad);
  torch::Tensor w = w0.detach().clone().requires_grad_(true);
  torch::Tensor b = b0.defined() ? b0.detach().clone().requires_grad_(true) : torch::Tensor();
  const torch::Tensor out = own ? NarrowOutputConv(x, w, b) : torch::conv2d(x, w, b);
  (out * probe.to(out.scalar_type())).sum().backward();
  return {out.detach(), x_grad ? x.grad() : torch::Tensor(), w.grad(),
          b.defined() ? b.grad() : torch::Tensor()};
}

TEST(TransformerKernelsTest, NarrowOutputConvMatchesLibTorch) {
  // The transformer's last layer (32 -> 3, 9x9), one output channel, a
  // rectangular kernel, fifteen outputs, no bias.
  for (const ConvCase& c :
       {ConvCase{2, 32, 3, 9, 9, 20, 17, true}, ConvCase{1, 8, 1, 3, 5, 7, 9, true},
        ConvCase{3, 16, 15, 2, 3, 6, 5, false}, ConvCase{1, 4, 3, 9, 9, 9, 9, true}}) {
    SCOPED_TRACE(::testing::Message()
                 << c.in << "->" << c.out << " channels, kernel " << c.kernel_h << "x" << c.kernel_w
                 << ", input " << c.height << "x" << c.width);
    torch::manual_seed(5);
    const torch::Tensor x = torch::randn({c.batch, c.in, c.height, c.width});
    const torch::Tensor w = torch::randn({c.out, c.in, c.kernel_h, c.kernel_w}) /
                            std::sqrt(double(c.in * c.kernel_h * c.kernel_w));
    const torch::Tensor b = c.bias ? torch::randn({c.out}) : torch::Tensor();
    ASSERT_TRUE(NarrowOutputConvApplies(x, w));
    const torch::Tensor probe =
        torch::randn({c.batch, c.out, c.height - c.kernel_h + 1, c.width - c.kernel_w + 1});
    const ConvResult exact = RunConv(x.to(torch::kFloat64), w.to(torch::kFloat64),
                                     c.bias ? b.to(torch::kFloat64) : b, probe, false);
    const ConvResult direct = RunConv(x, w, b, probe, false);
    const ConvResult own = RunConv(x, w, b, probe, true);
    ASSERT_EQ(own.out.sizes(), exact.out.sizes());
    for (const auto& [what, t] : std::vector<std::pair<const char*, std::array<torch::Tensor, 3>>>{
             {"output", {own.out, exact.out, direct.out}},
             {"input gradient", {own.x, exact.x, direct.x}},
             {"weight gradient", {own.weight, exact.weight, direct.weight}},
             {"bias gradient", {own.bias, exact.bias, direct.bias}}}) {
      if (!t[1].defined()) {
        EXPECT_FALSE(t[0].defined()) << what;
        continue;
      }
      ASSERT_TRUE(t[0].defined()) << what;
      EXPECT_LT(MaxRelativeDifference(t[0], t[1]), 1e-5)
          << what << " (LibTorch float32: " << MaxRelativeDifference(t[2], t[1]) << ")";
    }
    // Only the weights need a gradient (the input is frozen): the same.
    const ConvResult weights_only = RunConv(x, w, b, probe, true, /*x_grad=*/false);
    EXPECT_FALSE(weights_only.x.defined());
    EXPECT_TRUE(torch::equal(weights_only.weight, own.weight));
  }
}

TEST(TransformerKernelsTest, NarrowOutputConvFallsBackToLibTorch) {
  torch::manual_seed(6);
  const torch::Tensor x = torch::randn({1, 16, 10, 10});
  const torch::Tensor w = torch::randn({3, 16, 3, 3}), b = torch::randn({3});
  // 16 output channels, a one-row kernel, float64, channels-last: LibTorch's.
  EXPECT_FALSE(NarrowOutputConvApplies(x, torch::randn({16, 16, 3, 3})));
  EXPECT_FALSE(NarrowOutputConvApplies(x, torch::randn({3, 16, 1, 3})));
  EXPECT_FALSE(NarrowOutputConvApplies(x.to(torch::kFloat64), w.to(torch::kFloat64)));
  EXPECT_FALSE(NarrowOutputConvApplies(x.contiguous(torch::MemoryFormat::ChannelsLast), w));
  // A row-split output over the bound (here 272 MB): LibTorch's convolution.
  // The input is allocated and never touched.
  const torch::Tensor tall = torch::empty({1, 1, 8300, 4097});
  const torch::Tensor two_by_two = torch::randn({1, 1, 2, 2});
  EXPECT_FALSE(NarrowOutputConvApplies(tall, two_by_two));
  EXPECT_TRUE(NarrowOutputConvApplies(tall.narrow(2, 0, 4096).contiguous(), two_by_two));
  // A bias of another size than the output channels: LibTorch's error, not a read past its end.
  EXPECT_THROW(NarrowOutputConv(x, w, torch::randn({2})), c10::Error);
  const torch::Tensor wide = torch::randn({16, 16, 3, 3});
  EXPECT_TRUE(torch::equal(NarrowOutputConv(x, wide, {}), torch::conv2d(x, wide)));
  at::autocast::set_cpu_enabled(true);
  EXPECT_FALSE(NarrowOutputConvApplies(x, w));
  const torch::Tensor ours = NarrowOutputConv(x, w, b), theirs = torch::conv2d(x, w, b);
  at::autocast::set_cpu_enabled(false);
  at::autocast::clear_cache();
  EXPECT_EQ(ours.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(ours, theirs));
}

// Values bit for bit (a copy); the input gradient against LibTorch's in
// float64, for sides down to pad + 1, where rows reflect from both ends.
TEST(TransformerKernelsTest, ReflectionPadMatchesLibTorch) {
  torch::manual_seed(8);
  struct Case {
    int64_t batch, channels, height, width, pad;
  };
  for (const Case& c : {Case{2, 3, 7, 9, 1}, Case{1, 5, 2, 2, 1}, Case{2, 4, 11, 10, 4},
                        Case{1, 2, 5, 6, 4}, Case{3, 17, 16, 13, 2}}) {
    SCOPED_TRACE(c.height * 1000 + c.width * 10 + c.pad);
    const torch::Tensor x0 = torch::randn({c.batch, c.channels, c.height, c.width});
    const torch::Tensor probe = torch::randn(
        {c.batch, c.channels, c.height + 2 * c.pad, c.width + 2 * c.pad}, torch::kFloat64);
    torch::Tensor x = x0.clone().requires_grad_(true);
    const torch::Tensor ours = ReflectionPad(x, c.pad);
    (ours * probe.to(torch::kFloat32)).sum().backward();
    torch::Tensor x64 = x0.to(torch::kFloat64).requires_grad_(true);
    const torch::Tensor theirs = LibTorchUpsamplePad(x64, 1, c.pad);
    (theirs * probe).sum().backward();
    EXPECT_TRUE(torch::equal(ours.detach(), LibTorchUpsamplePad(x0, 1, c.pad)));
    EXPECT_LT(MaxRelativeDifference(x.grad(), x64.grad()), 1e-6);
  }
}

TEST(TransformerKernelsTest, ReflectionPadFallsBackToLibTorch) {
  torch::manual_seed(9);
  const torch::Tensor x = torch::randn({2, 3, 6, 5});
  EXPECT_TRUE(ReflectionPad(x, 0).is_same(x));
  // float64 and channels-last: LibTorch's own, the same values.
  const torch::Tensor x64 = x.to(torch::kFloat64);
  EXPECT_TRUE(torch::equal(ReflectionPad(x64, 2), LibTorchUpsamplePad(x64, 1, 2)));
  const torch::Tensor last = x.contiguous(torch::MemoryFormat::ChannelsLast);
  EXPECT_TRUE(torch::equal(ReflectionPad(last, 1), LibTorchUpsamplePad(x, 1, 1)));
  // A pad not smaller than a side: LibTorch's error.
  EXPECT_THROW(ReflectionPad(x, 5), c10::Error);
  EXPECT_THROW(ReflectionPad(torch::randn({1, 1, 6, 3}), 3), c10::Error);
}

// The transformer written with LibTorch's ops only, in float64, from `net`'s
// parameters: what TransformerNet computes, as the example's Python does.
torch::Tensor LibTorchTransformer(TransformerNet& net, const torch::Tensor& x) {
  auto p = net->named_parameters();
  auto conv = [&](const std::string& name, const torch::Tensor& in, int64_t stride,
                  int64_t upsample) {
    const torch::Tensor w = p[name + ".conv2d.weight"];
    const torch::Tensor padded = LibTorchUpsamplePad(in, upsample, w.size(2) / 2);
    return torch::conv2d(padded, w, p[name + ".conv2d.bias"], stride);
  };
  auto norm = [&](const std::string& name, const torch::Tensor& in) {
    return torch::instance_norm(in, p[name + ".weight"], p[name + ".bias"], {}, {}, true, 0.1, 1e-5,
                                false);
  };
  torch::Tensor y = norm("in1", conv("conv1", x, 1, 1)).relu();
  y = norm("in2", conv("conv2", y, 2, 1)).relu();
  y = norm("in3", conv("conv3", y, 2, 1)).relu();
  for (int r = 1; r <= 5; ++r) {
    const std::string block = "res" + std::to_string(r);
    const torch::Tensor h = norm(block + ".in1", conv(block + ".conv1", y, 1, 1)).relu();
    y = norm(block + ".in2", conv(block + ".conv2", h, 1, 1)) + y;
  }
  y = norm("in4", conv("deconv1", y, 1, 2)).relu();
  y = norm("in5", conv("deconv2", y, 1, 2)).relu();
  return conv("deconv3", y, 1, 1);
}

TEST(TransformerKernelsTest, TransformerMatchesLibTorchOpsInValuesAndGradients) {
  torch::manual_seed(11);
  TransformerNet net;
  InitializeTransformer(net, 11);
  const torch::Tensor image = torch::rand({2, 3, 36, 28}) * 255;
  const torch::Tensor probe = torch::randn({2, 3, 36, 28});
  TransformerNet exact;
  {
    torch::NoGradGuard no_grad;
    for (auto& item : exact->named_parameters())
      item.value().copy_(net->named_parameters()[item.key()]);
  }
  exact->to(torch::kFloat64);
  const torch::Tensor expected = LibTorchTransformer(exact, image.to(torch::kFloat64));
  (expected * probe.to(torch::kFloat64)).sum().backward();
  for (const bool winograd : {false, true}) {
    SCOPED_TRACE(winograd ? "winograd" : "direct");
    const ScopedWinograd setting(winograd);
    net->zero_grad();
    const torch::Tensor out = net->forward(image);
    (out * probe).sum().backward();
    EXPECT_LT(MaxRelativeDifference(out, expected), 1e-5);
    int compared = 0;
    for (const auto& item : net->named_parameters()) {
      if (!item.value().requires_grad()) continue;
      const torch::Tensor& truth = exact->named_parameters()[item.key()].grad();
      ASSERT_TRUE(item.value().grad().defined()) << item.key();
      EXPECT_LT(MaxRelativeDifference(item.value().grad(), truth), 2e-4) << item.key();
      ++compared;
    }
    EXPECT_GT(compared, 40);
  }
}

// The norm with its ReLU fused (no ReLU on a view) is bit for bit the
// unfused LibTorch pair, in values and gradients.
TEST(TransformerKernelsTest, InstanceNormWithReluEqualsInstanceNormThenRelu) {
  torch::manual_seed(12);
  InstanceNormLayer layer(6, 0);
  {
    torch::NoGradGuard no_grad;
    layer->weight.uniform_(0.5, 1.5);
    layer->bias.uniform_(-0.5, 0.5);
  }
  const torch::Tensor x0 = torch::randn({3, 6, 7, 5});
  const torch::Tensor probe = torch::randn({3, 6, 7, 5});
  torch::Tensor x = x0.clone().requires_grad_(true);
  const torch::Tensor ours = layer->forward(x, {}, /*then_relu=*/true);
  (ours * probe).sum().backward();
  const torch::Tensor ours_grads[] = {x.grad().clone(), layer->weight.grad().clone(),
                                      layer->bias.grad().clone()};
  layer->zero_grad();
  torch::Tensor y = x0.clone().requires_grad_(true);
  const torch::Tensor theirs = torch::instance_norm(y, layer->weight, layer->bias, {}, {}, true,
                                                    0.1, InstanceNormLayerImpl::kEps, false)
                                   .relu_();
  (theirs * probe).sum().backward();
  EXPECT_TRUE(torch::equal(ours, theirs));
  EXPECT_TRUE(torch::equal(ours_grads[0], y.grad()));
  EXPECT_TRUE(torch::equal(ours_grads[1], layer->weight.grad()));
  EXPECT_TRUE(torch::equal(ours_grads[2], layer->bias.grad()));
  // Outside autograd (stylize) the layer takes torch::instance_norm itself:
  // the same values.
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(layer->forward(x0, {}, /*then_relu=*/true), ours));
  EXPECT_TRUE(torch::equal(layer->forward(x0, {}, /*then_relu=*/false),
                           torch::instance_norm(x0, layer->weight, layer->bias, {}, {}, true, 0.1,
                                                InstanceNormLayerImpl::kEps, false)));
}

}  // namespace
}  // namespace stylefleet
