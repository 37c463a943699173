// model/winograd_conv: oneDNN's Winograd convolution against LibTorch's, in
// values and in every gradient, and the fallbacks to LibTorch.
#include "model/winograd_conv.h"

#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <thread>

#include "model/transformer_net.h"
#include "model/vgg16.h"
#include "tensor_check.h"

namespace stylefleet {
namespace {

using testing::MaxRelativeDifference;

struct Case {
  int64_t batch, in, out, height, width, padding;
  bool bias;
};

struct Gradients {
  torch::Tensor out, x, weight, bias;
};

enum class Path { kLibTorch, kWinograd, kBlocked };

// The output and the gradients of sum(out * probe) for x, weight and bias.
Gradients RunConv(const torch::Tensor& x0, const torch::Tensor& w0, const torch::Tensor& b0,
                  const torch::Tensor& probe, int64_t padding, Path path) {
  torch::Tensor x = x0.detach().clone().requires_grad_(true);
  torch::Tensor w = w0.detach().clone().requires_grad_(true);
  torch::Tensor b = b0.defined() ? b0.detach().clone().requires_grad_(true) : torch::Tensor();
  torch::Tensor out;
  if (path == Path::kWinograd) {
    out = Conv3x3(x, w, b, padding);
  } else if (path == Path::kBlocked) {
    out = FromBlocked(Conv3x3Blocked(ToBlocked(x), w, b, padding));
  } else {
    out = torch::conv2d(x, w, b, 1, padding);
  }
  (out * probe.to(out.scalar_type())).sum().backward();
  return {out.detach(), x.grad(), w.grad(), b.defined() ? b.grad() : torch::Tensor()};
}

TEST(WinogradConvTest, ValuesAndGradientsMatchLibTorch) {
  if (!WinogradAvailable()) GTEST_SKIP() << "no Winograd kernel on this CPU or build";
  // VGG's shapes (padding 1, bias), the transformer's (reflection-padded
  // input, padding 0, odd sizes), and channel counts that change.
  for (const Case& c : {Case{2, 64, 64, 20, 20, 1, true}, Case{2, 32, 32, 17, 13, 0, true},
                        Case{1, 128, 256, 9, 11, 1, false}, Case{3, 16, 48, 6, 7, 1, true},
                        Case{2, 24, 40, 8, 8, 1, true},
                        Case{6, 16, 32, 9, 8, 1, true}}) {  // 6 images: parts of 4 and 2
    SCOPED_TRACE(::testing::Message()
                 << "batch " << c.batch << ", " << c.in << "->" << c.out << " channels, "
                 << c.height << "x" << c.width << ", padding " << c.padding);
    torch::manual_seed(7);
    const torch::Tensor x = torch::randn({c.batch, c.in, c.height, c.width});
    const torch::Tensor w = torch::randn({c.out, c.in, 3, 3}) / std::sqrt(9.0 * c.in);
    const torch::Tensor b = c.bias ? torch::randn({c.out}) : torch::Tensor();
    const int64_t oh = c.height + 2 * c.padding - 2, ow = c.width + 2 * c.padding - 2;
    const torch::Tensor probe = torch::randn({c.batch, c.out, oh, ow});
    ASSERT_TRUE(WinogradApplies(x, w, c.padding));

    // The truth in float64; LibTorch's float32 direct convolution shows how
    // far float32 rounding alone goes.
    const Gradients exact =
        RunConv(x.to(torch::kFloat64), w.to(torch::kFloat64), c.bias ? b.to(torch::kFloat64) : b,
                probe, c.padding, Path::kLibTorch);
    const Gradients direct = RunConv(x, w, b, probe, c.padding, Path::kLibTorch);
    for (const Path path : {Path::kWinograd, Path::kBlocked}) {
      // The blocked layout needs channels in whole blocks of 16.
      if (path == Path::kBlocked && (c.in % kWinogradBlock != 0 || c.out % kWinogradBlock != 0)) {
        continue;
      }
      SCOPED_TRACE(path == Path::kBlocked ? "blocked layout" : "NCHW");
      const Gradients wino = RunConv(x, w, b, probe, c.padding, path);
      ASSERT_EQ(wino.out.sizes(), direct.out.sizes());
      ASSERT_EQ(wino.out.scalar_type(), torch::kFloat32);
      const std::vector<std::pair<const char*, std::array<torch::Tensor, 3>>> pairs = {
          {"output", {wino.out, exact.out, direct.out}},
          {"input gradient", {wino.x, exact.x, direct.x}},
          {"weight gradient", {wino.weight, exact.weight, direct.weight}},
          {"bias gradient", {wino.bias, exact.bias, direct.bias}}};
      for (const auto& [what, t] : pairs) {
        if (!t[1].defined()) {
          EXPECT_FALSE(t[0].defined()) << what;
          continue;
        }
        ASSERT_TRUE(t[0].defined()) << what;
        // Winograd's transforms add rounding: a few times float32's direct
        // error, far below anything training could notice.
        const double error = MaxRelativeDifference(t[0], t[1]);
        EXPECT_LT(error, 2e-5) << what << " (direct float32: " << MaxRelativeDifference(t[2], t[1])
                               << ")";
      }
      // The Winograd path really ran: its rounding differs from LibTorch's.
      EXPECT_FALSE(torch::equal(wino.out, direct.out));
    }
  }
}

TEST(WinogradConvTest, BlockedLayoutRoundTripsAndPoolsAsLibTorch) {
  torch::manual_seed(2);
  for (const auto& sizes : {std::vector<int64_t>{2, 32, 9, 7}, std::vector<int64_t>{1, 16, 4, 4}}) {
    const torch::Tensor x = torch::randn(sizes);
    const torch::Tensor blocked = ToBlocked(x);
    ASSERT_EQ(blocked.sizes(),
              torch::IntArrayRef({sizes[0], sizes[1] / 16, sizes[2], sizes[3], 16}));
    EXPECT_TRUE(blocked.is_contiguous());
    // Channel c of pixel (h, w) sits at [n][c / 16][h][w][c % 16].
    EXPECT_EQ(blocked[0][sizes[1] / 16 - 1][2][3][5].item<float>(),
              x[0][sizes[1] - 11][2][3].item<float>());
    EXPECT_TRUE(torch::equal(FromBlocked(blocked), x));

    torch::Tensor a = x.clone().requires_grad_(true), b = x.clone().requires_grad_(true);
    const torch::Tensor pooled = FromBlocked(MaxPool2x2Blocked(ToBlocked(a)));
    const torch::Tensor expected = torch::max_pool2d(b, 2, 2);
    EXPECT_TRUE(torch::equal(pooled, expected));  // odd sides drop their last row/column
    const torch::Tensor probe = torch::randn(expected.sizes());
    (pooled * probe).sum().backward();
    (expected * probe).sum().backward();
    EXPECT_TRUE(torch::equal(a.grad(), b.grad()));
  }
}

// The loss network as training uses it: every layer's activation and the
// image's gradient through all of them, Winograd in the blocked chain against
// LibTorch's convolutions.
TEST(WinogradConvTest, LossNetworkMatchesLibTorchInActivationsAndImageGradient) {
  if (!WinogradAvailable()) GTEST_SKIP() << "no Winograd kernel on this CPU or build";
  const Vgg16 vgg = Vgg16::Load("random:3");
  torch::manual_seed(4);
  const torch::Tensor image = torch::rand({2, 3, 36, 44}) * 255;
  std::vector<int> layers(13);
  for (int l = 0; l < 13; ++l) layers[l] = l;
  auto run = [&](bool winograd) {
    const ScopedWinograd setting(winograd);
    torch::Tensor x = image.clone().requires_grad_(true);
    const auto features = vgg.Forward(x, layers);
    torch::Tensor total = torch::zeros({}, torch::kFloat64);
    for (const auto& [l, f] : features) total = total + (f.to(torch::kFloat64) * (l + 1)).sum();
    total.backward();
    return std::make_pair(features, x.grad());
  };
  const auto [winograd, winograd_grad] = run(true);
  const auto [direct, direct_grad] = run(false);
  ASSERT_EQ(winograd.size(), 13u);
  for (int l = 0; l < 13; ++l) {
    ASSERT_EQ(winograd.at(l).sizes(), direct.at(l).sizes()) << l;
    EXPECT_TRUE(winograd.at(l).is_contiguous()) << l;
    EXPECT_LT(MaxRelativeDifference(winograd.at(l), direct.at(l)), 5e-5) << "layer " << l;
  }
  EXPECT_LT(MaxRelativeDifference(winograd_grad, direct_grad), 5e-5);
  EXPECT_FALSE(torch::equal(winograd.at(12), direct.at(12)));  // Winograd ran
}

TEST(WinogradConvTest, FrozenWeightsGetNoGradientAndTheInputStillDoes) {
  if (!WinogradAvailable()) GTEST_SKIP() << "no Winograd kernel on this CPU or build";
  torch::manual_seed(3);
  const torch::Tensor w = torch::randn({32, 32, 3, 3}) * 0.1, b = torch::randn({32});
  torch::Tensor x = torch::randn({2, 32, 8, 8}).requires_grad_(true);
  torch::Tensor out = Conv3x3(x, w, b, 1).relu_();  // in place, as VGG does
  out.sum().backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_FALSE(w.grad().defined());
  torch::Tensor x2 = x.detach().clone().requires_grad_(true);
  torch::conv2d(x2, w, b, 1, 1).relu_().sum().backward();
  EXPECT_LT(MaxRelativeDifference(x.grad(), x2.grad()), 2e-5);
}

TEST(WinogradConvTest, OtherTensorsAndTheSwitchFallBackToLibTorchBitForBit) {
  torch::manual_seed(5);
  const torch::Tensor x = torch::randn({2, 32, 10, 10});
  const torch::Tensor w = torch::randn({32, 32, 3, 3}) * 0.1, b = torch::randn({32});
  auto same_as_libtorch = [](const torch::Tensor& xi, const torch::Tensor& wi,
                             const torch::Tensor& bi, int64_t pad) {
    EXPECT_FALSE(WinogradApplies(xi, wi, pad));
    return torch::equal(Conv3x3(xi, wi, bi, pad), torch::conv2d(xi, wi, bi, 1, pad));
  };
  EXPECT_TRUE(
      same_as_libtorch(x.to(torch::kBFloat16), w.to(torch::kBFloat16), b.to(torch::kBFloat16), 1));
  EXPECT_TRUE(same_as_libtorch(x.contiguous(at::MemoryFormat::ChannelsLast), w, b, 1));
  EXPECT_TRUE(
      same_as_libtorch(x.to(torch::kFloat64), w.to(torch::kFloat64), b.to(torch::kFloat64), 1));
  EXPECT_TRUE(same_as_libtorch(x, torch::randn({32, 32, 5, 5}), b, 2));  // not 3x3
  // The image layer: 3 input channels, where Winograd is slower.
  EXPECT_TRUE(same_as_libtorch(torch::randn({2, 3, 10, 10}), torch::randn({32, 3, 3, 3}), b, 1));
  {
    const ScopedWinograd off(false);
    EXPECT_FALSE(WinogradEnabled());
    EXPECT_TRUE(same_as_libtorch(x, w, b, 1));
  }
  EXPECT_TRUE(WinogradEnabled());
  EXPECT_EQ(WinogradApplies(x, w, 1), WinogradAvailable());
}

TEST(WinogradConvTest, ThreadsSharingTheCacheGetTheirOwnResults) {
  if (!WinogradAvailable()) GTEST_SKIP() << "no Winograd kernel on this CPU or build";
  torch::manual_seed(11);
  std::vector<torch::Tensor> xs, ws;
  for (int i = 0; i < 4; ++i) {
    xs.push_back(torch::randn({1 + i % 2, 16 * (1 + i), 6 + i, 7}));
    ws.push_back(torch::randn({16, 16 * (1 + i), 3, 3}));
  }
  // Forward, input and weight gradients: the backward primitives are made
  // on first use, possibly by several threads at once.
  auto run = [&](int i) {
    torch::Tensor x = xs[i].clone().requires_grad_(true);
    torch::Tensor w = ws[i].clone().requires_grad_(true);
    const torch::Tensor out = Conv3x3(x, w, torch::Tensor(), 1);
    out.square().sum().backward();
    return std::vector<torch::Tensor>{out.detach(), x.grad(), w.grad()};
  };
  // Serial first: with every primitive made, the threads run them at once.
  std::vector<std::vector<torch::Tensor>> serial(4), threaded(4);
  for (int i = 0; i < 4; ++i) serial[i] = run(i);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int r = 0; r < 5; ++r) threaded[i] = run(i);
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 4; ++i) {
    for (int k = 0; k < 3; ++k) EXPECT_TRUE(torch::equal(serial[i][k], threaded[i][k])) << i << k;
  }
}

// bf16 training runs the transformer under autocast, whose convolutions must
// stay LibTorch's bf16 ones, though padding and weights arrive in float32.
TEST(WinogradConvTest, AutocastKeepsLibTorchsConvolution) {
  torch::manual_seed(8);
  const torch::Tensor x = torch::randn({1, 32, 10, 10});
  const torch::Tensor w = torch::randn({32, 32, 3, 3}) * 0.1, b = torch::randn({32});
  at::autocast::set_cpu_enabled(true);
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  const torch::Tensor ours = Conv3x3(x, w, b, 1);
  const torch::Tensor blocked = FromBlocked(Conv3x3Blocked(ToBlocked(x), w, b, 1));
  const torch::Tensor libtorch = torch::conv2d(x, w, b, 1, 1);
  const bool applies = WinogradApplies(x, w, 1);
  at::autocast::clear_cache();
  at::autocast::set_cpu_enabled(false);
  EXPECT_FALSE(applies);
  EXPECT_EQ(ours.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(ours, libtorch));
  EXPECT_EQ(blocked.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(blocked, libtorch));
}

// Only the weights learn (an input that is data): their gradients match,
// the input gets none; and paddings 0 and 2 give LibTorch's values whichever
// path oneDNN allows.
TEST(WinogradConvTest, WeightOnlyGradientsAndOtherPaddings) {
  torch::manual_seed(9);
  const torch::Tensor x = torch::randn({2, 16, 11, 9});
  const torch::Tensor w0 = torch::randn({32, 16, 3, 3}) * 0.2, b0 = torch::randn({32});
  for (const int64_t padding : {0, 1, 2}) {
    SCOPED_TRACE(padding);
    torch::Tensor w = w0.clone().requires_grad_(true), b = b0.clone().requires_grad_(true);
    const torch::Tensor out = Conv3x3(x, w, b, padding);
    out.square().sum().backward();
    torch::Tensor w64 = w0.to(torch::kFloat64).requires_grad_(true);
    torch::Tensor b64 = b0.to(torch::kFloat64).requires_grad_(true);
    const torch::Tensor exact = torch::conv2d(x.to(torch::kFloat64), w64, b64, 1, padding);
    exact.square().sum().backward();
    EXPECT_FALSE(x.grad().defined());
    EXPECT_LT(MaxRelativeDifference(out, exact), 2e-5);
    EXPECT_LT(MaxRelativeDifference(w.grad(), w64.grad()), 2e-5);
    EXPECT_LT(MaxRelativeDifference(b.grad(), b64.grad()), 2e-5);
  }
}

// The transformer trains through Winograd: its output and every parameter's
// gradient match LibTorch's convolutions.
TEST(WinogradConvTest, TransformerGradientsMatchLibTorch) {
  if (!WinogradAvailable()) GTEST_SKIP() << "no Winograd kernel on this CPU or build";
  torch::manual_seed(10);
  TransformerNet net;
  const torch::Tensor image = torch::rand({2, 3, 32, 40}) * 255;
  auto run = [&](bool winograd) {
    const ScopedWinograd setting(winograd);
    net->zero_grad();
    const torch::Tensor out = net->forward(image);
    out.square().mean().backward();
    std::vector<torch::Tensor> result = {out.detach().clone()};
    for (const auto& p : net->parameters()) {
      if (p.grad().defined()) result.push_back(p.grad().clone());
    }
    return result;
  };
  const auto winograd = run(true), direct = run(false);
  ASSERT_EQ(winograd.size(), direct.size());
  ASSERT_GT(winograd.size(), 20u);
  for (size_t i = 0; i < winograd.size(); ++i) {
    EXPECT_LT(MaxRelativeDifference(winograd[i], direct[i]), 1e-4) << i;
  }
  EXPECT_FALSE(torch::equal(winograd[0], direct[0]));  // Winograd ran
}

}  // namespace
}  // namespace stylefleet
