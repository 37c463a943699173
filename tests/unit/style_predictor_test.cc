// The arbitrary-style network's parts (issue 34): the transformer whose norms
// take each image's parameters, and the style predictor that makes them from
// a style image's loss-network features. Against a conditional network (bit
// for bit) and against PyTorch (tests/reference/reference.py predictor).
#include "model/style_predictor.h"

#include <gtest/gtest.h>

#include "model/tensor_file.h"
#include "model/transformer_net.h"
#include "model/vgg16.h"
#include "tensor_check.h"
#include "test_util.h"

namespace stylefleet {
namespace {
using testing::MaxRelativeDifference;
using testing::TempDir;

// A conditional network of `styles` whose rows differ from each other and
// from a fresh network's (scale 1, shift 0).
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

TEST(PredictedNormsTest, LayoutCoversEveryNormOnceInForwardOrder) {
  const auto& layout = PredictedNormLayout();
  ASSERT_EQ(layout.size(), 15u);
  EXPECT_EQ(layout.front().name, "in1");
  EXPECT_EQ(layout[3].name, "res1.in1");
  EXPECT_EQ(layout[12].name, "res5.in2");
  EXPECT_EQ(layout.back().name, "in5");
  int64_t next = 0;
  for (const NormSlot& slot : layout) {
    EXPECT_EQ(slot.offset, next) << slot.name;
    // Only a residual block's second norm has no shift (the next norms cancel it).
    EXPECT_EQ(slot.shifted, slot.name.find(".in2") == std::string::npos) << slot.name;
    next += slot.channels * (slot.shifted ? 2 : 1);
  }
  EXPECT_EQ(NormParameterCount(), next);
  EXPECT_EQ(NormParameterCount(), 2560);
  // The arbitrary-style network owns the convolutions alone.
  TransformerNet arbitrary{PredictedNorms{}};
  EXPECT_TRUE(arbitrary->predicts_norms());
  for (const auto& item : arbitrary->named_parameters()) {
    EXPECT_FALSE(IsStyleRowParameter(item.key())) << item.key();
  }
  // The norms' 30 parameters are gone; the predictor's 4 come last.
  const auto names = arbitrary->named_parameters().keys();
  ASSERT_EQ(names.size(), TransformerNet()->named_parameters().size() - 30 + 4);
  EXPECT_EQ(std::vector<std::string>(names.end() - 4, names.end()),
            (std::vector<std::string>{"predictor.bottleneck.weight", "predictor.bottleneck.bias",
                                      "predictor.to_norms.weight", "predictor.to_norms.bias"}));
  EXPECT_EQ(arbitrary->predictor()->summary_size(), 1920);
  EXPECT_EQ(arbitrary->predictor()->embedding_size(), 100);
  EXPECT_THROW(TransformerNet()->predictor(), std::exception);
}

// InitializeTransformer draws an arbitrary-style network's predictor too: the
// identity norms, a bottleneck from the seed (the same seed, the same bits).
TEST(PredictedNormsTest, InitializeTransformerDrawsThePredictorFromTheSeed) {
  const PredictedNorms shape{{1, 3}, 8};
  TransformerNet a{shape}, b{shape}, other{shape};
  InitializeTransformer(a, 5);
  InitializeTransformer(b, 5);
  InitializeTransformer(other, 6);
  EXPECT_EQ(a->predictor()->summary_size(), 2 * (64 + 128));
  const auto from_b = b->named_parameters();
  const auto from_other = other->named_parameters();
  for (const auto& item : a->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), from_b[item.key()])) << item.key();
  }
  EXPECT_FALSE(torch::equal(a->named_parameters()["predictor.bottleneck.weight"],
                            from_other["predictor.bottleneck.weight"]));
  torch::manual_seed(2);
  const torch::Tensor norms = a->predictor()->forward(torch::randn({2, 384}) * 100);
  TransformerNet fresh;
  InitializeTransformer(fresh, 5);
  for (const NormSlot& slot : PredictedNormLayout()) {
    EXPECT_TRUE(torch::equal(norms[1].narrow(0, slot.offset, slot.channels),
                             fresh->named_parameters()[slot.name + ".weight"]))
        << slot.name;
  }
}

// A predictor that outputs one style's rows makes the arbitrary-style network
// compute what the conditional network computes for that style, bit for bit,
// with and without autograd, for a batch holding several styles.
TEST(PredictedNormsTest, AConditionalRowAsNormsReproducesTheConditionalNetworkBitForBit) {
  TransformerNet conditional = DistinctRowsNetwork(3, 11);
  TransformerNet arbitrary = ArbitraryTransformer(conditional);
  torch::manual_seed(5);
  const torch::Tensor images = torch::rand({3, 3, 32, 32}) * 255;
  const torch::Tensor rows = torch::tensor({2, 0, 1}, torch::kLong);
  const torch::Tensor norms =
      torch::stack({ConditionalRowNorms(conditional, 2), ConditionalRowNorms(conditional, 0),
                    ConditionalRowNorms(conditional, 1)});
  ASSERT_EQ(norms.sizes(), (std::vector<int64_t>{3, NormParameterCount()}));
  EXPECT_TRUE(torch::equal(arbitrary->forward(images, norms), conditional->forward(images, rows)));
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(arbitrary->forward(images, norms), conditional->forward(images, rows)));
  // Another row's norms give another image (the test can see a wrong slice).
  const torch::Tensor swapped = norms.index_select(0, torch::tensor({1, 2, 0}, torch::kLong));
  EXPECT_FALSE(
      torch::equal(arbitrary->forward(images, swapped), conditional->forward(images, rows)));
}

// One image's norms fixed into a per-style network (what stylize runs, whole or
// tiled) compute what the arbitrary-style network computes with them.
TEST(PredictedNormsTest, FixedNormsMakeThePerStyleNetworkOfThoseNorms) {
  TransformerNet conditional = DistinctRowsNetwork(2, 4);
  TransformerNet arbitrary = ArbitraryTransformer(conditional);
  torch::manual_seed(8);
  const torch::Tensor norms = 0.5 + torch::rand({NormParameterCount()});
  TransformerNet fixed = FixedNormsTransformer(arbitrary, norms);
  EXPECT_FALSE(fixed->predicts_norms());
  EXPECT_EQ(fixed->styles(), 0);
  const torch::Tensor images = torch::rand({2, 3, 24, 24}) * 255;
  const torch::Tensor both = norms.unsqueeze(0).expand({2, NormParameterCount()});
  // With autograd both run the written-out norm; without, the per-style
  // network runs torch::instance_norm (the same arithmetic).
  EXPECT_TRUE(torch::equal(fixed->forward(images), arbitrary->forward(images, both)));
  torch::NoGradGuard no_grad;
  EXPECT_LT(MaxRelativeDifference(fixed->forward(images), arbitrary->forward(images, both)), 1e-6);
  // A residual block's second norm keeps a shift of 0.
  EXPECT_TRUE(fixed->named_parameters()["res3.in2.bias"].eq(0).all().item<bool>());
  EXPECT_THROW(FixedNormsTransformer(fixed, norms), std::exception);
  EXPECT_THROW(FixedNormsTransformer(arbitrary, norms.narrow(0, 1, 100)), std::exception);
}

TEST(PredictedNormsTest, AnArbitraryStyleNetworkRefusesRowsOrAMissingMix) {
  TransformerNet arbitrary{PredictedNorms{}};
  InitializeTransformer(arbitrary, 3);
  const torch::Tensor images = torch::rand({2, 3, 16, 16}) * 255;
  EXPECT_THROW(arbitrary->forward(images), std::exception);
  EXPECT_THROW(arbitrary->forward(images, torch::tensor({0, 1}, torch::kLong)), std::exception);
  EXPECT_THROW(arbitrary->forward(images, torch::ones({2, NormParameterCount() - 1})),
               std::exception);
  EXPECT_THROW(arbitrary->forward(images, torch::ones({1, NormParameterCount()})), std::exception);
}

// Fresh, the predictor gives every style image scale 1 and shift 0 (where a
// fresh transformer's norms start), however large the summary's values; its
// bottleneck is drawn from the seed.
TEST(StylePredictorTest, AnUntrainedPredictorGivesTheIdentityNorms) {
  StylePredictor predictor(64, 10);
  InitializeStylePredictor(predictor, 7);
  torch::manual_seed(1);
  const torch::Tensor summaries = torch::randn({4, 64}) * 1000;
  const torch::Tensor norms = predictor->forward(summaries);
  torch::Tensor identity = torch::zeros({NormParameterCount()});
  for (const NormSlot& slot : PredictedNormLayout()) {
    identity.narrow(0, slot.offset, slot.channels).fill_(1.0);
  }
  for (int64_t i = 0; i < 4; ++i) EXPECT_TRUE(torch::equal(norms[i], identity)) << i;
  EXPECT_FALSE(torch::equal(predictor->Embed(summaries)[0], predictor->Embed(summaries)[1]));
  StylePredictor again(64, 10);
  InitializeStylePredictor(again, 7);
  for (const auto& item : predictor->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), again->named_parameters()[item.key()])) << item.key();
  }
}

// The summary, the embedding, the norms, the stylized image and the
// predictor's gradients against PyTorch on the same weights and images.
TEST(StylePredictorTest, MatchesPyTorchReferenceInForwardAndGradients) {
  TempDir dir;
  const testing::CommandResult run = testing::RunReference("predictor " + dir.path());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const TensorDict expected = LoadTensorDict(dir / "expected.pt");
  auto get = [&](const std::string& key) {
    const torch::Tensor* t = FindTensor(expected, key);
    if (t == nullptr) throw std::runtime_error("expected.pt lacks " + key);
    return *t;
  };
  const Vgg16 vgg = Vgg16::Load(dir / "vgg.pt");
  TransformerNet source;
  LoadTransformerParameters(source, LoadTensorDict(dir / "transformer.pt"), "transformer.pt");
  const std::vector<int> layers = {1, 3, 6};  // conv1_2, conv2_2, conv3_3
  TransformerNet arbitrary =
      ArbitraryTransformer(source, PredictedNorms{layers, get("bottleneck.weight").size(0)}, 1);

  const torch::Tensor summary = StyleSummary(vgg.Forward(get("style"), layers), layers);
  EXPECT_LT(MaxRelativeDifference(summary, get("summary")), 1e-5);

  // The network's own predictor, its weights replaced by the reference's.
  StylePredictor& predictor = arbitrary->predictor();
  ASSERT_EQ(predictor->summary_size(), summary.size(1));
  {
    torch::NoGradGuard no_grad;
    for (auto& item : predictor->named_parameters()) item.value().copy_(get(item.key()));
  }
  const torch::Tensor embedding = predictor->Embed(summary);
  const torch::Tensor norms = predictor->NormsOf(embedding);
  EXPECT_LT(MaxRelativeDifference(embedding, get("embedding")), 1e-5);
  EXPECT_LT(MaxRelativeDifference(norms, get("norms")), 1e-5);
  const torch::Tensor generated = arbitrary->forward(get("content"), norms);
  EXPECT_LT(MaxRelativeDifference(generated, get("generated")), 1e-4);

  (generated * get("probe")).sum().backward();
  for (const auto& item : predictor->named_parameters()) {
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    EXPECT_LT(MaxRelativeDifference(item.value().grad(), get("grad." + item.key())), 1e-4)
        << item.key();
  }
}

}  // namespace
}  // namespace stylefleet
