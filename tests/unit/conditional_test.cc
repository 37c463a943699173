// The conditional network (one transformer for several styles): that one
// style of it is the per-style network, that blends and per-image styles
// reach the right rows, its model file, `info`, stylize's --style/--blend
// and the PyTorch module in python/.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "checkpoint/model_file.h"
#include "commands/commands.h"
#include "common/error.h"
#include "common/vgg_layers.h"
#include "data/image.h"
#include "model/tensor_file.h"
#include "model/transformer_net.h"
#include "model/vgg16.h"
#include "model/winograd_conv.h"
#include "step/forward_pass.h"
#include "tensor_check.h"
#include "test_paths.h"
#include "test_util.h"

namespace stylefleet {
namespace {
namespace fs = std::filesystem;
using testing::MaxRelativeDifference;
using testing::TempDir;

// A conditional network of `styles` whose rows differ (a fresh one's are all
// scale 1, shift 0, where a wrong row could not be seen).
TransformerNet DistinctRowsNetwork(int64_t styles, uint64_t seed) {
  TransformerNet net(styles);
  InitializeTransformer(net, seed);
  torch::NoGradGuard no_grad;
  torch::manual_seed(static_cast<int64_t>(seed));
  for (auto& item : net->named_parameters()) {
    if (!IsStyleRowParameter(item.key()) || !item.value().requires_grad()) continue;
    const bool scale =
        item.key().size() > 7 && item.key().compare(item.key().size() - 7, 7, ".weight") == 0;
    item.value().copy_(scale ? 0.5 + torch::rand(item.value().sizes())
                             : torch::randn(item.value().sizes()) * 0.3);
  }
  return net;
}

torch::Tensor Rows(std::vector<int64_t> rows) { return torch::tensor(rows, torch::kLong); }

// Parameters of a per-style network and the conditional network of one style
// built from it: the same tensors, the norms' as 1 x C rows.
TEST(ConditionalNetworkTest, OneStyleEqualsThePerStyleNetworkInOutputAndGradients) {
  TransformerNet single;
  InitializeTransformer(single, 5);
  TransformerNet conditional(1);
  {
    torch::NoGradGuard no_grad;
    torch::manual_seed(1);
    for (auto& item : single->named_parameters()) {
      // Affine rows that are not 1 and 0, so that a dropped row would show.
      if (IsStyleRowParameter(item.key()) && item.value().requires_grad())
        item.value().copy_(0.5 + torch::rand(item.value().sizes()));
    }
    const auto source = single->named_parameters();
    for (auto& item : conditional->named_parameters())
      item.value().copy_(source[item.key()].reshape(item.value().sizes()));
  }
  const Vgg16 vgg = Vgg16::Load("random:2");
  torch::manual_seed(2);
  const torch::Tensor content = torch::rand({2, 3, 32, 32}) * 255;
  const torch::Tensor style_image = torch::rand({1, 3, 32, 32}) * 255;
  LossNetworkUse use;
  use.content_layers = VggLayerIndices({"conv2_2"});
  use.style_layers = VggLayerIndices({"conv1_2", "conv2_2", "conv3_3"});
  const auto grams = StyleGrams(vgg, style_image, use.style_layers, Precision::kFp32);
  const StyleLossTarget target{&grams, LossWeights{1.0, 50.0, 1e-3}, &use.style_layers};

  const torch::Tensor out_single = single->forward(content);
  const torch::Tensor out_conditional = conditional->forward(content, Rows({0, 0}));
  EXPECT_LT(MaxRelativeDifference(out_conditional, out_single), 1e-6);

  TransformerNet* single_net = &single;
  TransformerNet* conditional_net = &conditional;
  const LossTerms a = ForwardStyleLosses({single_net}, vgg, content, {target}, use, nullptr)[0];
  ConditionalBatch batch{Rows({0, 0}), 0, {target}, {}};
  const LossTerms b =
      ForwardStyleLosses({conditional_net}, vgg, content, {target}, use, nullptr, {&batch})[0];
  EXPECT_NEAR(b.total.item<double>(), a.total.item<double>(), 1e-6 * a.total.item<double>());
  ASSERT_EQ(batch.shares.size(), 1u);
  EXPECT_EQ(batch.shares[0].images, 2);
  a.total.backward();
  b.total.backward();
  const auto single_params = single->named_parameters();
  for (const auto& item : conditional->named_parameters()) {
    const torch::Tensor& expected = single_params[item.key()].grad();
    if (!expected.defined()) {
      EXPECT_FALSE(item.value().grad().defined()) << item.key();
      continue;
    }
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    EXPECT_LT(MaxRelativeDifference(item.value().grad().reshape(expected.sizes()), expected), 1e-6)
        << item.key();
  }
}

// All weight on one style: the blended network is that style's, bit for bit,
// whether the blend is given as a row index, as weights, or made per-style.
TEST(ConditionalNetworkTest, ABlendWithAllWeightOnOneStyleIsThatStyle) {
  TransformerNet net = DistinctRowsNetwork(3, 7);
  torch::NoGradGuard no_grad;
  const torch::Tensor image = torch::rand({1, 3, 24, 28}) * 255;
  for (int64_t s = 0; s < 3; ++s) {
    torch::Tensor one_hot = torch::zeros({3});
    one_hot[s] = 1.0;
    const torch::Tensor by_row = net->forward(image, Rows({s}));
    EXPECT_TRUE(torch::equal(net->forward(image, one_hot.unsqueeze(0)), by_row)) << s;
    EXPECT_TRUE(torch::equal(BlendedTransformer(net, one_hot)->forward(image), by_row)) << s;
  }
  // The styles differ, and an even blend is none of them.
  const torch::Tensor first = net->forward(image, Rows({0}));
  const torch::Tensor second = net->forward(image, Rows({1}));
  EXPECT_GT((first - second).abs().max().item<double>(), 1.0);
  const torch::Tensor half =
      BlendedTransformer(net, torch::tensor({0.5, 0.5, 0.0}))->forward(image);
  EXPECT_GT((half - first).abs().max().item<double>(), 0.1);
  EXPECT_GT((half - second).abs().max().item<double>(), 0.1);
}

// Each image of a batch is normalized with its own style's rows: the batch
// gives what each image gives alone, and the rows of a style absent from
// the batch get exactly zero gradient (so Adam leaves them as they are).
TEST(ConditionalNetworkTest, EachImageReachesItsOwnStyleRowsOnly) {
  TransformerNet net = DistinctRowsNetwork(3, 9);
  torch::manual_seed(4);
  const torch::Tensor images = torch::rand({3, 3, 20, 20}) * 255;
  const torch::Tensor rows = Rows({2, 0, 2});
  const torch::Tensor together = net->forward(images, rows);
  for (int64_t i = 0; i < 3; ++i) {
    torch::NoGradGuard no_grad;
    const torch::Tensor alone = net->forward(images.slice(0, i, i + 1), rows.slice(0, i, i + 1));
    // Up to the convolutions' summation order, which depends on the batch.
    EXPECT_LT(MaxRelativeDifference(together.slice(0, i, i + 1), alone), 1e-5) << i;
  }
  together.square().mean().backward();
  int checked = 0;
  for (const auto& item : net->named_parameters()) {
    if (!IsStyleRowParameter(item.key()) || !item.value().requires_grad()) continue;
    const torch::Tensor grad = item.value().grad();
    ASSERT_TRUE(grad.defined()) << item.key();
    EXPECT_TRUE(torch::equal(grad[1], torch::zeros_like(grad[1]))) << item.key();
    EXPECT_GT(grad[0].abs().sum().item<double>(), 0) << item.key();
    EXPECT_GT(grad[2].abs().sum().item<double>(), 0) << item.key();
    ++checked;
  }
  // in1..in5 and res1..5.in1 scale and shift, res1..5.in2 scale (its shift is frozen).
  EXPECT_EQ(checked, 25);
}

// A per-style network holding row `row` of `conditional` as its norms'
// scale and shift, and the same shared convolutions: what style `row` of
// the conditional network is on its own.
TransformerNet PerStyleCopy(TransformerNet& conditional, int64_t row) {
  TransformerNet single;
  torch::NoGradGuard no_grad;
  const auto source = conditional->named_parameters();
  for (auto& item : single->named_parameters()) {
    const torch::Tensor& from = source[item.key()];
    item.value().copy_(IsStyleRowParameter(item.key()) ? from[row] : from);
  }
  return single;
}

// Sets LibTorch's thread count for a scope and restores it after.
class ThreadsForScope {
 public:
  explicit ThreadsForScope(int threads) : before_(at::get_num_threads()) {
    at::set_num_threads(threads);
  }
  ~ThreadsForScope() { at::set_num_threads(before_); }

 private:
  int before_;
};

// A conditional batch of three styles that differ in all a conditional job
// lets them differ in (ValidateConditional in config/validate.cc:
// content_weight, style_weight, tv_weight and style_image_size; the style
// layers are the job's, but each target names its own list): each style's
// terms are what a per-style network holding that style's rows computes on
// that style's images alone, and the gradients are those per-style gradients
// combined as the conditional loss combines the styles. ConditionalLosses
// (step/forward_pass.cc) takes the image-weighted mean: with n_j of the B
// images in style j and total_j that style's terms over its own images,
// total = sum_j (n_j / B) * total_j. So a shared parameter's gradient is
// sum_j (n_j / B) * grad_j and style j's row gets (n_j / B) * grad_j (no
// other image reaches it). The styles are rows 1..3 of a 4-row network
// (first_row 1, as after adding styles to a base model) and row 0 is absent,
// so that an image reaching the wrong row shows. The weights make each of
// content, style and tv a sizeable part of every total (this random loss
// network's style and content terms are ~1e4, tv ~0.1), so that a wrong
// weight changes the total. One thread and LibTorch's direct convolutions:
// with Winograd's, whose rounding depends on the batch, the gradients of a
// batch split otherwise moved by 1e-3 relative and more.
TEST(ConditionalNetworkTest, EachStyleOfABatchHasThePerStyleNetworksTermsAndGradients) {
  ThreadsForScope one_thread(1);
  ScopedWinograd direct(false);
  TransformerNet net = DistinctRowsNetwork(4, 13);
  const Vgg16 vgg = Vgg16::Load("random:2");
  torch::manual_seed(8);
  const torch::Tensor content = torch::rand({6, 3, 32, 32}) * 255;
  const torch::Tensor rows = Rows({3, 1, 2, 3, 1, 3});  // 2, 1 and 3 images of rows 1, 2, 3
  constexpr int64_t kFirstRow = 1;
  LossNetworkUse use;
  use.content_layers = VggLayerIndices({"conv2_2"});
  use.style_layers = VggLayerIndices({"conv1_2", "conv2_2", "conv3_3"});
  // Per style: its own style image at its own style_image_size, its Gram
  // targets, weights {content, style, tv} and style layer list.
  const int64_t image_sizes[3] = {32, 24, 40};
  const LossWeights weights[3] = {{1.0, 0.5, 1e5}, {0.5, 2.0, 3e5}, {2.0, 0.2, 2e4}};
  std::vector<std::vector<int>> layers(3, use.style_layers);
  std::vector<std::vector<torch::Tensor>> grams(3);
  std::vector<StyleLossTarget> targets;
  for (int j = 0; j < 3; ++j) {
    const torch::Tensor style_image = torch::rand({1, 3, image_sizes[j], image_sizes[j]}) * 255;
    grams[j] = StyleGrams(vgg, style_image, layers[j], Precision::kFp32);
    targets.push_back(StyleLossTarget{&grams[j], weights[j], &layers[j]});
  }

  TransformerNet* conditional_net = &net;
  ConditionalBatch batch{rows, kFirstRow, targets, {}};
  // The conditional network's own entry in `targets` is unused (its batch's are).
  const LossTerms mean =
      ForwardStyleLosses({conditional_net}, vgg, content, {targets[0]}, use, nullptr, {&batch})[0];
  ASSERT_EQ(batch.shares.size(), 3u);
  mean.total.backward();

  // Terms to 1e-6; gradients to 5e-5: the per-style networks run their
  // convolutions over 2, 1 and 3 images rather than 6, which changes the
  // kernels' summation order, and the gradients of convolutions followed by an
  // instance norm are small differences of large sums (a few 1e-6 seen).
  auto expect_close = [](const torch::Tensor& actual, const torch::Tensor& expected,
                         double tolerance, const std::string& what) {
    ASSERT_TRUE(actual.defined()) << what;
    EXPECT_LE(MaxRelativeDifference(actual, expected), tolerance) << what;
  };
  constexpr double kTerms = 1e-6, kGradients = 5e-5;
  std::vector<TransformerNet> singles;
  std::vector<double> fractions;  // n_j / B
  torch::Tensor expected_total;
  for (int64_t j = 0; j < 3; ++j) {
    const std::string style = "style " + std::to_string(j) + " ";
    const torch::Tensor mine = (rows == kFirstRow + j).nonzero().flatten();
    singles.push_back(PerStyleCopy(net, kFirstRow + j));
    TransformerNet* single_net = &singles.back();
    const LossTerms alone = ForwardStyleLosses({single_net}, vgg, content.index_select(0, mine),
                                               {targets[j]}, use, nullptr)[0];
    alone.total.backward();
    const StyleShare& share = batch.shares[j];
    ASSERT_EQ(share.images, mine.size(0)) << style;
    expect_close(share.terms.content, alone.content, kTerms, style + "content");
    expect_close(share.terms.style, alone.style, kTerms, style + "style");
    ASSERT_EQ(share.terms.style_layers.size(), alone.style_layers.size()) << style;
    for (size_t i = 0; i < alone.style_layers.size(); ++i) {
      expect_close(share.terms.style_layers[i], alone.style_layers[i], kTerms,
                   style + "style layer " + std::to_string(i));
    }
    expect_close(share.terms.tv, alone.tv, kTerms, style + "tv");
    expect_close(share.terms.total, alone.total, kTerms, style + "total");
    fractions.push_back(double(mine.size(0)) / double(rows.size(0)));
    const torch::Tensor part = alone.total.detach() * fractions.back();
    expected_total = j == 0 ? part : expected_total + part;
  }
  expect_close(mean.total, expected_total, kTerms, "the batch's total");

  std::vector<torch::OrderedDict<std::string, torch::Tensor>> single_params;
  for (TransformerNet& single : singles) single_params.push_back(single->named_parameters());
  int rows_checked = 0, shared_checked = 0;
  for (const auto& item : net->named_parameters()) {
    if (!item.value().requires_grad()) continue;
    const torch::Tensor grad = item.value().grad();
    ASSERT_TRUE(grad.defined()) << item.key();
    if (IsStyleRowParameter(item.key())) {
      EXPECT_TRUE(torch::equal(grad[0], torch::zeros_like(grad[0]))) << item.key();
      for (int64_t j = 0; j < 3; ++j) {
        expect_close(grad[kFirstRow + j], single_params[j][item.key()].grad() * fractions[j],
                     kGradients, item.key() + " row of style " + std::to_string(j));
      }
      ++rows_checked;
    } else {
      torch::Tensor expected;
      for (int64_t j = 0; j < 3; ++j) {
        const torch::Tensor part = single_params[j][item.key()].grad() * fractions[j];
        expected = j == 0 ? part : expected + part;
      }
      expect_close(grad, expected, kGradients, item.key());
      ++shared_checked;
    }
  }
  // in1..in5 and res1..5.in1 scale and shift, res1..5.in2 scale (its shift is frozen).
  EXPECT_EQ(rows_checked, 25);
  // conv1..3, res1..5's two convolutions, deconv1..3 and deconv3's bias.
  EXPECT_EQ(shared_checked, 17);
}

// A conditional model file: its styles, counts and size (`info`), and
// `export` that PyTorch's module in python/ loads and runs like stylefleet.
class ConditionalModelFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    net_ = DistinctRowsNetwork(3, 11);
    SaveTensorDict(ModelDict(net_, ModelInfo{"job", kConditionalNetworkName, 64, names_}),
                   dir_ / "model.pt");
  }
  TempDir dir_;
  TransformerNet net_{nullptr};
  std::vector<std::string> names_ = {"candy", "mosaic", "wave"};
};

TEST_F(ConditionalModelFileTest, LoadsWithItsStylesAndInfoDescribesIt) {
  const LoadedModel loaded = LoadModel(dir_ / "model.pt");
  EXPECT_EQ(loaded.styles, names_);
  EXPECT_EQ(loaded.net->styles(), 3);
  const std::string info = DescribeModel(dir_.path());
  EXPECT_NE(info.find("network: conditional, 3 styles"), std::string::npos) << info;
  EXPECT_NE(info.find("3200 per style"), std::string::npos) << info;
  EXPECT_NE(info.find("2: wave"), std::string::npos) << info;
  // The uses that need a per-style network say what to do instead.
  try {
    LoadTransformer(dir_ / "model.pt");
    FAIL() << "a conditional model loaded as a per-style one";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("conditional network of 3 styles (candy, mosaic, wave)"),
              std::string::npos)
        << e.what();
  }
}

// A conditional job's style folder has no model; pointing `info` or
// `stylize --model` at it says where the network is and how to pick the style.
TEST_F(ConditionalModelFileTest, AStyleFolderWithoutAModelPointsToItsNetwork) {
  fs::create_directories(dir_ / "job/conditional");
  fs::create_directories(dir_ / "job/mosaic/previews");
  fs::copy_file(dir_ / "model.pt", dir_ / "job/conditional/model.pt");
  for (const std::string& folder : {dir_ / "job/mosaic", dir_ / "job/mosaic/"}) {
    try {
      LoadModel(folder);
      FAIL() << "a folder without a model loaded";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(
                    "folder holds neither model.pt nor checkpoints/step-*.pt; if it is a style of "
                    "the conditional network in " +
                    (dir_ / "job/conditional") + ", give that folder and the style: --model " +
                    (dir_ / "job/conditional") + " --style mosaic"),
                std::string::npos)
          << e.what();
    }
  }
  // Without a network beside it, the message stays as it was.
  fs::remove_all(dir_ / "job/conditional");
  try {
    LoadModel(dir_ / "job/mosaic");
    FAIL() << "a folder without a model loaded";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()).find("conditional"), std::string::npos) << e.what();
  }
}

// Names that do not match the rows (a hand-edited file) are refused.
TEST_F(ConditionalModelFileTest, StyleNamesThatDoNotMatchTheRowsAreRefused) {
  TensorDict dict = LoadTensorDict(dir_ / "model.pt");
  for (auto& [key, tensor] : dict) {
    if (key == "stylefleet.styles") tensor = StringToTensor("candy\nmosaic");
  }
  dict.erase(std::remove_if(dict.begin(), dict.end(),
                            [](const auto& e) { return e.first == "stylefleet.checksum"; }),
             dict.end());
  SaveTensorDict(dict, dir_ / "edited.pt");
  try {
    LoadModel(dir_ / "edited.pt");
    FAIL() << "two names for three rows were accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("lists 2 style names"), std::string::npos) << e.what();
  }
}

// An empty or repeated name (a hand-edited file) would leave a row that
// --style and --blend cannot reach: refused, as by the PyTorch module.
TEST_F(ConditionalModelFileTest, EmptyOrRepeatedStyleNamesAreRefused) {
  TensorDict dict = LoadTensorDict(dir_ / "model.pt");
  dict.erase(std::remove_if(dict.begin(), dict.end(),
                            [](const auto& e) { return e.first == "stylefleet.checksum"; }),
             dict.end());
  for (const auto& [names, problem] : std::vector<std::pair<std::string, std::string>>{
           {"candy\nmosaic\ncandy", "names row 2 'candy', a name given twice"},
           {"candy\n\nwave", "names row 1 '', an empty name"}}) {
    for (auto& [key, tensor] : dict) {
      if (key == "stylefleet.styles") tensor = StringToTensor(names);
    }
    SaveTensorDict(dict, dir_ / "edited.pt");
    try {
      LoadModel(dir_ / "edited.pt");
      FAIL() << names << " was accepted";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(problem), std::string::npos) << e.what();
    }
  }
}

// --style and --blend: every mistake is refused before anything is written.
TEST_F(ConditionalModelFileTest, StylizeRefusesBadStylesAndBlends) {
  SaveImageFile(testing::MakeTestImage(20, 16, 1), dir_ / "photo.png");
  auto refusal = [&](const std::string& style, const std::string& blend) -> std::string {
    StylizeOptions options;
    options.model = dir_ / "model.pt";
    options.inputs = {dir_ / "photo.png"};
    options.output_dir = dir_ / "out";
    options.style = style;
    options.blend = blend;
    try {
      StylizeImages(options);
    } catch (const ConfigError& e) {
      EXPECT_FALSE(fs::exists(dir_ / "out")) << style << " " << blend;
      return e.problems().front();
    }
    return "";
  };
  EXPECT_EQ(refusal("", ""),
            (dir_ / "model.pt") +
                " is a conditional model of 3 styles (candy, mosaic, wave): give either --style "
                "NAME or --blend NAME=W,NAME=W");
  EXPECT_EQ(refusal("starry", ""),
            "--style starry: the model has no such style; its styles: candy, mosaic, wave");
  EXPECT_EQ(refusal("candy", "candy=1"), "--style and --blend: give one of them, not both");
  EXPECT_EQ(refusal("", "candy=0.5,mosaic=0.4"),
            "--blend: the weights sum to 0.9; they must sum to 1 (a convex combination of the "
            "styles' rows)");
  EXPECT_EQ(refusal("", "candy=1.5,mosaic=-0.5"),
            "--blend: the weight of 'candy' must be a number from 0 to 1, got '1.5'");
  EXPECT_EQ(refusal("", "candy=0.5,starry=0.5"),
            "--blend: the model has no style 'starry'; its styles: candy, mosaic, wave");
  EXPECT_EQ(refusal("", "candy=0.5,candy=0.5"), "--blend: style 'candy' is given twice");
  EXPECT_EQ(refusal("", "candy"),
            "--blend: expected NAME=WEIGHT,NAME=WEIGHT, got 'candy' in 'candy'");
  EXPECT_EQ(refusal("", "candy=nan,mosaic=1"),
            "--blend: the weight of 'candy' must be a number from 0 to 1, got 'nan'");
  // Good ones write their image.
  EXPECT_EQ(refusal("wave", ""), "");
  EXPECT_TRUE(fs::exists(dir_ / "out/photo.jpg"));
  fs::remove_all(dir_ / "out");
  EXPECT_EQ(refusal("", "candy=0.25,wave=0.75"), "");
  EXPECT_TRUE(fs::exists(dir_ / "out/photo.jpg"));
  // Spaces around names and weights are ignored, as by the PyTorch module.
  fs::remove_all(dir_ / "out");
  EXPECT_EQ(refusal("", " =1"), "--blend: expected NAME=WEIGHT,NAME=WEIGHT, got ' =1' in ' =1'");
  EXPECT_EQ(refusal("", "candy = 0.25, wave=0.75 "), "");
  EXPECT_TRUE(fs::exists(dir_ / "out/photo.jpg"));
}

// `export` of a conditional model: python/stylefleet_torch.py loads the one
// file (shared weights, rows, names) and stylizes with a style or a blend as
// stylefleet does (max abs difference < 1e-3 on 0..255).
TEST_F(ConditionalModelFileTest, PyTorchModuleMatchesStylefleetForStylesAndBlends) {
  ExportModel(dir_ / "model.pt", dir_ / "export.pt", /*overwrite=*/false);
  torch::manual_seed(6);
  const torch::Tensor input = torch::rand({2, 3, 36, 28}) * 255;
  TensorDict data = {{"input", input}};
  torch::NoGradGuard no_grad;
  const LoadedModel loaded = LoadModel(dir_ / "export.pt");
  EXPECT_EQ(loaded.styles, names_);
  int k = 0;
  auto add_case = [&](const std::string& kind, const std::string& text,
                      const torch::Tensor& weights) {
    const std::string prefix = "case." + std::to_string(k++) + ".";
    data.emplace_back(prefix + kind, StringToTensor(text));
    data.emplace_back(prefix + "output", BlendedTransformer(net_, weights)->forward(input));
  };
  add_case("style", "mosaic", torch::tensor({0.0, 1.0, 0.0}));
  add_case("style", "wave", torch::tensor({0.0, 0.0, 1.0}));
  add_case("blend", "candy=0.7,wave=0.3", torch::tensor({0.7, 0.0, 0.3}));
  SaveTensorDict(data, dir_ / "data.pt");
  const std::string command = "/usr/bin/python3 " + std::string(STYLEFLEET_SOURCE_DIR) +
                              "/tests/reference/export_check.py " + (dir_ / "export.pt") + " " +
                              (dir_ / "data.pt");
  const testing::CommandResult result = testing::RunCommand(command);
  EXPECT_EQ(result.exit_code, 0) << command << "\n" << result.output;
}

}  // namespace
}  // namespace stylefleet
