// Adam against torch.optim.Adam (Debian's python3-torch): the same starting
// parameters and the same per-step gradients must give the same parameters
// and moments after N steps. A loss that falls during training does not
// check the optimizer: Adam without its first bias correction, for one, still
// trains.
//
// Adam lives in train/model_state.h for now (it is to move to optim/adam.h);
// this file only needs that include re-pointed.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "model/tensor_file.h"
#include "optim/adam.h"
#include "tensor_check.h"
#include "test_util.h"

namespace stylefleet {
namespace {
using testing::MaxRelativeDifference;

struct AdamRun {
  double learning_rate = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  int steps = 10;
  int lr_change_step = -1;  ///< step index from which lr_after applies; -1: never
  double lr_after = 0;
  torch::ScalarType type = torch::kFloat32;
  /// Construct Adam as the trainer does (learning rate only), so that its
  /// default betas and eps are the ones compared with torch's.
  bool trainer_constructor = false;
};

// Initial parameters and the gradient of each at each step. The three tensors
// get gradients of scale 1e-7 (where eps is a tenth of sqrt(v), so misplacing
// eps shows), 1 and 100, varying from step to step so that both moments move.
struct AdamInputs {
  std::vector<torch::Tensor> params;
  std::vector<std::vector<torch::Tensor>> grads;  // [step][param]
};

AdamInputs MakeInputs(const AdamRun& run) {
  torch::manual_seed(21);
  const std::vector<std::vector<int64_t>> shapes = {{4, 3}, {7}, {2, 3, 2, 2}};
  const double scales[] = {1e-7, 1.0, 100.0};
  const auto options = torch::TensorOptions().dtype(run.type);
  AdamInputs in;
  for (const auto& shape : shapes) in.params.push_back(torch::randn(shape, options));
  for (int s = 0; s < run.steps; ++s) {
    std::vector<torch::Tensor> step;
    for (size_t i = 0; i < shapes.size(); ++i) {
      step.push_back(torch::randn(shapes[i], options) * (scales[i] * (1 + s % 3)));
    }
    in.grads.push_back(step);
  }
  return in;
}

// stylefleet's Adam; returns the reference's keys: param.I, exp_avg.I, exp_avg_sq.I.
TensorDict RunStylefleetAdam(const AdamRun& run, const AdamInputs& in) {
  std::vector<torch::Tensor> params;
  for (const auto& p : in.params) params.push_back(p.clone().requires_grad_(true));
  const auto made = run.trainer_constructor ? std::make_unique<Adam>(params, run.learning_rate)
                                            : std::make_unique<Adam>(params, run.learning_rate,
                                                                     run.beta1, run.beta2, run.eps);
  Adam& adam = *made;
  for (int s = 0; s < run.steps; ++s) {
    if (s == run.lr_change_step) adam.set_learning_rate(run.lr_after);
    for (size_t i = 0; i < params.size(); ++i) {
      params[i].mutable_grad() = in.grads[static_cast<size_t>(s)][i].clone();
    }
    adam.Step();
  }
  TensorDict out;
  for (size_t i = 0; i < params.size(); ++i) {
    out.emplace_back("param." + std::to_string(i), params[i].detach());
    out.emplace_back("exp_avg." + std::to_string(i), adam.exp_avg(i));
    out.emplace_back("exp_avg_sq." + std::to_string(i), adam.exp_avg_sq(i));
  }
  return out;
}

// torch.optim.Adam through tests/reference/reference.py, on the same inputs.
TensorDict RunTorchAdam(const AdamRun& run, const AdamInputs& in, const testing::TempDir& dir) {
  TensorDict dict;
  dict.emplace_back(
      "hyper", torch::tensor({run.learning_rate, run.beta1, run.beta2, run.eps, double(run.steps),
                              double(run.lr_change_step), run.lr_after},
                             torch::kFloat64));
  for (size_t i = 0; i < in.params.size(); ++i) {
    dict.emplace_back("param." + std::to_string(i), in.params[i]);
    for (size_t s = 0; s < in.grads.size(); ++s) {
      dict.emplace_back("grad." + std::to_string(s) + "." + std::to_string(i), in.grads[s][i]);
    }
  }
  SaveTensorDict(dict, dir / "adam_in.pt");
  const testing::CommandResult result =
      testing::RunReference("adam " + (dir / "adam_in.pt") + " " + (dir / "adam_out.pt"));
  if (result.exit_code != 0)
    throw std::runtime_error("reference.py adam failed:\n" + result.output);
  return LoadTensorDict(dir / "adam_out.pt");
}

// Every tensor torch wrote, within `tolerance` (MaxRelativeDifference). With
// `compare_updates`, parameters are compared by their change from the start
// (p_N - p_0): far stricter than the parameters themselves when the steps are
// small against the values, but only meaningful in float64, where the
// subtraction loses nothing.
void ExpectSameState(const TensorDict& mine, const TensorDict& expected, const AdamInputs& in,
                     double tolerance, bool compare_updates) {
  ASSERT_EQ(mine.size(), expected.size());
  for (const auto& [key, want] : expected) {
    const torch::Tensor* got = FindTensor(mine, key);
    ASSERT_NE(got, nullptr) << key;
    ASSERT_EQ(got->scalar_type(), want.scalar_type()) << key;
    if (compare_updates && key.rfind("param.", 0) == 0) {
      const torch::Tensor& start = in.params[std::stoul(key.substr(6))];
      EXPECT_LT(MaxRelativeDifference(*got - start, want - start), tolerance) << key << " update";
    } else {
      EXPECT_LT(MaxRelativeDifference(*got, want), tolerance) << key;
    }
  }
}

// The trainer's settings: default betas and eps (torch's: 0.9, 0.999, 1e-8),
// float32 parameters.
TEST(AdamCrossCheckTest, TrainerSettingsMatchTorchOptimAdamInFloat32) {
  testing::TempDir dir;
  AdamRun run;
  run.trainer_constructor = true;
  const AdamInputs in = MakeInputs(run);
  ExpectSameState(RunStylefleetAdam(run, in), RunTorchAdam(run, in, dir), in, 1e-6, false);
}

// Every hyperparameter away from its default, and a learning-rate change in
// the middle of the run (set_learning_rate, which a schedule would call, is
// PyTorch's param_groups[0]["lr"]); float64, compared by the updates.
TEST(AdamCrossCheckTest, OtherHyperparametersAndALearningRateChangeMatchInFloat64) {
  testing::TempDir dir;
  AdamRun run;
  run.learning_rate = 0.05;
  run.beta1 = 0.8;
  run.beta2 = 0.99;
  run.eps = 1e-6;
  run.steps = 12;
  run.lr_change_step = 6;
  run.lr_after = 0.01;
  run.type = torch::kFloat64;
  const AdamInputs in = MakeInputs(run);
  ExpectSameState(RunStylefleetAdam(run, in), RunTorchAdam(run, in, dir), in, 1e-6, true);
}

}  // namespace
}  // namespace stylefleet
