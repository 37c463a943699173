// The seed's loss formulas: hand-computed values on tiny tensors, and an
// independent PyTorch computation (tests/reference/reference.py) on random VGG
// weights, a random transformer and random images, in the random network's
// input convention and in torchvision's (values and input gradients).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "loss/losses.h"
#include "model/tensor_file.h"
#include "model/transformer_net.h"
#include "model/vgg16.h"
#include "tensor_check.h"
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

// The seed's total_variation_loss is tf.nn.l2_loss(dx) / size(dx) +
// tf.nn.l2_loss(dy) / size(dy), and l2_loss is half the sum of squares: unlike
// content and style, TV does not multiply by 2 to cancel that half.
TEST(LossFormulaTest, TotalVariationIsHalfTheMeanSquareOfEachDirection) {
  // [[1, 2], [4, 8]]: dx = -1, -4: l2_loss 17/2, size 2; dy = -3, -6: l2_loss 45/2, size 2.
  EXPECT_FLOAT_EQ(TotalVariationLoss(T({1, 2, 4, 8}, {1, 1, 2, 2})).item<float>(), 4.25f + 11.25f);
}

TEST(LossFormulaTest, TotalVariationSizeCountsTheBatchAndChannels) {
  // Two images of two channels, the second constant: tf.size(dx) = 2*2*2*1 = 8.
  // Image 0 has channels [[1, 2], [4, 8]] and [[0, 3], [0, 0]]:
  // dx = -1, -4, -3, 0 (squares 26), dy = -3, -6, 0, 3 (54); 13/8 + 27/8.
  const torch::Tensor image =
      torch::cat({T({1, 2, 4, 8, 0, 3, 0, 0}, {1, 2, 2, 2}), torch::full({1, 2, 2, 2}, 5.0f)});
  EXPECT_FLOAT_EQ(TotalVariationLoss(image).item<float>(), 5.0f);
}

TEST(LossFormulaTest, TotalIsTheWeightedSum) {
  const torch::Tensor f = T({1, 2, 3, 4}, {1, 2, 1, 2});
  const LossTerms terms =
      ComputeLosses({T({1, 2, 3, 4}, {1, 1, 2, 2})}, {torch::zeros({1, 1, 2, 2})}, {f},
                    {torch::zeros({1, 2, 2})}, T({1, 2, 4, 8}, {1, 1, 2, 2}), LossWeights{2, 3, 4});
  EXPECT_FLOAT_EQ(terms.content.item<float>(), 7.5f);
  EXPECT_FLOAT_EQ(terms.style.item<float>(), 13.9375f);
  ASSERT_EQ(terms.style_layers.size(), 1u);
  EXPECT_FLOAT_EQ(terms.tv.item<float>(), 15.5f);
  EXPECT_FLOAT_EQ(terms.total.item<float>(), 2 * 7.5f + 3 * 13.9375f + 4 * 15.5f);
}

using testing::MaxRelativeDifference;

// The layers and weights tests/reference/reference.py uses.
const std::vector<int> kContentLayers = {6};         // conv3_3
const std::vector<int> kStyleLayers = {1, 3, 6, 9};  // conv1_2 conv2_2 conv3_3 conv4_3

// The seed's terms for `generated` through `vgg`, with content targets from
// `content` and grams from `style` (both without autograd, as in training).
LossTerms ReferenceLayoutLosses(const Vgg16& vgg, const torch::Tensor& generated,
                                const torch::Tensor& content, const torch::Tensor& style,
                                const torch::Tensor& weights) {
  std::vector<int> all = kContentLayers;
  all.insert(all.end(), kStyleLayers.begin(), kStyleLayers.end());
  const auto gen = vgg.Forward(generated, all);
  std::vector<torch::Tensor> gen_content, targets, gen_style, grams;
  {
    torch::NoGradGuard no_grad;
    const auto content_features = vgg.Forward(content, kContentLayers);
    const auto style_features = vgg.Forward(style, kStyleLayers);
    for (int l : kContentLayers) targets.push_back(content_features.at(l));
    for (int l : kStyleLayers) grams.push_back(Gram(style_features.at(l)));
  }
  for (int l : kContentLayers) gen_content.push_back(gen.at(l));
  for (int l : kStyleLayers) gen_style.push_back(gen.at(l));
  return ComputeLosses(
      gen_content, targets, gen_style, grams, generated,
      LossWeights{weights[0].item<double>(), weights[1].item<double>(), weights[2].item<double>()});
}

TensorDict RunReferenceInto(const std::string& command, const testing::TempDir& dir) {
  const testing::CommandResult result = testing::RunReference(command + " " + dir.path());
  if (result.exit_code != 0) throw std::runtime_error("reference.py failed:\n" + result.output);
  return LoadTensorDict(dir / "expected.pt");
}

// The whole forward path (transformer, VGG with its normalization, grams,
// losses) against PyTorch on the same weights and inputs.
TEST(LossCrossCheckTest, MatchesPyTorchReferenceWithin1e5) {
  testing::TempDir dir;
  const TensorDict expected = RunReferenceInto("losses", dir);
  auto get = [&](const std::string& key) { return *FindTensor(expected, key); };

  const Vgg16 vgg = Vgg16::Load(dir / "vgg.pt");
  EXPECT_EQ(vgg.normalization().input_scale, 255.0);
  TransformerNet net;
  LoadTransformerParameters(net, LoadTensorDict(dir / "transformer.pt"), "transformer.pt");
  torch::NoGradGuard no_grad;
  const torch::Tensor generated = net->forward(get("content"));
  const double gen_diff = (generated - get("generated")).abs().max().item<double>();
  EXPECT_LT(gen_diff, 1e-3) << "transformer output differs from PyTorch's";

  const LossTerms terms =
      ReferenceLayoutLosses(vgg, generated, get("content"), get("style"), get("weights"));
  EXPECT_LT(MaxRelativeDifference(terms.content, get("content_loss")), 1e-5);
  EXPECT_LT(MaxRelativeDifference(terms.style, get("style_loss")), 1e-5);
  ASSERT_EQ(terms.style_layers.size(), kStyleLayers.size());
  EXPECT_LT(MaxRelativeDifference(torch::stack(terms.style_layers), get("style_layer_losses")),
            1e-5);
  EXPECT_LT(MaxRelativeDifference(terms.tv, get("tv_loss")), 1e-5);
  EXPECT_LT(MaxRelativeDifference(terms.total, get("total_loss")), 1e-5);
}

// Loss networks in torchvision's convention (input 0..1, ImageNet mean/std):
// a plain dict of torchvision's keys (that convention by default) and
// launch/convert_vgg16.py's output (convention recorded in the file,
// activations scaled), against torchvision's own layers and normalization.
// The random network's convention (0..255, std 1) cannot tell dividing by
// the std from multiplying; these can. Forward terms and the gradients of
// content, style and total with respect to the generated image.
TEST(LossCrossCheckTest, TorchvisionConventionFilesMatchTorchvisionWithin1e5) {
  testing::TempDir dir;
  const TensorDict expected = RunReferenceInto("convention", dir);
  auto get = [&](const std::string& key) {
    const torch::Tensor* t = FindTensor(expected, key);
    if (t == nullptr) throw std::runtime_error("expected.pt lacks " + key);
    return *t;
  };
  const testing::CommandResult convert =
      testing::RunCommand("/usr/bin/python3 " + std::string(STYLEFLEET_SOURCE_DIR) +
                          "/launch/convert_vgg16.py --from " + (dir / "torchvision.pth") +
                          " --out " + (dir / "converted.pth") + " --activation-scale " +
                          std::to_string(get("activation_scale").item<double>()));
  ASSERT_EQ(convert.exit_code, 0) << convert.output;

  for (const std::string name : {"plain", "converted"}) {
    SCOPED_TRACE(name);
    const Vgg16 vgg = Vgg16::Load(dir / (name + ".pth"));
    const torch::Tensor image = get("generated").clone().requires_grad_(true);
    const LossTerms terms =
        ReferenceLayoutLosses(vgg, image, get("content"), get("style"), get("weights"));
    EXPECT_LT(MaxRelativeDifference(terms.content, get(name + ".content")), 1e-5);
    EXPECT_LT(MaxRelativeDifference(torch::stack(terms.style_layers), get(name + ".style_layers")),
              1e-5);
    EXPECT_LT(MaxRelativeDifference(terms.style, get(name + ".style")), 1e-5);
    EXPECT_LT(MaxRelativeDifference(terms.tv, get(name + ".tv")), 1e-5);
    EXPECT_LT(MaxRelativeDifference(terms.total, get(name + ".total")), 1e-5);
    const std::vector<std::pair<std::string, torch::Tensor>> losses = {
        {"content", terms.content}, {"style", terms.style}, {"total", terms.total}};
    for (const auto& [term, loss] : losses) {
      const torch::Tensor grad =
          torch::autograd::grad({loss}, {image}, {}, /*retain_graph=*/true)[0];
      EXPECT_LT(MaxRelativeDifference(grad, get(name + "." + term + "_grad")), 1e-5)
          << term << " gradient";
    }
  }
}

double RelativeDifference(double a, double b) {
  return std::abs(a - b) / std::max(std::abs(b), 1e-30);
}

// Runs `stylefleet losses` on reference.py file-losses' files at the files'
// own size (with `extra` options; `style` for --style: the image, or with
// --job the style's name) and compares every term with `expected`.
void ExpectLossesCommandMatches(const testing::TempDir& dir, const std::string& extra,
                                const std::string& expected_file,
                                const std::string& style = "style.png") {
  const std::string style_option = style == "style.png" ? dir / style : style;
  const testing::CommandResult run = testing::RunCommand(
      "(" + std::string(STYLEFLEET_BINARY) + " losses --loss-network " + (dir / "vgg.pt") +
      " --model " + (dir / "transformer.pt") + " --content " + (dir / "content.png") + " --style " +
      style_option + " --image-size 256" + extra +
      " 2>/dev/null)");  // the JSON alone, without log lines
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const nlohmann::json got = nlohmann::json::parse(run.output);
  std::ifstream in(dir / expected_file);
  const nlohmann::json expected = nlohmann::json::parse(in);
  for (const char* term : {"content_loss", "style_loss", "tv_loss", "total_loss"}) {
    EXPECT_LT(RelativeDifference(got.at(term).get<double>(), expected.at(term).get<double>()), 1e-5)
        << term << ": stylefleet " << got.at(term) << ", reference " << expected.at(term);
  }
  ASSERT_EQ(got.at("style_loss_by_layer").size(), 4u);
  for (const auto& [layer, value] : expected.at("style_loss_by_layer").items()) {
    EXPECT_LT(RelativeDifference(got.at("style_loss_by_layer").at(layer).get<double>(),
                                 value.get<double>()),
              1e-5)
        << layer;
  }
}

class LossesCommandCrossCheckTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    files_ = new testing::TempDir();
    const std::string make = "/usr/bin/python3 " + std::string(STYLEFLEET_SOURCE_DIR) +
                             "/tests/reference/reference.py file-losses " + files_->path() +
                             " >/dev/null";
    made_ = std::system(make.c_str()) == 0;
  }
  static void TearDownTestSuite() {
    delete files_;
    files_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(made_) << "reference.py file-losses failed"; }
  static testing::TempDir* files_;
  static bool made_;
};
testing::TempDir* LossesCommandCrossCheckTest::files_ = nullptr;
bool LossesCommandCrossCheckTest::made_ = false;

// `stylefleet losses` on 256x256 PNGs at --image-size 256 must score the files'
// own pixels: a "resize" to the same size that filters the image (stb's Mitchell
// filter did) changes the style and TV terms by far more than 1e-5.
TEST_F(LossesCommandCrossCheckTest, LossesCommandAtTheFileSizeScoresTheFilesOwnPixels) {
  ExpectLossesCommandMatches(*files_, "", "expected.json");
}

// The style loss on luminance only (training.style_luminance_only): style
// features of both images' BT.601 luma, content and TV of the colours, against
// PyTorch. The luminance terms differ from the colour ones, so the flag counts.
TEST_F(LossesCommandCrossCheckTest, StyleLossOnLuminanceMatchesThePyTorchReference) {
  ExpectLossesCommandMatches(*files_, " --style-luminance-only", "expected_luminance.json");
  std::ifstream colour(*files_ / "expected.json"), luminance(*files_ / "expected_luminance.json");
  const double colour_style = nlohmann::json::parse(colour).at("style_loss").get<double>();
  const double luminance_style = nlohmann::json::parse(luminance).at("style_loss").get<double>();
  EXPECT_GT(RelativeDifference(luminance_style, colour_style), 0.01)
      << "the reference's two style losses are too close to tell the flag was used";
}

// With --job the style's training.style_luminance_only applies, and the flag
// given explicitly wins either way (=false scores a luminance job's colours).
TEST_F(LossesCommandCrossCheckTest, TheFlagWinsOverTheJobsSettingEitherWay) {
  const testing::TempDir& dir = *files_;
  testing::WriteFile(dir / "job.yaml", "job: {output_dir: " + dir.path() +
                                           "_runs}\ndata: {content_dir: " + dir.path() +
                                           "}\nloss_network: {weights: 'random:1'}\n"
                                           "training: {style_luminance_only: true}\n"
                                           "styles:\n  - {name: s, image: " +
                                           (dir / "style.png") + "}\n");
  const std::string job = " --job " + (dir / "job.yaml");
  ExpectLossesCommandMatches(dir, job, "expected_luminance.json", "s");
  ExpectLossesCommandMatches(dir, job + " --style-luminance-only=false", "expected.json", "s");
  testing::WriteFile(dir / "job.yaml", "job: {output_dir: " + dir.path() +
                                           "_runs}\ndata: {content_dir: " + dir.path() +
                                           "}\nloss_network: {weights: 'random:1'}\n"
                                           "styles:\n  - {name: s, image: " +
                                           (dir / "style.png") + "}\n");
  ExpectLossesCommandMatches(dir, job, "expected.json", "s");
  ExpectLossesCommandMatches(dir, job + " --style-luminance-only", "expected_luminance.json", "s");
}

}  // namespace
}  // namespace stylefleet
