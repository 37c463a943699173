// The shared forward pass of a training step: several styles at once equal
// each style alone; bf16 stays close to fp32; the finiteness guards of a
// step; the phase clock, its trace and the FLOP count.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "comm/world.h"
#include "common/error.h"
#include "model/style_predictor.h"
#include "step/forward_pass.h"
#include "step/step_clock.h"
#include "step/step_cost.h"
#include "step/training_step.h"
#include "test_util.h"

namespace stylefleet {
namespace {

struct Fixture {
  Vgg16 vgg = Vgg16::Load("random:5");
  LossNetworkUse use;
  torch::Tensor content;
  std::vector<TransformerNet> nets;
  std::vector<std::vector<torch::Tensor>> grams;
  std::vector<StyleLossTarget> targets;

  explicit Fixture(int styles, int size = 64) {
    use.content_layers = {6};
    use.style_layers = {1, 3, 6, 9};
    torch::manual_seed(11);
    content = torch::rand({2, 3, size, size}) * 255;
    grams.resize(static_cast<size_t>(styles));
    for (int k = 0; k < styles; ++k) {
      nets.emplace_back();
      grams[static_cast<size_t>(k)] = StyleGrams(vgg, torch::rand({1, 3, size, size}) * 255,
                                                 use.style_layers, Precision::kFp32);
      targets.push_back({&grams[static_cast<size_t>(k)], LossWeights{1.0, 100.0 * (k + 1), 1e-3}});
    }
  }
  std::vector<TransformerNet*> Pointers() {
    std::vector<TransformerNet*> out;
    for (auto& n : nets) out.push_back(&n);
    return out;
  }
};

double Relative(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-30); }

TEST(StepTest, StylesTogetherEqualEachStyleAlone) {
  Fixture f(3);
  const auto together =
      ForwardStyleLosses(f.Pointers(), f.vgg, f.content, f.targets, f.use, nullptr);
  ASSERT_EQ(together.size(), 3u);
  for (size_t k = 0; k < 3; ++k) {
    const auto alone =
        ForwardStyleLosses({f.Pointers()[k]}, f.vgg, f.content, {f.targets[k]}, f.use, nullptr);
    EXPECT_LT(Relative(together[k].total.item<double>(), alone[0].total.item<double>()), 1e-5) << k;
    EXPECT_LT(Relative(together[k].content.item<double>(), alone[0].content.item<double>()), 1e-5)
        << k;
    for (size_t l = 0; l < 4; ++l) {
      EXPECT_LT(Relative(together[k].style_layers[l].item<double>(),
                         alone[0].style_layers[l].item<double>()),
                1e-5)
          << k << " layer " << l;
    }
  }
  // Gradients reach each style's network from its own loss only.
  together[1].total.backward();
  for (const auto& item : TrainableParameters(f.nets[0])) {
    EXPECT_TRUE(!item.second.grad().defined() || item.second.grad().abs().max().item<double>() == 0)
        << item.first;
  }
  bool any = false;
  for (const auto& item : TrainableParameters(f.nets[1])) {
    any =
        any || (item.second.grad().defined() && item.second.grad().abs().sum().item<double>() > 0);
  }
  EXPECT_TRUE(any);
}

// BT.601 luma in every channel, and its gradient spreads over the three
// colours by their weights.
TEST(StepTest, LuminanceImageIsTheLumaInEveryChannel) {
  const torch::Tensor rgb =
      torch::tensor({100.0f, 0.0f, 50.0f, 255.0f, 200.0f, 10.0f}).reshape({1, 3, 1, 2});
  rgb.set_requires_grad(true);
  const torch::Tensor grey = LuminanceImage(rgb);
  ASSERT_EQ(grey.sizes(), rgb.sizes());
  for (int64_t c = 0; c < 3; ++c) {
    EXPECT_FLOAT_EQ(grey[0][c][0][0].item<float>(), 0.299f * 100 + 0.587f * 50 + 0.114f * 200);
    EXPECT_FLOAT_EQ(grey[0][c][0][1].item<float>(), 0.587f * 255 + 0.114f * 10);
  }
  grey.sum().backward();
  const float weights[3] = {0.299f, 0.587f, 0.114f};
  for (int64_t c = 0; c < 3; ++c) {
    EXPECT_FLOAT_EQ(rgb.grad()[0][c][0][0].item<float>(), 3 * weights[c]) << c;
  }
}

// With the style loss on luminance, each network's style terms come from the
// loss network's features of its images' luma and its content terms from
// their colours, for per-style networks trained together (each reads its own
// part of both passes) and for a conditional network's batch.
TEST(StepTest, StyleLossOnLuminanceTakesStyleFeaturesOfTheLuma) {
  Fixture f(2);
  LossNetworkUse luminance = f.use;
  luminance.style_luminance_only = true;
  const auto got =
      ForwardStyleLosses(f.Pointers(), f.vgg, f.content, f.targets, luminance, nullptr);
  const auto colour = ForwardStyleLosses(f.Pointers(), f.vgg, f.content, f.targets, f.use, nullptr);
  ASSERT_EQ(got.size(), 2u);
  const auto content = f.vgg.Forward(f.content, f.use.content_layers);
  for (size_t k = 0; k < 2; ++k) {
    const torch::Tensor generated = f.nets[k]->forward(f.content);
    const auto colours = f.vgg.Forward(generated, f.use.content_layers);
    const auto luma = f.vgg.Forward(LuminanceImage(generated), f.use.style_layers);
    std::vector<torch::Tensor> gen_content, target_content, gen_style;
    for (int layer : f.use.content_layers) {
      gen_content.push_back(colours.at(layer));
      target_content.push_back(content.at(layer));
    }
    for (int layer : f.use.style_layers) gen_style.push_back(luma.at(layer));
    const LossTerms expected = ComputeLosses(gen_content, target_content, gen_style, f.grams[k],
                                             generated, f.targets[k].weights);
    EXPECT_LT(Relative(got[k].content.item<double>(), expected.content.item<double>()), 1e-5) << k;
    EXPECT_LT(Relative(got[k].total.item<double>(), expected.total.item<double>()), 1e-5) << k;
    for (size_t l = 0; l < 4; ++l) {
      EXPECT_LT(
          Relative(got[k].style_layers[l].item<double>(), expected.style_layers[l].item<double>()),
          1e-5)
          << k << " layer " << l;
    }
    // The colour pass gives other style terms: the flag is what made them.
    EXPECT_GT(Relative(colour[k].style.item<double>(), got[k].style.item<double>()), 1e-4) << k;
    EXPECT_LT(Relative(colour[k].content.item<double>(), got[k].content.item<double>()), 1e-5) << k;
  }
  // A conditional network's batch of one style reads the same passes.
  TransformerNet conditional(1);
  InitializeTransformer(conditional, 3);
  TransformerNet* conditional_net = &conditional;
  ConditionalBatch batch{
      torch::tensor(std::vector<int64_t>{0, 0}, torch::kLong), 0, {f.targets[0]}, {}};
  const LossTerms mixed = ForwardStyleLosses({conditional_net}, f.vgg, f.content, {f.targets[0]},
                                             luminance, nullptr, {&batch})[0];
  const torch::Tensor generated = conditional->forward(f.content, batch.rows);
  const auto luma = f.vgg.Forward(LuminanceImage(generated), f.use.style_layers);
  std::vector<torch::Tensor> gen_style;
  for (int layer : f.use.style_layers) gen_style.push_back(luma.at(layer));
  const auto colours = f.vgg.Forward(generated, f.use.content_layers);
  const LossTerms expected = ComputeLosses({colours.at(6)}, {content.at(6)}, gen_style, f.grams[0],
                                           generated, f.targets[0].weights);
  EXPECT_LT(Relative(mixed.style.item<double>(), expected.style.item<double>()), 1e-5);
  EXPECT_LT(Relative(mixed.content.item<double>(), expected.content.item<double>()), 1e-5);
}

// bf16 convolutions keep each loss term within 3% of fp32 on the first step of
// a random model (measured here: 0.2%); losses, gradients and weights stay float32.
TEST(StepTest, Bf16LossesStayCloseToFp32) {
  Fixture f(1);
  LossNetworkUse bf16 = f.use;
  bf16.precision = Precision::kBf16;
  const auto a = ForwardStyleLosses(f.Pointers(), f.vgg, f.content, f.targets, f.use, nullptr)[0];
  const auto b = ForwardStyleLosses(f.Pointers(), f.vgg, f.content, f.targets, bf16, nullptr)[0];
  EXPECT_EQ(b.total.scalar_type(), torch::kFloat32);
  std::printf("bf16 vs fp32 relative deviation: total %.2e, content %.2e, style %.2e\n",
              Relative(b.total.item<double>(), a.total.item<double>()),
              Relative(b.content.item<double>(), a.content.item<double>()),
              Relative(b.style.item<double>(), a.style.item<double>()));
  EXPECT_LT(Relative(b.total.item<double>(), a.total.item<double>()), 0.03);
  EXPECT_LT(Relative(b.content.item<double>(), a.content.item<double>()), 0.03);
  EXPECT_LT(Relative(b.style.item<double>(), a.style.item<double>()), 0.03);
  b.total.backward();
  for (const auto& item : TrainableParameters(f.nets[0])) {
    ASSERT_TRUE(item.second.grad().defined()) << item.first;
    EXPECT_EQ(item.second.grad().scalar_type(), torch::kFloat32) << item.first;
    EXPECT_TRUE(torch::isfinite(item.second.grad()).all().item<bool>()) << item.first;
  }
}

// One rank of a two-rank group (threads, in-process communicators) with its
// own copy of the same model.
struct GuardedRank {
  Fixture f{1, 32};
  std::vector<torch::Tensor> trainable;
  std::unique_ptr<Adam> adam;
  std::unique_ptr<GradientBuckets> buckets;

  GuardedRank() {
    for (const auto& item : TrainableParameters(f.nets[0])) trainable.push_back(item.second);
    adam = std::make_unique<Adam>(trainable, 0.01);
    buckets = std::make_unique<GradientBuckets>(trainable, size_t{25} << 20);
  }
  std::vector<torch::Tensor> Snapshot() const {
    std::vector<torch::Tensor> out;
    for (const auto& t : trainable) out.push_back(t.detach().clone());
    for (size_t i = 0; i < trainable.size(); ++i) out.push_back(adam->exp_avg(i).clone());
    return out;
  }
  bool Unchanged(const std::vector<torch::Tensor>& before) const {
    const auto now = Snapshot();
    for (size_t i = 0; i < now.size(); ++i) {
      if (!torch::equal(now[i], before[i])) return false;
    }
    return true;
  }
};

// Each finiteness guard on its own (loss faults leave the gradients finite,
// gradient faults leave the loss finite): a fault on rank 1 only makes the
// step bad on both ranks, and neither weights nor optimizer state move; the
// next, healthy step updates both.
TEST(StepTest, ANonFiniteLossOrGradientOnOneRankSkipsTheUpdateOnEveryRank) {
  const std::vector<std::pair<InjectedFault, std::string>> faults = {
      {InjectedFaultNamed("nan-loss"), "nan-loss"},
      {InjectedFaultNamed("inf-loss"), "inf-loss"},
      {InjectedFaultNamed("nan-gradient"), "nan-gradient"},
      {InjectedFaultNamed("inf-gradient"), "inf-gradient"}};
  for (const auto& [fault, name] : faults) {
    const bool loss_fault = name.find("loss") != std::string::npos;
    std::vector<std::unique_ptr<GuardedRank>> ranks;
    for (int r = 0; r < 2; ++r) ranks.push_back(std::make_unique<GuardedRank>());
    auto world = MakeLocalWorlds(2);
    std::vector<StepOutcome> faulty(2), healthy(2);
    std::vector<bool> unchanged(2), moved(2);
    std::vector<std::thread> threads;
    for (int r = 0; r < 2; ++r) {
      threads.emplace_back([&, r] {
        GuardedRank& me = *ranks[static_cast<size_t>(r)];
        Communicator& group = world[static_cast<size_t>(r)]->all();
        TrainingStep step(me.f.vgg, group, group, StepOptions{1, me.f.use}, nullptr);
        StepStyle style{&me.f.nets[0], me.adam.get(), me.buckets.get(), me.f.targets[0]};
        const auto before = me.Snapshot();
        style.fault = r == 1 ? fault : InjectedFault::kNone;
        faulty[static_cast<size_t>(r)] = step.Run(me.f.content, {style}, false);
        unchanged[static_cast<size_t>(r)] = me.Unchanged(before) && me.adam->steps() == 0;
        style.fault = InjectedFault::kNone;
        healthy[static_cast<size_t>(r)] = step.Run(me.f.content, {style}, false);
        moved[static_cast<size_t>(r)] = !me.Unchanged(before) && me.adam->steps() == 1;
      });
    }
    for (auto& t : threads) t.join();
    for (size_t r = 0; r < 2; ++r) {
      const StyleStepValues& v = faulty[r].styles.at(0);
      EXPECT_TRUE(v.bad) << name << " rank " << r;
      // The fault is where its name says: the loss guard sees only loss faults.
      EXPECT_EQ(std::isfinite(v.total), !loss_fault) << name << " rank " << r << ": " << v.total;
      if (name == "inf-loss") {
        EXPECT_TRUE(std::isinf(v.total)) << v.total;
      }
      EXPECT_TRUE(unchanged[r]) << name << ": rank " << r << " updated after a bad step";
      EXPECT_FALSE(healthy[r].styles.at(0).bad) << name << " rank " << r;
      EXPECT_TRUE(moved[r]) << name << ": rank " << r << " did not update after a good step";
    }
  }
  EXPECT_THROW(InjectedFaultNamed("nan"), ConfigError);
}

// Runs `steps(rank, step, r, ranks)` on every rank of a group (threads,
// in-process communicators) for each split of 4 units: 4 ranks, 2 ranks of 2
// micro-batches and 1 process of 4. Returns, per split, rank 0's gradients
// and weights after it.
template <typename Rank>
std::vector<std::vector<torch::Tensor>> RunEachSplitOfFourUnits(
    const std::function<void(Rank&, TrainingStep&, int, int)>& steps) {
  std::vector<std::vector<torch::Tensor>> results;
  for (const auto& [ranks, parts] : std::vector<std::pair<int, int>>{{4, 1}, {2, 2}, {1, 4}}) {
    std::vector<std::unique_ptr<Rank>> group;
    for (int r = 0; r < ranks; ++r) group.push_back(std::make_unique<Rank>());
    auto world = MakeLocalWorlds(ranks);
    std::vector<std::thread> threads;
    for (int r = 0; r < ranks; ++r) {
      threads.emplace_back([&, r, ranks = ranks, parts = parts] {
        Rank& me = *group[static_cast<size_t>(r)];
        Communicator& comm = world[static_cast<size_t>(r)]->all();
        TrainingStep step(me.f.vgg, comm, comm, StepOptions{parts, me.f.use}, nullptr);
        steps(me, step, r, ranks);
      });
    }
    for (auto& t : threads) t.join();
    std::vector<torch::Tensor> out;
    for (const torch::Tensor& p : group[0]->trainable) {
      out.push_back(p.grad().clone());
      out.push_back(p.detach().clone());
    }
    results.push_back(std::move(out));
  }
  return results;
}

void ExpectEverySplitGivesTheSameBits(const std::vector<std::vector<torch::Tensor>>& results) {
  for (size_t split = 1; split < results.size(); ++split) {
    ASSERT_EQ(results[split].size(), results[0].size());
    size_t differ = 0;
    for (size_t i = 0; i < results[0].size(); ++i) {
      if (!torch::equal(results[split][i], results[0][i])) ++differ;
    }
    EXPECT_EQ(differ, 0u) << "split " << split << ": " << differ << " of " << results[0].size()
                          << " gradients and weights differ from 4 ranks'";
  }
}

// One step on 4 images split as 4 ranks, 2 ranks of 2 micro-batches and 1
// process of 4: the averaged gradients and the updated weights are the same
// bits (GradientTree adds micro-batches in the tree the communicators add
// ranks in), which is what makes an elastic resume exact. Seen failing with
// the micro-batches accumulated one after another, or the ranks summed in
// rank order.
TEST(StepTest, AnySplitOfFourUnitsOverRanksAndMicroBatchesGivesTheSameBits) {
  torch::manual_seed(3);
  const torch::Tensor images = torch::rand({4, 3, 32, 32}) * 255;
  ExpectEverySplitGivesTheSameBits(RunEachSplitOfFourUnits<GuardedRank>(
      [&](GuardedRank& me, TrainingStep& step, int r, int ranks) {
        StepStyle style{&me.f.nets[0], me.adam.get(), me.buckets.get(), me.f.targets[0]};
        // A group's rank r takes images r, r + N, ... (its shard).
        step.Run(images.slice(0, r, 4, ranks).contiguous(), {style}, false);
      }));
  GradientTree three;
  for (int part = 0; part < 3; ++part) three.Add({torch::ones({2})});
  EXPECT_THROW(three.Total(), Error);
}

// An arbitrary-style network's batch computes, bit for bit, the loss terms
// of the conditional network whose row of each style is what the predictor
// makes of that style's summary: each image with its own style's targets and
// norms. Seen failing with the summaries of the first target given to every
// image.
TEST(StepTest, PredictedConditionalRowsGiveTheConditionalNetworksTerms) {
  Fixture f(2, 32);
  TransformerNet conditional(2);
  InitializeTransformer(conditional, 4);
  TransformerNet arbitrary = ArbitraryTransformer(conditional, PredictedNorms{{1}, 4}, 0);
  torch::manual_seed(6);
  const torch::Tensor summaries = torch::rand({2, 128}) * 100;
  {
    // A trained predictor's map is not 0; each style's norms become its row.
    torch::NoGradGuard no_grad;
    auto map = arbitrary->predictor()->named_parameters()["to_norms.weight"];
    map.copy_(torch::randn(map.sizes()));
    // The batch below holds style 1 then style 0: the predictor sees the
    // same [2 x 128] input here as in the pass (a matrix product's bits may
    // depend on a row's place).
    const torch::Tensor order = torch::tensor({1, 0}, torch::kLong);
    const torch::Tensor norms = arbitrary->predictor()->forward(summaries.index_select(0, order));
    auto rows = conditional->named_parameters();
    for (const NormSlot& slot : PredictedNormLayout()) {
      for (int64_t i = 0; i < 2; ++i) {
        const int64_t k = order[i].item<int64_t>();
        rows[slot.name + ".weight"][k].copy_(norms[i].narrow(0, slot.offset, slot.channels));
        if (slot.shifted) {
          rows[slot.name + ".bias"][k].copy_(
              norms[i].narrow(0, slot.offset + slot.channels, slot.channels));
        }
      }
    }
  }
  ConditionalBatch by_rows;
  by_rows.rows = torch::tensor({1, 0}, torch::kLong);
  by_rows.targets = f.targets;
  ConditionalBatch by_norms = by_rows;
  by_norms.summaries = summaries;
  TransformerNet* conditional_net = &conditional;
  TransformerNet* arbitrary_net = &arbitrary;
  const LossTerms expected = ForwardStyleLosses({conditional_net}, f.vgg, f.content, {f.targets[0]},
                                                f.use, nullptr, {&by_rows})[0];
  const LossTerms got = ForwardStyleLosses({arbitrary_net}, f.vgg, f.content, {f.targets[0]}, f.use,
                                           nullptr, {&by_norms})[0];
  EXPECT_TRUE(torch::equal(got.total, expected.total));
  EXPECT_TRUE(torch::equal(got.style, expected.style));
  EXPECT_TRUE(torch::equal(got.content, expected.content));
  ASSERT_EQ(by_norms.shares.size(), 2u);
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(by_norms.shares[k].images, 1);
    EXPECT_TRUE(torch::equal(by_norms.shares[k].terms.style, by_rows.shares[k].terms.style)) << k;
  }
  // The two styles differ in their terms, so a wrong pairing would show.
  EXPECT_FALSE(torch::equal(by_rows.shares[0].terms.total, by_rows.shares[1].terms.total));
  by_norms.rows = torch::tensor({5, 0}, torch::kLong);
  EXPECT_THROW(ForwardStyleLosses({arbitrary_net}, f.vgg, f.content, {f.targets[0]}, f.use, nullptr,
                                  {&by_norms}),
               std::exception);
}

// One rank's copy of an arbitrary-style network (issue 34) and its two style
// images' targets and summaries; its predictor trains with the transformer.
struct ArbitraryRank {
  static constexpr int64_t kEmbedding = 6;
  Fixture f{2, 32};
  TransformerNet net{PredictedNorms{{1, 3}, kEmbedding}};
  torch::Tensor summaries;  // [2 x 384]: the two style images'
  std::vector<torch::Tensor> trainable;
  std::unique_ptr<Adam> adam;
  std::unique_ptr<GradientBuckets> buckets;

  ArbitraryRank() {
    InitializeTransformer(net, 3);
    torch::manual_seed(12);
    const torch::Tensor styles = torch::rand({2, 3, 32, 32}) * 255;
    summaries = StyleSummary(f.vgg.Forward(styles, {1, 3}), {1, 3});
    for (const auto& item : TrainableParameters(net)) trainable.push_back(item.second);
    adam = std::make_unique<Adam>(trainable, 0.01);
    buckets = std::make_unique<GradientBuckets>(trainable, size_t{25} << 20);
  }
};

// The predictor trains inside the step: two steps of an arbitrary-style
// network, each image with its own style image's targets and predicted norms,
// give the same bits over every split of 4 units (as a per-style network's
// step does), and every predictor parameter moves (the bottleneck from the
// second step on, once the map to the norms is no longer 0).
TEST(StepTest, AnArbitraryStyleNetworkTrainsItsPredictorAndSplitsGiveTheSameBits) {
  torch::manual_seed(3);
  const torch::Tensor images = torch::rand({4, 3, 32, 32}) * 255;
  const std::vector<torch::Tensor> rows = {torch::tensor({0, 1, 1, 0}, torch::kLong),
                                           torch::tensor({1, 1, 0, 1}, torch::kLong)};
  std::vector<torch::Tensor> start;
  {
    ArbitraryRank fresh;
    for (const torch::Tensor& p : fresh.trainable) start.push_back(p.detach().clone());
  }
  const auto results = RunEachSplitOfFourUnits<ArbitraryRank>(
      [&](ArbitraryRank& me, TrainingStep& step, int r, int ranks) {
        for (const torch::Tensor& step_rows : rows) {
          ConditionalBatch batch;
          batch.targets = me.f.targets;
          batch.summaries = me.summaries;
          batch.rows = step_rows.slice(0, r, 4, ranks).contiguous();
          StepStyle style{&me.net, me.adam.get(), me.buckets.get(), me.f.targets[0], &batch};
          const StepOutcome outcome =
              step.Run(images.slice(0, r, 4, ranks).contiguous(), {style}, false);
          ASSERT_FALSE(outcome.styles.at(0).bad);
          ASSERT_EQ(outcome.styles[0].styles.size(), 2u);
        }
      });
  ExpectEverySplitGivesTheSameBits(results);
  ArbitraryRank names;
  const auto trainable = TrainableParameters(names.net);
  ASSERT_EQ(results[0].size(), 2 * trainable.size());
  for (size_t i = 0; i < trainable.size(); ++i) {
    if (trainable[i].first.rfind("predictor.", 0) != 0) continue;
    EXPECT_FALSE(torch::equal(results[0][2 * i + 1], start[i])) << trainable[i].first;
    EXPECT_GT(results[0][2 * i].abs().max().item<double>(), 0) << trainable[i].first;
  }
}

TEST(StepTest, ClockSplitsTimeAndWritesAChromeTrace) {
  StepClock clock(torch::kCPU, true);
  clock.Begin(Phase::kData);
  clock.Begin(Phase::kBackward, "part 1");
  // At least 1 ms in the backward phase, by the same monotonic clock: a lower
  // bound by construction, not a speed assertion.
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(1)) {
  }
  clock.End();
  clock.End();  // nothing running: no effect
  const double backward = clock.seconds()[static_cast<size_t>(Phase::kBackward)];
  EXPECT_GE(backward, 1e-3);
  EXPECT_EQ(clock.seconds()[static_cast<size_t>(Phase::kOptimizer)], 0.0);  // never begun
  testing::TempDir dir;
  const std::string path = dir / "trace.json";
  clock.WriteTrace(path, 3, "rank 3");
  std::ifstream in(path);
  const nlohmann::json trace = nlohmann::json::parse(in);
  const auto& events = trace.at("traceEvents");
  ASSERT_EQ(events.size(), 3u);  // process name + 2 spans
  EXPECT_EQ(events[1].at("name"), "data");
  EXPECT_EQ(events[2].at("name"), "backward");
  EXPECT_EQ(events[2].at("ph"), "X");
  EXPECT_EQ(events[2].at("pid"), 3);
  EXPECT_EQ(events[2].at("args").at("detail"), "part 1");
  EXPECT_NEAR(events[2].at("dur").get<double>(), backward * 1e6, 1e-3);
  EXPECT_LE(events[1].at("ts").get<double>(), events[2].at("ts").get<double>());
  EXPECT_EQ(RankTracePath("out/t.json", 1, 2), "out/t.rank1.json");
  EXPECT_EQ(RankTracePath("out/t.json", 0, 1), "out/t.json");
}

TEST(StepTest, FlopCountMatchesTheLayerShapes) {
  LossNetworkUse use;
  use.content_layers = {6};
  use.style_layers = {1, 3, 6, 9};
  const StepFlops f = TrainingFlopsPerImage(256, use.content_layers, use.style_layers);
  // conv1 of the transformer alone: 2 * 3 * 32 * 9 * 9 * 256 * 256.
  const double conv1 = 2.0 * 3 * 32 * 81 * 256 * 256;
  EXPECT_NEAR(f.transformer_forward / 1e9, 20.158, 1e-3);
  EXPECT_DOUBLE_EQ(f.transformer_backward, 2 * f.transformer_forward - conv1);
  EXPECT_NEAR(f.vgg_generated / 1e9, 2 * 36.465, 1e-2);  // up to conv4_3, forward + input gradient
  EXPECT_NEAR(f.vgg_content / 1e9, 24.386, 1e-2);        // up to conv3_3
  EXPECT_NEAR(StylizeFlopsPerImage(256), f.transformer_forward, 1);
  // Quadratic in the side.
  EXPECT_NEAR(TrainingFlopsPerImage(512, use.content_layers, use.style_layers).total() / f.total(),
              4.0, 1e-9);
}

}  // namespace
}  // namespace stylefleet
