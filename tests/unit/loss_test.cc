// The seed's loss formulas: hand-computed values on tiny tensors, and an
// independent PyTorch computation (tests/python/reference.py) on random VGG
// weights, a random transformer and random images.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "loss/losses.h"
#include "model/tensor_file.h"
#include "model/transformer_net.h"
#include "model/vgg16.h"
#include "test_paths.h"
#include "test_util.h"

namespace stylefleet {
namespace {

torch::Tensor T(std::vector<float> values, std::vector<int64_t> shape) {
  return torch::tensor(values).view(shape);
}

TEST(LossFormulaTest, GramDividesByHeightWidthAndChannels) {
  // One image, C=2, H=1, W=2: F = [[1, 2], [3, 4]]; F F^T = [[5, 11], [11, 25]]; / (1*2*2).
  const torch::Tensor g = Gram(T({1, 2, 3, 4}, {1, 2, 1, 2}));
  ASSERT_EQ(g.sizes(), torch::IntArrayRef({1, 2, 2}));
  EXPECT_FLOAT_EQ(g[0][0][0].item<float>(), 1.25f);
  EXPECT_FLOAT_EQ(g[0][0][1].item<float>(), 2.75f);
  EXPECT_FLOAT_EQ(g[0][1][0].item<float>(), 2.75f);
  EXPECT_FLOAT_EQ(g[0][1][1].item<float>(), 6.25f);
}

// Wide layers take another route to F F^T (a oneDNN convolution instead of
// the system BLAS): same values and same gradients as the plain product.
TEST(LossFormulaTest, GramOfWideLayersMatchesThePlainProductAndItsGradient) {
  torch::manual_seed(3);
  for (int64_t channels : {64, 128, 256}) {
    const torch::Tensor f = torch::randn({2, channels, 6, 5}).requires_grad_(true);
    const torch::Tensor flat = f.reshape({2, channels, 30});
    const torch::Tensor expected = torch::bmm(flat, flat.transpose(1, 2)) / double(30 * channels);
    const torch::Tensor mine = Gram(f);
    EXPECT_LT((mine - expected).abs().max().item<double>(),
              1e-5 * expected.abs().max().item<double>())
        << channels << " channels";
    const torch::Tensor weight = torch::randn_like(expected);
    const torch::Tensor g_expected = torch::autograd::grad({(expected * weight).sum()}, {f})[0];
    const torch::Tensor g_mine = torch::autograd::grad({(mine * weight).sum()}, {f})[0];
    EXPECT_LT((g_mine - g_expected).abs().max().item<double>(),
              1e-5 * g_expected.abs().max().item<double>())
        << channels << " channels";
  }
}

TEST(LossFormulaTest, GramIsPerImage) {
  const torch::Tensor f =
      torch::cat({T({1, 2, 3, 4}, {1, 2, 1, 2}), T({0, 0, 0, 2}, {1, 2, 1, 2})});
  const torch::Tensor g = Gram(f);
  EXPECT_FLOAT_EQ(g[1][1][1].item<float>(), 1.0f);  // 4 / 4
  EXPECT_FLOAT_EQ(g[1][0][0].item<float>(), 0.0f);
}

TEST(LossFormulaTest, ContentIsSumOfSquaresOverNumel) {
  EXPECT_FLOAT_EQ(
      ContentLayerLoss(T({1, 2, 3, 4}, {1, 1, 2, 2}), torch::zeros({1, 1, 2, 2})).item<float>(),
      7.5f);  // 30 / 4
}

TEST(LossFormulaTest, StyleDividesByNumelOfActivationsNotOfGram) {
  // gram = [[1.25, 2.75], [2.75, 6.25]]; sum of squares 55.75; numel(F) = 4.
  EXPECT_FLOAT_EQ(
      StyleLayerLoss(T({1, 2, 3, 4}, {1, 2, 1, 2}), torch::zeros({1, 2, 2})).item<float>(),
      13.9375f);
}

TEST(LossFormulaTest, StyleGramBroadcastsOverTheBatch) {
  const torch::Tensor f =
      torch::cat({T({1, 2, 3, 4}, {1, 2, 1, 2}), T({1, 2, 3, 4}, {1, 2, 1, 2})});
  // Twice the squares over twice the elements.
  EXPECT_FLOAT_EQ(StyleLayerLoss(f, torch::zeros({1, 2, 2})).item<float>(), 13.9375f);
}

TEST(LossFormulaTest, TotalVariationAveragesEachDirection) {
  // [[1, 2], [4, 8]]: dx = -1, -4 (17 / 2); dy = -3, -6 (45 / 2).
  EXPECT_FLOAT_EQ(TotalVariationLoss(T({1, 2, 4, 8}, {1, 1, 2, 2})).item<float>(), 31.0f);
}

TEST(LossFormulaTest, TotalIsTheWeightedSum) {
  const torch::Tensor f = T({1, 2, 3, 4}, {1, 2, 1, 2});
  const LossTerms terms =
      ComputeLosses({T({1, 2, 3, 4}, {1, 1, 2, 2})}, {torch::zeros({1, 1, 2, 2})}, {f},
                    {torch::zeros({1, 2, 2})}, T({1, 2, 4, 8}, {1, 1, 2, 2}), LossWeights{2, 3, 4});
  EXPECT_FLOAT_EQ(terms.content.item<float>(), 7.5f);
  EXPECT_FLOAT_EQ(terms.style.item<float>(), 13.9375f);
  ASSERT_EQ(terms.style_layers.size(), 1u);
  EXPECT_FLOAT_EQ(terms.tv.item<float>(), 31.0f);
  EXPECT_FLOAT_EQ(terms.total.item<float>(), 2 * 7.5f + 3 * 13.9375f + 4 * 31.0f);
}

double Relative(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-12); }

// The whole forward path (transformer, VGG with its normalization, grams,
// losses) against PyTorch on the same weights and inputs.
TEST(LossCrossCheckTest, MatchesPyTorchReferenceWithin1e5) {
  testing::TempDir dir;
  const std::string command = "/usr/bin/python3 " + std::string(STYLEFLEET_SOURCE_DIR) +
                              "/tests/python/reference.py losses " + dir.path();
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  const TensorDict expected = LoadTensorDict(dir / "expected.pt");
  auto get = [&](const std::string& key) { return *FindTensor(expected, key); };

  const Vgg16 vgg = Vgg16::Load(dir / "vgg.pt");
  EXPECT_EQ(vgg.normalization().input_scale, 255.0);
  TransformerNet net;
  LoadTransformerParameters(net, LoadTensorDict(dir / "transformer.pt"), "transformer.pt");
  torch::NoGradGuard no_grad;
  const torch::Tensor generated = net->forward(get("content"));
  const double gen_diff = (generated - get("generated")).abs().max().item<double>();
  EXPECT_LT(gen_diff, 1e-3) << "transformer output differs from PyTorch's";

  const std::vector<int> content_layers = {6}, style_layers = {1, 3, 6, 9};
  std::vector<int> all = content_layers;
  all.insert(all.end(), style_layers.begin(), style_layers.end());
  const auto gen = vgg.Forward(generated, all);
  const auto target = vgg.Forward(get("content"), content_layers);
  const auto style = vgg.Forward(get("style"), style_layers);
  std::vector<torch::Tensor> gc{gen.at(6)}, tc{target.at(6)}, gs, grams;
  for (int l : style_layers) {
    gs.push_back(gen.at(l));
    grams.push_back(Gram(style.at(l)));
  }
  const torch::Tensor w = get("weights");
  const LossTerms terms =
      ComputeLosses(gc, tc, gs, grams, generated,
                    LossWeights{w[0].item<double>(), w[1].item<double>(), w[2].item<double>()});
  EXPECT_LT(Relative(terms.content.item<double>(), get("content_loss").item<double>()), 1e-5);
  EXPECT_LT(Relative(terms.style.item<double>(), get("style_loss").item<double>()), 1e-5);
  for (size_t i = 0; i < style_layers.size(); ++i) {
    EXPECT_LT(Relative(terms.style_layers[i].item<double>(),
                       get("style_layer_losses")[static_cast<int64_t>(i)].item<double>()),
              1e-5)
        << "layer " << i;
  }
  EXPECT_LT(Relative(terms.tv.item<double>(), get("tv_loss").item<double>()), 1e-5);
  EXPECT_LT(Relative(terms.total.item<double>(), get("total_loss").item<double>()), 1e-5);
}

// `stylefleet losses` on 256x256 PNGs at --image-size 256 must score the files'
// own pixels: a "resize" to the same size that filters the image (stb's Mitchell
// filter did) changes the style and TV terms by far more than 1e-5.
TEST(LossCrossCheckTest, LossesCommandAtTheFileSizeScoresTheFilesOwnPixels) {
  testing::TempDir dir;
  const std::string make = "/usr/bin/python3 " + std::string(STYLEFLEET_SOURCE_DIR) +
                           "/tests/python/reference.py file-losses " + dir.path();
  ASSERT_EQ(std::system(make.c_str()), 0) << make;
  const testing::CommandResult run = testing::RunCommand(
      "(" + std::string(STYLEFLEET_BINARY) + " losses --loss-network " + (dir / "vgg.pt") +
      " --model " + (dir / "transformer.pt") + " --content " + (dir / "content.png") + " --style " +
      (dir / "style.png") + " --image-size 256 2>/dev/null)");  // the JSON alone, without log lines
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const nlohmann::json got = nlohmann::json::parse(run.output);
  std::ifstream in(dir / "expected.json");
  const nlohmann::json expected = nlohmann::json::parse(in);
  for (const char* term : {"content_loss", "style_loss", "tv_loss", "total_loss"}) {
    EXPECT_LT(Relative(got.at(term).get<double>(), expected.at(term).get<double>()), 1e-5)
        << term << ": stylefleet " << got.at(term) << ", reference " << expected.at(term);
  }
  ASSERT_EQ(got.at("style_loss_by_layer").size(), 4u);
  for (const auto& [layer, value] : expected.at("style_loss_by_layer").items()) {
    EXPECT_LT(Relative(got.at("style_loss_by_layer").at(layer).get<double>(), value.get<double>()),
              1e-5)
        << layer;
  }
}

}  // namespace
}  // namespace stylefleet
