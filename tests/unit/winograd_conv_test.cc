// model/winograd_conv: oneDNN's Winograd convolution against LibTorch's, in
// values and in every gradient, and the fallbacks to LibTorch.
#include "model/winograd_conv.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <thread>

#include "tensor_check.h"

namespace stylefleet {
namespace {

using testing::MaxRelativeDifference;

struct Case {
  int64_t batch, in, out, height, width, padding;
  bool bias;
};

// Re-enables Winograd when a test that switched it off ends, even by failing.
struct WinogradSwitch {
  explicit WinogradSwitch(bool enabled) { SetWinogradEnabled(enabled); }
  ~WinogradSwitch() { SetWinogradEnabled(true); }
};

struct Gradients {
  torch::Tensor out, x, weight, bias;
};

// The output and the gradients of sum(out * probe) for x, weight and bias.
Gradients RunConv(const torch::Tensor& x0, const torch::Tensor& w0, const torch::Tensor& b0,
                  const torch::Tensor& probe, int64_t padding, bool winograd) {
  torch::Tensor x = x0.detach().clone().requires_grad_(true);
  torch::Tensor w = w0.detach().clone().requires_grad_(true);
  torch::Tensor b = b0.defined() ? b0.detach().clone().requires_grad_(true) : torch::Tensor();
  torch::Tensor out = winograd ? Conv3x3(x, w, b, padding) : torch::conv2d(x, w, b, 1, padding);
  (out * probe.to(out.scalar_type())).sum().backward();
  return {out.detach(), x.grad(), w.grad(), b.defined() ? b.grad() : torch::Tensor()};
}

TEST(WinogradConvTest, ValuesAndGradientsMatchLibTorch) {
  if (!WinogradAvailable()) GTEST_SKIP() << "no Winograd kernel on this CPU or build";
  // VGG's shapes (padding 1, bias), the transformer's (reflection-padded
  // input, padding 0, odd sizes), and channel counts that change.
  for (const Case& c : {Case{2, 64, 64, 20, 20, 1, true}, Case{2, 32, 32, 17, 13, 0, true},
                        Case{1, 128, 256, 9, 11, 1, false}, Case{3, 16, 48, 6, 7, 1, true}}) {
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

    const Gradients wino = RunConv(x, w, b, probe, c.padding, true);
    // The truth in float64; LibTorch's float32 direct convolution shows how
    // far float32 rounding alone goes.
    const Gradients exact = RunConv(x.to(torch::kFloat64), w.to(torch::kFloat64),
                                    c.bias ? b.to(torch::kFloat64) : b, probe, c.padding, false);
    const Gradients direct = RunConv(x, w, b, probe, c.padding, false);
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
    const WinogradSwitch off(false);
    EXPECT_FALSE(WinogradEnabled());
    EXPECT_TRUE(same_as_libtorch(x, w, b, 1));
  }
  EXPECT_TRUE(WinogradEnabled());
  EXPECT_EQ(WinogradApplies(x, w, 1), WinogradAvailable());
}

TEST(WinogradConvTest, ThreadsSharingTheCacheGetTheirOwnResults) {
  if (!WinogradAvailable()) GTEST_SKIP() << "no Winograd kernel on this CPU or build";
  torch::manual_seed(11);
  std::vector<torch::Tensor> xs, ws, serial(4), threaded(4);
  for (int i = 0; i < 4; ++i) {
    xs.push_back(torch::randn({1 + i % 2, 16 * (1 + i), 6 + i, 7}));
    ws.push_back(torch::randn({16, 16 * (1 + i), 3, 3}));
  }
  for (int i = 0; i < 4; ++i) serial[i] = Conv3x3(xs[i], ws[i], torch::Tensor(), 1);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int r = 0; r < 5; ++r) threaded[i] = Conv3x3(xs[i], ws[i], torch::Tensor(), 1);
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(torch::equal(serial[i], threaded[i])) << i;
}

}  // namespace
}  // namespace stylefleet
