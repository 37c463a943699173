// Training end to end on generated photos with a random loss network:
// the loss falls, resume is bitwise exact, output folders are protected,
// stylize tiles blend correctly.
#include "train/train.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "checkpoint/checkpoint_files.h"
#include "checkpoint/model_file.h"
#include "comm/world.h"
#include "commands/commands.h"
#include "common/error.h"
#include "config/job_config.h"
#include "config/job_settings.h"
#include "data/dataset.h"
#include "data/image.h"
#include "data/image_tensor.h"
#include "model/tensor_file.h"
#include "model/transformer_net.h"
#include "model/vgg16.h"
#include "recording_metrics.h"
#include "runtime/rank_runtime.h"
#include "step/forward_pass.h"
#include "test_paths.h"
#include "test_util.h"
#include "train/preflight.h"
#include "train/rank_agreement.h"
#include "train/run_settings.h"
#include "train/train_plan.h"
#include "vgg_test_dict.h"

namespace stylefleet {
namespace {
namespace fs = std::filesystem;
using testing::TempDir;

// The job most tests here train, written by testing::JobText: 2 photos per
// step, 4 steps, a record every step, previews every 2, checkpoints every 2.
testing::JobText TrainTestJob(const std::string& output) {
  return testing::JobText()
      .Set("job", "output_dir", output)
      .Set("job", "seed", "3")
      .Set("loss_network", "weights", "'random:2'")
      .Set("training", "batch_size", "2")
      .Set("training", "max_steps", "4")
      .Set("training", "learning_rate", "0.01")
      .Set("training", "log_every_steps", "1")
      .Set("training", "preview_every_steps", "2")
      .Set("checkpoint", "every_steps", "2")
      .Set("checkpoint", "keep", "5")
      .Set("monitoring", "listen", "");
}

class TrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::WriteTestImages(dir_ / "photos", 8, 80, 72);
    SaveImageFile(testing::MakeTestImage(90, 90, 5), dir_ / "style.png");
  }

  JobConfig Job(const std::string& output, std::vector<std::string> overrides = {}) {
    TrainTestJob(output).Style("image: style.png").Write(dir_ / "job.yaml");
    LoadOptions options;
    options.overrides = std::move(overrides);
    return LoadJob(dir_ / "job.yaml", options);
  }

  static TrainRunOptions Quiet() {
    TrainRunOptions options;
    options.progress = false;
    options.threads = 1;
    return options;
  }

  static TensorDict Params(const std::string& model) {
    TensorDict out;
    for (auto& item : LoadTensorDict(model)) {
      if (item.first.rfind("stylefleet.", 0) != 0) out.push_back(item);
    }
    return out;
  }

  // Every tensor of two model files, bitwise.
  static void ExpectSameTensors(const std::string& a_path, const std::string& b_path) {
    const TensorDict a = Params(a_path), b = Params(b_path);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].first, b[i].first);
      EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
    }
  }

  static std::vector<nlohmann::json> Metrics(const std::string& style_dir,
                                             const std::string& file = "metrics.jsonl") {
    std::ifstream in(style_dir + "/" + file);
    std::vector<nlohmann::json> records;
    for (std::string line; std::getline(in, line);) records.push_back(nlohmann::json::parse(line));
    return records;
  }

  TempDir dir_;
};

TEST_F(TrainTest, LossFallsAndOutputsAreWritten) {
  const JobConfig job = Job("out", {"training.max_steps=24", "checkpoint.every_steps=8",
                                    "checkpoint.keep=2", "training.preview_every_steps=12"});
  TrainJob(job, Quiet());
  const std::string style_dir = dir_ / "out/style";
  const auto records = Metrics(style_dir);
  ASSERT_EQ(records.size(), 24u);
  double first = 0, last = 0;
  for (int i = 0; i < 4; ++i) {
    first += records[static_cast<size_t>(i)]["total_loss"].get<double>();
    last += records[records.size() - 1 - static_cast<size_t>(i)]["total_loss"].get<double>();
  }
  EXPECT_LT(last, 0.7 * first) << "first steps " << first / 4 << ", last steps " << last / 4;
  EXPECT_EQ(records.back()["style_loss_by_layer"].size(), 4u);
  EXPECT_TRUE(fs::exists(style_dir + "/model.pt"));
  EXPECT_TRUE(fs::exists(style_dir + "/previews/step-00000012.png"));
  EXPECT_TRUE(fs::exists(style_dir + "/previews/step-00000024.png"));
  // keep: 2 of the checkpoints at steps 8, 16, 24
  const auto checkpoints = ListCheckpoints(style_dir);
  ASSERT_EQ(checkpoints.size(), 2u);
  EXPECT_EQ(checkpoints[0], CheckpointPath(style_dir, 24));
  EXPECT_EQ(checkpoints[1], CheckpointPath(style_dir, 16));
}

TEST_F(TrainTest, StoppingAndResumingGivesBitwiseTheSameModel) {
  TrainJob(Job("straight"), Quiet());
  TrainJob(Job("resumed", {"training.max_steps=2"}), Quiet());
  ASSERT_EQ(ListCheckpoints(dir_ / "resumed/style").size(), 1u);
  TrainJob(Job("resumed"), Quiet());
  ExpectSameTensors(dir_ / "straight/style/model.pt", dir_ / "resumed/style/model.pt");
  // The resumed run's metrics continue without duplicates.
  const auto records = Metrics(dir_ / "resumed/style");
  ASSERT_EQ(records.size(), 4u);
  for (size_t i = 0; i < records.size(); ++i) EXPECT_EQ(records[i]["step"], i + 1);
}

// A record's losses are the mean over the images since the previous record
// (one step of a small batch is noise), the logged step's own values beside
// them; a checkpoint inside a window keeps it, so a resume records the same.
TEST_F(TrainTest, RecordsHoldTheMeanOfTheirWindowAcrossAResume) {
  const std::vector<std::string> six = {"training.max_steps=6", "checkpoint.every_steps=2"};
  std::vector<std::string> windows = six;
  windows.push_back("training.log_every_steps=3");
  TrainJob(Job("every", six), Quiet());
  TrainJob(Job("windows", windows), Quiet());
  const auto every = Metrics(dir_ / "every/style");
  const auto records = Metrics(dir_ / "windows/style");
  ASSERT_EQ(every.size(), 6u);
  ASSERT_EQ(records.size(), 2u);
  for (size_t r = 0; r < 2; ++r) {
    const nlohmann::json& record = records[r];
    EXPECT_EQ(record["step"], 3 * (r + 1));
    EXPECT_EQ(record["images"], 6) << "3 steps of 2 images";
    for (const char* key : {"content_loss", "style_loss", "tv_loss", "total_loss"}) {
      double mean = 0;
      for (size_t s = 3 * r; s < 3 * r + 3; ++s) mean += every[s][key].get<double>() / 3;
      EXPECT_NEAR(record[key].get<double>(), mean, 1e-12 * std::abs(mean)) << key << " " << r;
      EXPECT_EQ(record["step_losses"][key], every[3 * r + 2][key]) << key << " " << r;
    }
    for (const auto& [layer, value] : record["style_loss_by_layer"].items()) {
      double mean = 0;
      for (size_t s = 3 * r; s < 3 * r + 3; ++s)
        mean += every[s]["style_loss_by_layer"][layer].get<double>() / 3;
      EXPECT_NEAR(value.get<double>(), mean, 1e-12 * std::abs(mean)) << layer << " " << r;
    }
  }
  // Resumed from the checkpoint of step 4, inside the window of steps 4-6.
  const std::string style_dir = dir_ / "windows/style";
  const auto before = Metrics(style_dir);
  fs::remove(CheckpointPath(style_dir, 6));
  fs::remove(fs::path(style_dir) / "model.pt");
  TrainJob(Job("windows", windows), Quiet());
  const auto after = Metrics(style_dir);
  ASSERT_EQ(after.size(), 2u);
  for (const char* key : {"content_loss", "style_loss", "tv_loss", "total_loss", "images"}) {
    EXPECT_EQ(after[1][key], before[1][key]) << key;
  }
}

// A step skipped for a non-finite loss is left out of its record's mean
// (its NaN would make the whole window's mean NaN); a window of skipped steps
// only records their values with no images.
TEST_F(TrainTest, RecordsLeaveSkippedStepsOutOfTheirMean) {
  TrainRunOptions faulty = Quiet();
  faulty.inject_faults = {"style:2:nan-loss", "style:4:nan-loss", "style:5:nan-loss"};
  const std::vector<std::string> five = {"training.max_steps=5"};
  std::vector<std::string> windows = five;
  windows.push_back("training.log_every_steps=3");
  TrainJob(Job("every", five), faulty);
  TrainJob(Job("windows", windows), faulty);
  const auto every = Metrics(dir_ / "every/style");
  const auto records = Metrics(dir_ / "windows/style");
  ASSERT_EQ(every.size(), 5u);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0]["images"], 4) << "steps 1 and 3 of 2 images; step 2 skipped";
  for (const char* key : {"content_loss", "style_loss", "tv_loss", "total_loss"}) {
    const double mean = (every[0][key].get<double>() + every[2][key].get<double>()) / 2;
    EXPECT_NEAR(records[0][key].get<double>(), mean, 1e-12 * std::abs(mean)) << key;
  }
  EXPECT_EQ(records[1]["images"], 0) << "steps 4 and 5 both skipped";
  EXPECT_TRUE(records[1]["total_loss"].is_null()) << records[1];
}

// A resume allowed past changed style layers (--allow-changed-settings)
// restores the network from its checkpoint; the logging window, sized for
// the old layers, is only logging and is dropped (it used to make every
// checkpoint "unreadable", so nothing resumed).
TEST_F(TrainTest, AResumeWithOtherStyleLayersKeepsTheCheckpointAndDropsTheWindow) {
  const std::vector<std::string> first = {"training.max_steps=4", "checkpoint.every_steps=3",
                                          "training.log_every_steps=2"};
  TrainJob(Job("out", first), Quiet());
  // Back to the checkpoint of step 3, whose window holds step 3 (4 layers).
  fs::remove(CheckpointPath(dir_ / "out/style", 4));
  fs::remove(dir_ / "out/style/model.pt");
  std::vector<std::string> changed = first;
  changed.push_back("training.style_layers=[conv1_2, conv2_2]");
  TrainRunOptions allowed = Quiet();
  allowed.allow_changed_settings = true;
  TrainJob(Job("out", changed), allowed);
  EXPECT_TRUE(fs::exists(CheckpointPath(dir_ / "out/style", 4)));
  const auto records = Metrics(dir_ / "out/style");
  ASSERT_EQ(records.size(), 2u);  // step 2 of the first run, step 4 of the resumed one
  EXPECT_EQ(records[1]["step"], 4);
  EXPECT_EQ(records[1]["images"], 2) << "step 4 alone: the old window was dropped";
  EXPECT_EQ(records[1]["style_loss_by_layer"].size(), 2u);
}

// job.styles_at_once: styles sharing each batch and loss-network pass train as
// they would apart; a style with other batch settings trains on its own; a
// style stopped by numerical faults leaves the pass and the others finish.
// Runs TrainJob for `jobs[r]` on rank r of an in-process world (one thread
// per rank); returns what each rank threw ("" when it returned).
std::vector<std::string> TrainOnLocalRanks(const std::vector<JobConfig>& jobs,
                                           const TrainRunOptions& options) {
  auto worlds = MakeLocalWorlds(static_cast<int>(jobs.size()));
  std::vector<std::string> errors(jobs.size());
  std::vector<std::thread> ranks;
  for (size_t r = 0; r < jobs.size(); ++r) {
    ranks.emplace_back([&, r] {
      try {
        TrainJob(jobs[r], options, *worlds[r]);
      } catch (const ConfigError& e) {
        errors[r] = "config: " + e.problems().front();
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  }
  for (auto& t : ranks) t.join();
  return errors;
}

// The in-process backend drives the whole trainer like two ranks: batch 2 on
// each ends bitwise equal to one process of batch 4 in 2 micro-batches (the
// same shards, the same sums), every tensor compared.
TEST_F(TrainTest, TwoInProcessRanksEqualOneProcessWithMicroBatches) {
  const JobConfig parallel = Job(dir_ / "parallel");
  EXPECT_EQ(TrainOnLocalRanks({parallel, parallel}, Quiet()), (std::vector<std::string>{"", ""}));
  TrainJob(Job(dir_ / "single", {"training.batch_size=4", "training.micro_batches=2"}), Quiet());
  ExpectSameTensors(dir_ / "parallel/style/model.pt", dir_ / "single/style/model.pt");
  // The logged losses are the whole batch's on both: the ranks' average and the
  // micro-batches' mean (equal up to rounding: they add in another order).
  const auto parallel_records = Metrics(dir_ / "parallel/style");
  const auto single_records = Metrics(dir_ / "single/style");
  ASSERT_EQ(parallel_records.size(), 4u);
  ASSERT_EQ(single_records.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    for (const char* key : {"content_loss", "style_loss", "tv_loss", "total_loss"}) {
      const double x = parallel_records[i][key], y = single_records[i][key];
      EXPECT_LT(std::abs(x - y), 1e-6 * std::abs(y)) << key << " at step " << i + 1;
    }
  }
}

// A rank launched with another --set stops every rank before any training
// collective, naming the key and who holds what.
TEST_F(TrainTest, InProcessRanksThatDisagreeOnAKeyStopNamingIt) {
  const auto errors = TrainOnLocalRanks(
      {Job(dir_ / "o"), Job(dir_ / "o", {"distributed.bucket_mb=0.01"})}, Quiet());
  for (const auto& e : errors) {
    EXPECT_EQ(e,
              "config: ranks disagree on distributed.bucket_mb: rank 0 has '25'; rank 1 has "
              "'0.01'");
  }
  EXPECT_FALSE(fs::exists(dir_ / "o/style"));
}

// DescribeContentList of the content folder `dir` as listed now.
std::string ContentListOf(const std::string& dir) {
  const std::vector<std::string> files = ListImageFiles(dir);
  return DescribeContentList(files.size(), ContentListHash(dir, files));
}

// The first problem each of two in-process ranks reports when rank 0 reads
// `first` and rank 1 `second` of `job` ("" for a rank that agrees).
std::vector<std::string> AgreementErrors(const JobConfig& job, const JobInputs& first,
                                         const JobInputs& second) {
  auto world = MakeLocalWorld(2);
  std::vector<std::string> errors(2);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.emplace_back([&, r] {
      try {
        CheckRanksAgreeOnJob(*world[static_cast<size_t>(r)], job, {}, r == 0 ? first : second);
      } catch (const ConfigError& e) {
        errors[static_cast<size_t>(r)] = e.problems().front();
      }
    });
  }
  for (auto& t : ranks) t.join();
  return errors;
}

// Ranks that see different content folders under the same path (a node's
// copy lacks a file, or holds another) are stopped, naming the folder.
TEST_F(TrainTest, RanksThatSeeDifferentContentFilesAreStopped) {
  const JobConfig job = Job(dir_ / "o");
  std::vector<std::string> files = ListImageFiles(job.data.content_dir);
  std::vector<std::string> fewer(files.begin(), files.end() - 1);
  std::vector<std::string> other = files;
  other.back() = dir_ / "style.png";  // same count, another file
  for (const auto& second : {fewer, other}) {
    const std::vector<std::string> errors = AgreementErrors(
        job, JobInputs{files.size(), ContentListHash(job.data.content_dir, files), {}},
        JobInputs{second.size(), ContentListHash(job.data.content_dir, second), {}});
    const std::string expected =
        second.size() < files.size()
            ? "ranks disagree on the number of content files in " + job.data.content_dir +
                  ": rank 0 has '8'; rank 1 has '7'"
            : "ranks disagree on the content files (relative paths and sizes, hashed)";
    for (const auto& e : errors) EXPECT_EQ(e.substr(0, expected.size()), expected) << e;
  }
}

// A node whose copy of the style image differs (another picture under the
// same name) trains another style: stopped, naming the file (found in a
// trial: only the path was compared).
TEST_F(TrainTest, RanksThatReadDifferentStyleImagesAreStopped) {
  const JobConfig job = Job(dir_ / "o");
  const JobInputs first = ReadJobInputs(job, 0, "");
  ASSERT_EQ(first.file_hashes.size(), 1u);  // random loss network: no weights file
  SaveImageFile(testing::MakeTestImage(90, 90, 6), dir_ / "style.png");
  const JobInputs second = ReadJobInputs(job, 0, "");
  const std::vector<std::string> errors = AgreementErrors(job, first, second);
  const std::string expected = "ranks disagree on the style image " + (dir_ / "style.png") +
                               " (size and bytes, hashed): rank 0 has '" +
                               first.file_hashes[0].second + "'; rank 1 has '" +
                               second.file_hashes[0].second + "'";
  for (const auto& e : errors) EXPECT_EQ(e.substr(0, expected.size()), expected) << e;
}

// The ranks compare the style image bytes each decoded (the plan's), not the
// file as it is when they compare: a rank whose file changed after its decode
// is stopped although the files now agree (found in a review: the decode had
// moved before the hashing).
TEST_F(TrainTest, RanksCompareTheStyleImageBytesTheyDecoded) {
  const JobConfig job = Job(dir_ / "o");
  TrainPlan plan;
  plan.job = job;
  plan.runs = SelectRuns(plan.job, {});
  ASSERT_TRUE(DecodeStyleImages(&plan).empty());
  const std::string& image = job.styles.front().image;
  ASSERT_EQ(plan.style_image_hashes.count(image), 1u);
  // One hash for the same bytes, read whole or decoded.
  EXPECT_EQ(plan.style_image_hashes[image], FileContentHash(image, false));
  SaveImageFile(testing::MakeTestImage(90, 90, 6), image);  // replaced after the decode
  const JobInputs decoded = ReadJobInputs(job, 0, "", plan.style_image_hashes);
  const JobInputs now = ReadJobInputs(job, 0, "");
  const std::vector<std::string> errors = AgreementErrors(job, decoded, now);
  const std::string expected = "ranks disagree on the style image " + image;
  for (const auto& e : errors) EXPECT_EQ(e.substr(0, expected.size()), expected) << e;
}

// A file's hash: copies agree; whole, any changed byte shows; sampled (for
// files of hundreds of MB), a change of size or in a sampled block shows.
TEST_F(TrainTest, FileContentHashSeesChangedBytes) {
  std::string bytes(3 << 20, 'a');
  testing::WriteFile(dir_ / "a.bin", bytes);
  testing::WriteFile(dir_ / "b.bin", bytes);
  for (bool sampled : {false, true}) {
    EXPECT_EQ(FileContentHash(dir_ / "a.bin", sampled), FileContentHash(dir_ / "b.bin", sampled));
  }
  bytes[bytes.size() - 1] = 'b';  // in the last block, which the sample holds
  testing::WriteFile(dir_ / "b.bin", bytes);
  EXPECT_NE(FileContentHash(dir_ / "a.bin", true), FileContentHash(dir_ / "b.bin", true));
  bytes[bytes.size() - 1] = 'a';
  bytes[100000] = 'b';  // between sampled blocks
  testing::WriteFile(dir_ / "b.bin", bytes);
  EXPECT_NE(FileContentHash(dir_ / "a.bin", false), FileContentHash(dir_ / "b.bin", false));
  testing::WriteFile(dir_ / "b.bin", bytes + "x");
  EXPECT_NE(FileContentHash(dir_ / "a.bin", true), FileContentHash(dir_ / "b.bin", true));
  EXPECT_EQ(FileContentHash(dir_ / "none.bin", false), "missing");
}

// What the content comparison hashes: two copies of the folder hash the same;
// a copy that holds another file of another size under the same name (a
// partial copy on one node) does not.
TEST_F(TrainTest, ContentHashSeesAFileOfAnotherSizeUnderTheSameName) {
  testing::WriteTestImages(dir_ / "copy", 8, 80, 72);
  const std::vector<std::string> files = ListImageFiles(dir_ / "photos");
  const std::vector<std::string> copy = ListImageFiles(dir_ / "copy");
  EXPECT_EQ(ContentListHash(dir_ / "photos", files), ContentListHash(dir_ / "copy", copy));
  testing::WriteFile(copy.back(), "cut short");
  EXPECT_NE(ContentListHash(dir_ / "photos", files), ContentListHash(dir_ / "copy", copy));
}

// A sweep over the style layers and the style image size: its runs train in
// one pass by default (styles_at_once 0), each with its own layers and Gram
// targets, and each ends as it would trained alone; every run records its
// swept values and reports them as metric labels. LibTorch's direct
// convolutions make "as alone" exact (see StylesTrainedTogetherMatchStylesTrainedApart).
TEST_F(TrainTest, SweepRunsTrainTogetherAsTheyWouldApart) {
  auto job_text = [&](const std::string& output, int at_once) {
    return TrainTestJob(output)
        .Set("job", "convolution", "direct")
        .Set("job", "styles_at_once", std::to_string(at_once))
        .Set("training", "max_steps", "3")
        .Set("training", "preview_every_steps", "0")
        .Set("checkpoint", "every_steps", "3")
        .Set("checkpoint", "keep", "1")
        .Section(
            "sweep:\n  grid:\n    style_layers: [[conv1_2, conv2_2], [conv3_3]]\n"
            "    style_image_size: [32, 64]\n")
        .Style("name: s, image: style.png")
        .Text();
  };
  testing::WriteFile(dir_ / "apart.yaml", job_text("apart", 1));
  testing::WriteFile(dir_ / "together.yaml", job_text("together", 0));
  EXPECT_TRUE(TrainJob(LoadJob(dir_ / "apart.yaml"), Quiet()).failed_styles.empty());
  testing::RecordingMetrics metrics;
  TrainRunOptions options = Quiet();
  options.metrics = &metrics;
  EXPECT_TRUE(TrainJob(LoadJob(dir_ / "together.yaml"), options).failed_styles.empty());
  const std::vector<std::string> runs = {"style_layers=conv1_2+conv2_2,style_image_size=32",
                                         "style_layers=conv1_2+conv2_2,style_image_size=64",
                                         "style_layers=conv3_3,style_image_size=32",
                                         "style_layers=conv3_3,style_image_size=64"};
  std::vector<double> final_losses;
  for (const std::string& run : runs) {
    const auto apart = Metrics(dir_ / ("apart/s/" + run));
    const auto together = Metrics(dir_ / ("together/s/" + run));
    ASSERT_EQ(apart.size(), 3u) << run;
    ASSERT_EQ(together.size(), 3u) << run;
    for (size_t i = 0; i < 3; ++i) {
      const double x = apart[i]["total_loss"], y = together[i]["total_loss"];
      EXPECT_EQ(x, y) << run << " step " << i + 1;
    }
    // The run's own style layers, nothing else.
    const auto& layers = together.back()["style_loss_by_layer"];
    EXPECT_EQ(layers.size(), run.find("conv3_3") != std::string::npos ? 1u : 2u) << run;
    EXPECT_TRUE(layers.contains(run.find("conv3_3") != std::string::npos ? "conv3_3" : "conv1_2"));
    final_losses.push_back(together.back()["style_loss"]);
    // stylefleet.json names the sweep and the swept values in order.
    std::ifstream marker(dir_ / ("together/s/" + run + "/stylefleet.json"));
    const nlohmann::json owner = nlohmann::json::parse(marker);
    EXPECT_EQ(owner["style"], "s/" + run);
    EXPECT_EQ(owner["sweep"], "s");
    ASSERT_EQ(owner["swept"].size(), 2u);
    EXPECT_EQ(owner["swept"][0][0], "style_layers");
    EXPECT_EQ(owner["swept"][1][0], "style_image_size");
    EXPECT_EQ(owner["swept"][1][1], run.substr(run.size() - 2));
  }
  // The style image size reaches the Gram targets: the same layers give
  // another style loss with a 32 px style image than with a 64 px one.
  EXPECT_NE(final_losses[0], final_losses[1]);
  EXPECT_NE(final_losses[2], final_losses[3]);
  // Labels for dashboards: the sweep and each swept value.
  ASSERT_EQ(metrics.started.size(), 4u);
  EXPECT_EQ(metrics.started[1].style, "s/" + runs[1]);
  EXPECT_EQ(metrics.started[1].layers, (std::vector<std::string>{"conv1_2", "conv2_2"}));
  EXPECT_EQ(metrics.started[1].labels,
            (std::vector<std::pair<std::string, std::string>>{
                {"sweep", "s"}, {"style_layers", "conv1_2+conv2_2"}, {"style_image_size", "64"}}));
}

// --style selects sweep runs by pattern; a selected run resumes bitwise like a
// style; the runs of one sweep start from the same weights.
TEST_F(TrainTest, SweepRunsAreSelectedByPatternAndResumeBitwise) {
  auto job = [&](const std::string& output, int steps) {
    TrainTestJob(output)
        .Set("training", "max_steps", std::to_string(steps))
        .Set("training", "preview_every_steps", "0")
        .Set("checkpoint", "keep", "3")
        .Section("sweep: {grid: {style_weight: [10, 1000], tv_weight: [0, 5]}}")
        .Style("name: s, image: style.png")
        .Write(dir_ / "sweep.yaml");
    return LoadJob(dir_ / "sweep.yaml");
  };
  TrainRunOptions options = Quiet();
  options.only_styles = {"s/style_weight=1000,*"};
  TrainJob(job("straight", 4), options);
  EXPECT_FALSE(fs::exists(dir_ / "straight/s/style_weight=10,tv_weight=0"));
  EXPECT_TRUE(fs::exists(dir_ / "straight/s/style_weight=1000,tv_weight=0/model.pt"));
  EXPECT_TRUE(fs::exists(dir_ / "straight/s/style_weight=1000,tv_weight=5/model.pt"));
  TrainJob(job("resumed", 2), options);
  TrainJob(job("resumed", 4), options);
  for (const char* run : {"style_weight=1000,tv_weight=0", "style_weight=1000,tv_weight=5"}) {
    ExpectSameTensors(dir_ / ("straight/s/" + std::string(run) + "/model.pt"),
                      dir_ / ("resumed/s/" + std::string(run) + "/model.pt"));
  }
  // Same start: the first step's content loss (before any update) is the same in every run.
  const auto a = Metrics(dir_ / "straight/s/style_weight=1000,tv_weight=0");
  const auto b = Metrics(dir_ / "straight/s/style_weight=1000,tv_weight=5");
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(a[0]["content_loss"], b[0]["content_loss"]);
  // A pattern that selects nothing is an error naming it.
  options.only_styles = {"s/style_weight=7*"};
  try {
    TrainJob(job("none", 4), options);
    ADD_FAILURE() << "an empty selection trained";
  } catch (const ConfigError& e) {
    EXPECT_NE(e.problems().front().find("--style s/style_weight=7*: no style or sweep run"),
              std::string::npos)
        << e.problems().front();
    EXPECT_NE(e.problems().front().find("; its swept styles (all their runs): s"),
              std::string::npos)
        << e.problems().front();
  }
}

// Styles trained together share one loss-network pass over all their images,
// a larger batch than each style's alone. With LibTorch's direct convolutions
// (one thread, the BLAS pool at one thread) every image's result is computed
// the same way whatever else is in the batch, so the losses are equal to the
// bit at every step, on any x86-64 CPU. oneDNN's Winograd convolution may pick
// its blocking by batch (it does on AMD Zen 5), so there only the first step,
// before Adam turns rounding into whole steps, is compared, within 1e-5.
TEST_F(TrainTest, StylesTrainedTogetherMatchStylesTrainedApart) {
  SaveImageFile(testing::MakeTestImage(90, 90, 9), dir_ / "style2.png");
  auto job_text = [&](const std::string& output, int at_once, const std::string& convolution,
                      int steps) {
    return TrainTestJob(output)
        .Set("job", "styles_at_once", std::to_string(at_once))
        .Set("job", "convolution", convolution)
        .Set("training", "max_steps", std::to_string(steps))
        .Set("training", "preview_every_steps", "0")
        .Set("training", "max_bad_steps", "2")
        .Style("name: a, image: style.png")
        .Style("name: b, image: style2.png, style_weight: 50")
        .Style("name: c, image: style.png, batch_size: 4")
        .Text();
  };
  for (const auto& [convolution, steps] : {std::pair<std::string, size_t>{"direct", 4},
                                           std::pair<std::string, size_t>{"winograd", 1}}) {
    const std::string apart = "apart_" + convolution, together = "together_" + convolution;
    testing::WriteFile(dir_ / (apart + ".yaml"),
                       job_text(apart, 1, convolution, static_cast<int>(steps)));
    testing::WriteFile(dir_ / (together + ".yaml"),
                       job_text(together, 3, convolution, static_cast<int>(steps)));
    EXPECT_TRUE(TrainJob(LoadJob(dir_ / (apart + ".yaml")), Quiet()).failed_styles.empty());
    EXPECT_TRUE(TrainJob(LoadJob(dir_ / (together + ".yaml")), Quiet()).failed_styles.empty());
    for (const std::string style : {"a", "b", "c"}) {
      const auto alone = Metrics(dir_ / (apart + "/" + style));
      const auto shared = Metrics(dir_ / (together + "/" + style));
      ASSERT_EQ(alone.size(), steps) << style;
      ASSERT_EQ(shared.size(), steps) << style;
      for (size_t i = 0; i < steps; ++i) {
        const double x = alone[i]["total_loss"], y = shared[i]["total_loss"];
        if (convolution == "direct") {
          EXPECT_EQ(x, y) << style << " step " << i + 1 << ", " << convolution;
        } else {
          EXPECT_LT(std::abs(x - y), 1e-5 * std::abs(x)) << style << " step " << i + 1;
        }
      }
      EXPECT_TRUE(fs::exists(dir_ / (together + "/" + style + "/model.pt"))) << style;
    }
  }

  TrainRunOptions faulty = Quiet();
  faulty.inject_faults = {"a:1:inf-loss", "a:2:nan-gradient"};
  testing::WriteFile(dir_ / "faulty.yaml", job_text("faulty", 2, "winograd", 4));
  const TrainOutcome outcome = TrainJob(LoadJob(dir_ / "faulty.yaml"), faulty);
  EXPECT_EQ(outcome.failed_styles, std::vector<std::string>{"a"});
  EXPECT_FALSE(fs::exists(dir_ / "faulty/a/model.pt"));
  EXPECT_TRUE(fs::exists(dir_ / "faulty/b/model.pt"));
  EXPECT_EQ(Metrics(dir_ / "faulty/b").size(), 4u);
}

// A conditional network of three styles (job.network): `styles` are the
// style entries' names in job order (images style.png, style2.png, style3.png
// by name), on `base_model` when not empty.
JobConfig ConditionalJob(const TempDir& dir, const std::string& output,
                         const std::vector<std::string>& styles, const std::string& base_model = "",
                         std::vector<std::string> overrides = {}) {
  for (int i = 2; i <= 3; ++i) {
    const std::string path = dir / ("style" + std::to_string(i) + ".png");
    if (!fs::exists(path)) SaveImageFile(testing::MakeTestImage(90, 90, 10 + i), path);
  }
  testing::JobText job = TrainTestJob(output)
                             .Set("job", "name", "c")
                             .Set("job", "network", "conditional")
                             .Set("job", "base_model", base_model);
  const std::map<std::string, std::string> images = {
      {"a", "style.png"}, {"b", "style2.png"}, {"c", "style3.png"}};
  for (const std::string& name : styles) {
    job.Style("name: " + name + ", image: " + images.at(name) +
              (name == "b" ? ", style_weight: 300" : ""));
  }
  job.Write(dir / (output + ".yaml"));
  LoadOptions options;
  options.overrides = std::move(overrides);
  return LoadJob(dir / (output + ".yaml"), options);
}

// Each rank keeps the decoded style images of its own group's runs only; a
// conditional network's one group keeps every style's.
TEST_F(TrainTest, EachRankKeepsTheStyleImagesOfItsOwnGroup) {
  JobConfig job = ConditionalJob(dir_, "kept", {"a", "b", "c"});
  job.network = "per_style";
  job.distributed.ranks_per_style = 1;
  const auto images_of_rank = [&](const JobConfig& planned, int rank) {
    TrainPlan plan;
    plan.job = planned;
    plan.runs = SelectRuns(plan.job, {});
    plan.schedule = PlanStyles(static_cast<int>(plan.runs.size()), 3, RanksPerRun(plan.job));
    EXPECT_TRUE(DecodeStyleImages(&plan).empty());
    EXPECT_EQ(plan.style_images.size(), 3u);
    plan.KeepStyleImagesOfRank(rank);
    std::set<std::string> kept;
    for (const auto& [key, image] : plan.style_images) kept.insert(fs::path(key.first).filename());
    return kept;
  };
  EXPECT_EQ(images_of_rank(job, 0), std::set<std::string>{"style.png"});
  EXPECT_EQ(images_of_rank(job, 2), std::set<std::string>{"style3.png"});
  job.network = "conditional";
  EXPECT_EQ(images_of_rank(job, 1),
            (std::set<std::string>{"style.png", "style2.png", "style3.png"}));
}

// One network learns three styles from batches of two images (so a step holds
// two of them): each style reports its own losses (metrics, metrics.jsonl,
// previews, final images in its folder), the model lists the styles, and a
// stopped run resumes bit for bit.
TEST_F(TrainTest, ConditionalNetworkTrainsItsStylesAndResumesBitwise) {
  testing::RecordingMetrics metrics;
  TrainRunOptions options = Quiet();
  options.metrics = &metrics;
  TrainJob(ConditionalJob(dir_, "straight", {"a", "b", "c"}), options);
  TrainJob(ConditionalJob(dir_, "resumed", {"a", "b", "c"}, "", {"training.max_steps=2"}), Quiet());
  ASSERT_EQ(ListCheckpoints(dir_ / "resumed/conditional").size(), 1u);
  TrainJob(ConditionalJob(dir_, "resumed", {"a", "b", "c"}), Quiet());
  ExpectSameTensors(dir_ / "straight/conditional/model.pt", dir_ / "resumed/conditional/model.pt");
  EXPECT_EQ(LoadModel(dir_ / "straight/conditional").styles,
            (std::vector<std::string>{"a", "b", "c"}));
  // 8 images over 4 steps: each style had images in at least two steps.
  int64_t images = 0;
  for (const std::string style : {"a", "b", "c"}) {
    const std::string folder = dir_ / ("straight/" + style);
    const auto records = Metrics(folder);
    EXPECT_GE(records.size(), 2u) << style;
    for (size_t i = 1; i < records.size(); ++i)
      EXPECT_GT(records[i]["step"], records[i - 1]["step"]) << style;
    EXPECT_GE(metrics.steps[style].size(), 2u) << style;
    EXPECT_TRUE(fs::exists(folder + "/previews/step-00000004.png")) << style;
    EXPECT_TRUE(fs::exists(folder + "/final/01-0000.png")) << style;
    for (const auto& r : records) images += r["images"].get<int64_t>();
  }
  EXPECT_EQ(images, 8);  // every image of the 4 steps counted once, in its style's records
  // The network's preview: the photos, then one row per style.
  const RgbImage preview = LoadImageFile(dir_ / "straight/conditional/previews/step-00000004.png");
  EXPECT_EQ(preview.height, 64 * 4);
  // --style cannot pick among the styles of one network.
  TrainRunOptions only_one = Quiet();
  only_one.only_styles = {"a"};
  EXPECT_THROW(TrainJob(ConditionalJob(dir_, "straight", {"a", "b", "c"}), only_one), ConfigError);
}

// An arbitrary-style network (issue 34) trains on three style images as the
// conditional network trains on its styles: each style's folder gets its
// records, previews and final images (made with the norms predicted from its
// image), the model holds the predictor and loads as an arbitrary-style
// network, and a stopped run resumes bit for bit.
TEST_F(TrainTest, ArbitraryNetworkTrainsItsPredictorAndResumesBitwise) {
  const auto arbitrary = [](std::vector<std::string> more) {
    for (const char* o :
         {"job.network=arbitrary", "styles.b.style_weight=100", "job.predictor_embedding_size=8",
          "job.predictor_layers=[conv1_2, conv2_2]"})
      more.push_back(o);
    return more;
  };
  const std::vector<std::string> styles = {"a", "b", "c"};
  TrainJob(ConditionalJob(dir_, "straight", styles, "", arbitrary({})), Quiet());
  TrainJob(ConditionalJob(dir_, "resumed", styles, "", arbitrary({"training.max_steps=2"})),
           Quiet());
  ASSERT_EQ(ListCheckpoints(dir_ / "resumed/arbitrary").size(), 1u);
  TrainJob(ConditionalJob(dir_, "resumed", styles, "", arbitrary({})), Quiet());
  ExpectSameTensors(dir_ / "straight/arbitrary/model.pt", dir_ / "resumed/arbitrary/model.pt");

  LoadedModel model = LoadModel(dir_ / "straight/arbitrary");
  ASSERT_TRUE(model.net->predicts_norms());
  EXPECT_TRUE(model.styles.empty());  // no rows to choose by name
  EXPECT_EQ(model.trained_styles, styles);
  EXPECT_EQ(model.net->predicted_norms().embedding_size, 8);
  EXPECT_EQ(model.net->predicted_norms().summary_layers, (std::vector<int>{1, 3}));
  EXPECT_EQ(model.style_image_size, 64);
  EXPECT_EQ(model.loss_network.rfind("random:", 0), 0u) << model.loss_network;
  // The predictor learned: its map to the norms starts at 0.
  EXPECT_GT(model.net->named_parameters()["predictor.to_norms.weight"].abs().max().item<double>(),
            0);
  int64_t images = 0;
  std::vector<RgbImage> finals;
  for (const std::string& style : styles) {
    const std::string folder = dir_ / ("straight/" + style);
    const auto records = Metrics(folder);
    EXPECT_GE(records.size(), 2u) << style;
    for (const auto& r : records) images += r["images"].get<int64_t>();
    EXPECT_TRUE(fs::exists(folder + "/previews/step-00000004.png")) << style;
    finals.push_back(LoadImageFile(folder + "/final/01-0000.png"));
  }
  EXPECT_EQ(images, 8);
  // Each style image gets its own norms: the final images differ.
  EXPECT_NE(finals[0].pixels, finals[1].pixels);
  EXPECT_NE(finals[1].pixels, finals[2].pixels);
  // The network's folder is not the conditional one's.
  EXPECT_FALSE(fs::exists(dir_ / "straight/conditional"));
  // The same job as a conditional network would start over in its own
  // folder and replace each style's records: refused, nothing lost (and
  // the reverse, as the owner file names the kind).
  const size_t lines = Metrics(dir_ / "straight/a").size();
  try {
    TrainJob(ConditionalJob(dir_, "straight", styles), Quiet());
    ADD_FAILURE() << "a conditional network trained over an arbitrary network's styles";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("holds the records of an arbitrary network's style"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(Metrics(dir_ / "straight/a").size(), lines);
  TrainJob(ConditionalJob(dir_, "other", styles, "", {"training.max_steps=1"}), Quiet());
  EXPECT_THROW(TrainJob(ConditionalJob(dir_, "other", styles, "", arbitrary({})), Quiet()),
               std::exception);
  // The predictor reads its summary by position: the same layers in another
  // order are refused on resume even when changed settings are allowed.
  TrainRunOptions allowed = Quiet();
  allowed.allow_changed_settings = true;
  TrainJob(ConditionalJob(dir_, "reordered", styles, "", arbitrary({"training.max_steps=2"})),
           Quiet());
  std::vector<std::string> reordered = arbitrary({});
  reordered.push_back("job.predictor_layers=[conv2_2, conv1_2]");
  try {
    TrainJob(ConditionalJob(dir_, "reordered", styles, "", reordered), allowed);
    ADD_FAILURE() << "resumed with the predictor's layers in another order";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("its style predictor reads job.predictor_layers "
                                         "[conv1_2, conv2_2], the job's are [conv2_2, conv1_2]"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(ListCheckpoints(dir_ / "reordered/arbitrary").size(), 1u);  // step 2's alone
  // Pointing at the wrong thing says where to look: a style's folder names
  // the network's; an arbitrary model is no base for added styles.
  try {
    LoadModel(dir_ / "straight/a");
    ADD_FAILURE() << "a style's folder loaded as a model";
  } catch (const DataError& e) {
    const std::string network = dir_ / "straight/arbitrary";
    EXPECT_NE(std::string(e.what()).find("; if it is a style of the arbitrary-style network in " +
                                         network +
                                         ", give that folder and a style image: "
                                         "--model " +
                                         network + " --style-image PATH"),
              std::string::npos)
        << e.what();
  }
  const std::vector<std::string> base_problems =
      PreflightProblems(ConditionalJob(dir_, "added", {"a"}, dir_ / "straight/arbitrary/model.pt"),
                        PreflightOptions{});
  ASSERT_FALSE(base_problems.empty());
  EXPECT_NE(base_problems.front().find("is an arbitrary-style network; styles can be added only "
                                       "to a conditional network"),
            std::string::npos)
      << base_problems.front();
}

// job.base_model for an arbitrary-style network (issue 34 item 4): a trained
// conditional network's convolutions start it, and job.distill_steps fits
// the new predictor so that each style both have gets the base's row from its
// style image (the mean squared difference falls a hundredfold and more;
// style c, not in the base, takes no part). A learning rate of 1e-30 keeps the one
// training step from moving the weights, so the model files show the start.
// A base of another kind, or distill_steps without a style in common, is
// refused before training.
TEST_F(TrainTest, ArbitraryNetworkStartsFromAConditionalNetworkAndFitsItsRows) {
  TrainJob(ConditionalJob(dir_, "base", {"a", "b"}, "", {"training.learning_rate=0.05"}), Quiet());
  const std::string base_dir = dir_ / "base/conditional";
  LoadedModel base = LoadModel(base_dir);
  const auto overrides = [](int distill_steps) {
    return std::vector<std::string>{"job.network=arbitrary",
                                    "styles.b.style_weight=100",
                                    "job.predictor_embedding_size=8",
                                    "job.predictor_layers=[conv1_2, conv2_2]",
                                    "training.max_steps=1",
                                    "training.learning_rate=1e-30",
                                    "job.distill_steps=" + std::to_string(distill_steps)};
  };
  const auto seeded = [&](const std::string& output, int distill_steps) {
    TrainJob(ConditionalJob(dir_, output, {"a", "b", "c"}, base_dir, overrides(distill_steps)),
             Quiet());
    return LoadModel(dir_ / (output + "/arbitrary"));
  };
  LoadedModel plain = seeded("plain", 0);
  LoadedModel fitted = seeded("fitted", 2000);
  const auto base_parameters = base.net->named_parameters();
  for (const auto& item : fitted.net->named_parameters()) {
    if (item.key().rfind("predictor.", 0) == 0) continue;
    const torch::Tensor* from = base_parameters.find(item.key());
    ASSERT_NE(from, nullptr) << item.key();
    EXPECT_TRUE(torch::allclose(item.value(), *from, 0, 1e-6)) << item.key();
  }
  const Vgg16 vgg = Vgg16::Load(fitted.loss_network);
  const auto difference = [&](LoadedModel& model, const std::string& image, int64_t row) {
    torch::NoGradGuard no_grad;
    const torch::Tensor summary =
        StyleImageSummary(vgg,
                          ImageToTensor(ResizeCenterCrop(LoadImageFile(dir_ / image),
                                                         static_cast<int>(model.style_image_size))),
                          model.net->predicted_norms().summary_layers);
    return (model.net->predictor()->forward(summary)[0] - ConditionalRowNorms(base.net, row))
        .pow(2)
        .mean()
        .item<double>();
  };
  for (const auto& [image, row] :
       std::vector<std::pair<std::string, int64_t>>{{"style.png", 0}, {"style2.png", 1}}) {
    const double before = difference(plain, image, row), after = difference(fitted, image, row);
    EXPECT_GT(before, 1e-4) << image << ": the base's rows moved too little to show a fit";
    EXPECT_LT(after, before / 100) << image;
    // Its own row, not the other style's (the rows differ by more than the fit).
    EXPECT_LT(after * 100, difference(fitted, image, 1 - row)) << image;
  }
  // Refused before training, naming what to change.
  const std::vector<std::string> other_kind = PreflightProblems(
      ConditionalJob(dir_, "again", {"a", "b"}, dir_ / "fitted/arbitrary/model.pt", overrides(0)),
      PreflightOptions{});
  ASSERT_FALSE(other_kind.empty());
  EXPECT_NE(other_kind.front().find("is an arbitrary-style network; an arbitrary-style network "
                                    "starts from a conditional network's convolutions"),
            std::string::npos)
      << other_kind.front();
  const JobConfig distilling = ConditionalJob(dir_, "none", {"a", "b"}, base_dir, overrides(5));
  EXPECT_EQ(BaseModelStyleProblems(distilling, "base.pt", {"x", "y"}, false),
            (std::vector<std::string>{
                "job.distill_steps: none of the job's styles (a, b) is a style of "
                "job.base_model base.pt (x, y); the predictor is fitted to the rows of the "
                "styles both have (same names)"}));
  EXPECT_TRUE(BaseModelStyleProblems(distilling, "base.pt", {"y", "b"}, false).empty());
}

// Writes a folder DIR/held of two style images (x and y) and returns the
// settings of a 2-style arbitrary job that holds them out and previews every
// 3 steps.
std::vector<std::string> HeldOutStylesJob(const std::string& dir) {
  SaveImageFile(testing::MakeTestImage(70, 64, 41), dir + "/held/x.png");
  SaveImageFile(testing::MakeTestImage(48, 80, 42), dir + "/held/y.png");
  return {"job.network=arbitrary", "job.predictor_embedding_size=8", "styles.b.style_weight=100",
          "job.held_out_styles=[" + dir + "/held]", "training.preview_every_steps=3"};
}

// An arbitrary network's held-out styles (job.held_out_styles; here a folder
// of two images it never trains on) are measured at preview steps and at the
// end: each line holds every image's losses and their mean, and the last
// equals the final model's losses computed apart (its predicted norms fixed
// into a per-style network, through the per-style loss path).
TEST_F(TrainTest, ArbitraryNetworkMeasuresItsHeldOutStyles) {
  const std::vector<std::string> overrides = HeldOutStylesJob(dir_.path());
  const JobConfig job = ConditionalJob(dir_, "straight", {"a", "b"}, "", overrides);
  TrainJob(job, Quiet());
  const auto records = Metrics(dir_ / "straight/arbitrary", "held_out.jsonl");
  ASSERT_EQ(records.size(), 2u);  // step 3 (a preview) and the last, 4
  EXPECT_EQ(records[0]["step"], 3);
  EXPECT_EQ(records[1]["step"], 4);
  for (const auto& r : records) {
    ASSERT_EQ(r["styles"].size(), 2u) << r;
    for (const char* key : {"content_loss", "style_loss", "tv_loss", "total_loss"}) {
      const double x = r["styles"]["x"][key], y = r["styles"]["y"][key];
      EXPECT_TRUE(std::isfinite(x) && x > 0) << r;
      EXPECT_NEAR(r[key].get<double>(), (x + y) / 2, 1e-9 * std::abs(x + y)) << r;
    }
    EXPECT_NE(r["styles"]["x"]["style_loss"], r["styles"]["y"]["style_loss"]) << r;
  }
  // The last line's second image, computed apart from the model file.
  LoadedModel model = LoadModel(dir_ / "straight/arbitrary");
  const Vgg16 vgg = Vgg16::Load(model.loss_network);
  const StyleSpec& style = job.styles.front();
  const auto layers = VggLayerIndices(style.training.style_layers);
  const torch::Tensor held = ImageToTensor(
      ResizeCenterCrop(LoadImageFile(dir_ / "held/y.png"), style.training.style_image_size));
  const std::vector<torch::Tensor> grams = StyleGrams(vgg, held, layers, Precision::kFp32);
  std::vector<torch::Tensor> photos;
  const std::vector<std::string> files = ListImageFiles(job.data.content_dir);
  for (size_t i = 0; i < 4; ++i) {
    photos.push_back(ImageToTensor(ResizeCenterCrop(LoadImageFile(files[i]), job.data.image_size)));
  }
  {
    torch::NoGradGuard no_grad;
    TransformerNet y = FixedNormsTransformer(
        model.net, model.net->predictor()->forward(StyleImageSummary(
                       vgg, held, model.net->predicted_norms().summary_layers))[0]);
    LossNetworkUse use;
    use.content_layers = VggLayerIndices(job.loss_network.content_layers);
    use.style_layers = layers;
    const TrainingOptions& t = style.training;
    const LossTerms apart = ForwardStyleLosses(
        {&y}, vgg, torch::cat(photos),
        {StyleLossTarget{&grams, LossWeights{t.content_weight, t.style_weight, t.tv_weight}}}, use,
        nullptr)[0];
    const auto& recorded = records[1]["styles"]["y"];
    EXPECT_NEAR(recorded["style_loss"].get<double>(), apart.style.item<double>(),
                1e-4 * apart.style.item<double>());
    EXPECT_NEAR(recorded["total_loss"].get<double>(), apart.total.item<double>(),
                1e-4 * apart.total.item<double>());
  }
}

// A resume rewrites the held-out lines past its checkpoint, as for
// metrics.jsonl; with previews off the last step is still measured. (Apart
// from the test above because the sanitizer stage leaves whole-run
// comparisons out.)
TEST_F(TrainTest, HeldOutStyleLinesAreTheSameAfterAResumeAndWrittenWithoutPreviews) {
  const std::vector<std::string> overrides = HeldOutStylesJob(dir_.path());
  TrainJob(ConditionalJob(dir_, "straight", {"a", "b"}, "", overrides), Quiet());
  const auto records = Metrics(dir_ / "straight/arbitrary", "held_out.jsonl");
  ASSERT_EQ(records.size(), 2u);
  // Resumed from step 2: the lines are the straight run's.
  TrainJob(ConditionalJob(dir_, "resumed", {"a", "b"}, "", overrides), Quiet());
  fs::remove(CheckpointPath(dir_ / "resumed/arbitrary", 4));
  TrainJob(ConditionalJob(dir_, "resumed", {"a", "b"}, "", overrides), Quiet());
  const auto resumed = Metrics(dir_ / "resumed/arbitrary", "held_out.jsonl");
  EXPECT_EQ(resumed, records);
  // Without previews, the last step is still measured.
  std::vector<std::string> no_previews = overrides;
  no_previews.push_back("training.preview_every_steps=0");
  no_previews.push_back("training.max_steps=2");
  TrainJob(ConditionalJob(dir_, "at_end", {"a", "b"}, "", no_previews), Quiet());
  const auto at_end = Metrics(dir_ / "at_end/arbitrary", "held_out.jsonl");
  ASSERT_EQ(at_end.size(), 1u);
  EXPECT_EQ(at_end[0]["step"], 2);
}

// A conditional network's metrics line is the mean over its style's images
// since the previous line: a run stopped after a checkpoint between two lines
// resumes with the sums of the steps before it (a trial's resumed lines
// covered only the steps since the resume).
TEST_F(TrainTest, ConditionalMetricsLinesAreTheSameAfterAResume) {
  const std::vector<std::string> every_3 = {"training.log_every_steps=3"};
  TrainJob(ConditionalJob(dir_, "straight", {"a", "b", "c"}, "", every_3), Quiet());
  // As if killed after the checkpoint of step 2: the resume trains steps 3-4
  // again and rewrites their lines.
  TrainJob(ConditionalJob(dir_, "resumed", {"a", "b", "c"}, "", every_3), Quiet());
  fs::remove(CheckpointPath(dir_ / "resumed/conditional", 4));
  TrainJob(ConditionalJob(dir_, "resumed", {"a", "b", "c"}, "", every_3), Quiet());
  for (const std::string style : {"a", "b", "c"}) {
    const auto straight = Metrics(dir_ / ("straight/" + style));
    const auto resumed = Metrics(dir_ / ("resumed/" + style));
    ASSERT_EQ(straight.size(), resumed.size()) << style;
    for (size_t i = 0; i < straight.size(); ++i) {
      for (const char* key : {"step", "images", "total_loss", "style_loss", "content_loss"}) {
        EXPECT_EQ(straight[i][key], resumed[i][key]) << style << " line " << i << " " << key;
      }
    }
  }
}

// A conditional job maps each style to its own Gram targets (from its own
// image at its own style_image_size) and its own weights. Three copies of one
// square photo make every image the same, and the network's rows start equal,
// so at step 1 each style of a 3-style job (one image each) must record what
// a 1-style job of that style alone records; a style given another style's
// targets or weights does not.
TEST_F(TrainTest, EachConditionalStyleTrainsOnItsOwnTargetsAndWeights) {
  const RgbImage photo = testing::MakeTestImage(64, 64, 7);
  fs::create_directories(dir_ / "same");
  for (int i = 0; i < 3; ++i) SaveImageFile(photo, dir_ / ("same/" + std::to_string(i) + ".png"));
  for (int i = 2; i <= 3; ++i) {
    SaveImageFile(testing::MakeTestImage(90, 90, 10 + i),
                  dir_ / ("style" + std::to_string(i) + ".png"));
  }
  const std::map<std::string, std::string> entries = {
      {"a", "name: a, image: style.png, style_weight: 40, tv_weight: 2000"},
      {"b", "name: b, image: style2.png, style_weight: 300, tv_weight: 100, style_image_size: 48"},
      {"c", "name: c, image: style3.png, style_weight: 5, tv_weight: 30000, style_image_size: 80"}};
  auto job = [&](const std::string& output, const std::vector<std::string>& styles, int batch) {
    testing::JobText text = TrainTestJob(output)
                                .Set("job", "name", "c")
                                .Set("job", "network", "conditional")
                                .Set("job", "convolution", "direct")
                                .Set("data", "content_dir", "same")
                                .Set("training", "batch_size", std::to_string(batch))
                                .Set("training", "max_steps", "1")
                                .Set("training", "preview_every_steps", "0")
                                .Set("checkpoint", "every_steps", "")
                                .Set("checkpoint", "keep", "");
    for (const std::string& name : styles) text.Style(entries.at(name));
    text.Write(dir_ / (output + ".yaml"));
    return LoadJob(dir_ / (output + ".yaml"), LoadOptions{});
  };
  TrainJob(job("together", {"a", "b", "c"}, 3), Quiet());
  std::map<std::string, double> totals;
  for (const std::string style : {"a", "b", "c"}) {
    TrainJob(job("alone_" + style, {style}, 1), Quiet());
    const auto together = Metrics(dir_ / ("together/" + style));
    const auto alone = Metrics(dir_ / ("alone_" + style + "/" + style));
    ASSERT_EQ(together.size(), 1u) << style;
    ASSERT_EQ(alone.size(), 1u) << style;
    EXPECT_EQ(together[0]["images"], 1) << style;
    for (const char* key : {"content_loss", "style_loss", "tv_loss", "total_loss"}) {
      const double x = together[0][key], y = alone[0][key];
      EXPECT_NEAR(x, y, 1e-5 * std::abs(y)) << style << " " << key;
    }
    totals[style] = alone[0]["total_loss"];
  }
  // The styles' values differ, so a style given another's would be seen.
  EXPECT_NE(totals["a"], totals["b"]);
  EXPECT_NE(totals["b"], totals["c"]);
  EXPECT_NE(totals["a"], totals["c"]);
}

// The same job switched from per-style to conditional networks writes each
// style's metrics, previews and final images into the per-style run's folder:
// refused before training (check and train), that run's records kept.
TEST_F(TrainTest, AConditionalNetworkNeverWritesOverAPerStyleRunsFolder) {
  TrainJob(Job("out", {"training.max_steps=1"}), Quiet());
  const std::string style_dir = dir_ / "out/style";
  const auto before = Metrics(style_dir);
  ASSERT_EQ(before.size(), 1u);
  const JobConfig conditional = Job("out", {"training.max_steps=1", "job.network=conditional"});
  PreflightOptions options;
  const std::vector<std::string> problems = PreflightProblems(conditional, options);
  ASSERT_EQ(problems.size(), 1u) << (problems.empty() ? "" : problems.front());
  EXPECT_NE(problems[0].find(style_dir + ": holds a per-style network's model.pt"),
            std::string::npos)
      << problems[0];
  try {
    TrainJob(conditional, Quiet());
    ADD_FAILURE() << "a conditional network trained into a per-style run's folder";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("holds a per-style network's model.pt"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(Metrics(style_dir), before);
  EXPECT_FALSE(fs::exists(dir_ / "out/conditional"));
  // A per-style run stopped before its first checkpoint left settings.json.
  fs::remove(fs::path(style_dir) / "model.pt");
  fs::remove_all(fs::path(style_dir) / "checkpoints");
  const std::vector<std::string> early = PreflightProblems(conditional, options);
  ASSERT_EQ(early.size(), 1u);
  EXPECT_NE(early[0].find("holds a per-style network's settings.json"), std::string::npos)
      << early[0];
  // The reverse: a conditional network's style folder is not a per-style run's.
  TrainJob(Job("rev", {"training.max_steps=1", "job.network=conditional"}), Quiet());
  const auto conditional_records = Metrics(dir_ / "rev/style");
  ASSERT_EQ(conditional_records.size(), 1u);
  const JobConfig per_style = Job("rev", {"training.max_steps=1"});
  const std::vector<std::string> reverse = PreflightProblems(per_style, options);
  ASSERT_EQ(reverse.size(), 1u) << (reverse.empty() ? "" : reverse.front());
  EXPECT_NE(reverse[0].find("holds the records of a conditional network's style"),
            std::string::npos)
      << reverse[0];
  EXPECT_THROW(TrainJob(per_style, Quiet()), std::exception);
  EXPECT_EQ(Metrics(dir_ / "rev/style"), conditional_records);
}

// The equivalence of ranks and micro-batches holds for a conditional
// network: each image keeps its style wherever it is trained.
TEST_F(TrainTest, ConditionalTwoInProcessRanksEqualOneProcessWithMicroBatches) {
  const JobConfig parallel = ConditionalJob(dir_, "parallel", {"a", "b", "c"});
  EXPECT_EQ(TrainOnLocalRanks({parallel, parallel}, Quiet()), (std::vector<std::string>{"", ""}));
  TrainJob(ConditionalJob(dir_, "single", {"a", "b", "c"}, "",
                          {"training.batch_size=4", "training.micro_batches=2"}),
           Quiet());
  ExpectSameTensors(dir_ / "parallel/conditional/model.pt", dir_ / "single/conditional/model.pt");
  for (const std::string style : {"a", "b", "c"}) {
    const auto p = Metrics(dir_ / ("parallel/" + style)), q = Metrics(dir_ / ("single/" + style));
    ASSERT_EQ(p.size(), q.size()) << style;
    for (size_t i = 0; i < p.size(); ++i) {
      const double x = p[i]["total_loss"], y = q[i]["total_loss"];
      EXPECT_LT(std::abs(x - y), 1e-6 * std::abs(y)) << style << " record " << i;
    }
  }
}

// A style added to a trained network (job.base_model) trains only its own
// rows: the shared convolutions and the other styles' rows stay bit-identical,
// and so do those styles' stylizations.
TEST_F(TrainTest, AStyleAddedToATrainedNetworkLeavesTheOthersBitIdentical) {
  TrainJob(ConditionalJob(dir_, "base", {"a", "b"}), Quiet());
  const std::string base_model = dir_ / "base/conditional/model.pt";
  TrainJob(ConditionalJob(dir_, "added", {"c"}, base_model), Quiet());
  LoadedModel base = LoadModel(base_model);
  LoadedModel added = LoadModel(dir_ / "added/conditional");
  EXPECT_EQ(added.styles, (std::vector<std::string>{"a", "b", "c"}));
  const auto base_params = base.net->named_parameters();
  bool new_rows_trained = false;
  for (const auto& item : added.net->named_parameters()) {
    const torch::Tensor& before = base_params[item.key()];
    if (!IsStyleRowParameter(item.key())) {
      EXPECT_TRUE(torch::equal(item.value(), before)) << item.key();
      continue;
    }
    EXPECT_TRUE(torch::equal(item.value().narrow(0, 0, 2), before)) << item.key();
    new_rows_trained = new_rows_trained || !torch::equal(item.value()[2], before.mean(0));
  }
  EXPECT_TRUE(new_rows_trained);
  torch::NoGradGuard no_grad;
  const torch::Tensor photo = torch::rand({1, 3, 32, 32}) * 255;
  for (int64_t s = 0; s < 2; ++s) {
    torch::Tensor old_weights = torch::zeros({2}), new_weights = torch::zeros({3});
    old_weights[s] = 1.0;
    new_weights[s] = 1.0;
    EXPECT_TRUE(torch::equal(BlendedTransformer(added.net, new_weights)->forward(photo),
                             BlendedTransformer(base.net, old_weights)->forward(photo)))
        << s;
  }
  // A name the base already holds is refused, as is a per-style base.
  EXPECT_THROW(TrainJob(ConditionalJob(dir_, "again", {"a"}, base_model), Quiet()), ConfigError);
  // ... and found by the preflight (`check` too), not only once training starts.
  auto preflight = [&](const std::string& base) {
    const std::vector<std::string> problems =
        PreflightProblems(ConditionalJob(dir_, "again", {"a"}, base), PreflightOptions{});
    return problems.empty() ? std::string() : problems.front();
  };
  EXPECT_NE(
      preflight(base_model)
          .find("style 'a': job.base_model " + base_model + " already holds a style of this name"),
      std::string::npos)
      << preflight(base_model);
  EXPECT_NE(preflight(dir_ / "base/a")
                .find("job.base_model: " + (dir_ / "base/a") + ": folder holds neither model.pt"),
            std::string::npos)
      << preflight(dir_ / "base/a");
}

// A network's rows belong to its styles in order: resuming with the styles
// listed in another order (or others) is refused, naming both lists.
TEST_F(TrainTest, AConditionalNetworkWhoseStylesChangedIsNotResumed) {
  TrainJob(ConditionalJob(dir_, "run", {"a", "b", "c"}, "", {"training.max_steps=2"}), Quiet());
  // `check` (the preflight) says so, before train claims a folder for a style
  // added to the list (a trial's check passed such a job, train refused it).
  const std::vector<std::string> problems =
      PreflightProblems(ConditionalJob(dir_, "run", {"a", "b"}), PreflightOptions{});
  ASSERT_EQ(problems.size(), 1u) << ::testing::PrintToString(problems);
  EXPECT_NE(problems[0].find(CheckpointPath(dir_ / "run/conditional", 2) +
                             ": this checkpoint's network holds the styles [a, b, c], the job's "
                             "[a, b]"),
            std::string::npos)
      << problems[0];
  EXPECT_TRUE(
      PreflightProblems(ConditionalJob(dir_, "run", {"a", "b", "c"}), PreflightOptions{}).empty());
  try {
    TrainJob(ConditionalJob(dir_, "run", {"b", "a", "c"}), Quiet());
    FAIL() << "a reordered network resumed";
  } catch (const ConfigError& e) {
    EXPECT_NE(e.problems().front().find("holds the styles [a, b, c], the job's [b, a, c]"),
              std::string::npos)
        << e.problems().front();
  }
}

// Every kind of non-finite step reaches the trainer's guard: each is skipped
// (the weights stay finite), counted for the metrics and marked in
// metrics.jsonl; healthy steps between them reset the count, so the style
// trains to the end; training.max_bad_steps faults in a row stop it (the
// job's other styles would go on), keeping its checkpoints and writing no model.
TEST_F(TrainTest, NonFiniteStepsAreSkippedCountedAndStopAStyleWhenInARow) {
  testing::RecordingMetrics metrics;
  TrainRunOptions options = Quiet();
  options.metrics = &metrics;
  options.inject_faults = {"style:1:nan-loss", "style:3:inf-loss", "style:5:nan-gradient",
                           "style:7:inf-gradient"};
  const std::vector<std::string> settings = {"training.max_steps=8", "training.max_bad_steps=2",
                                             "training.preview_every_steps=0"};
  EXPECT_TRUE(TrainJob(Job("apart", settings), options).failed_styles.empty());
  EXPECT_EQ(metrics.bad_steps["style"], 4);
  const auto records = Metrics(dir_ / "apart/style");
  ASSERT_EQ(records.size(), 8u);
  // NaN and Inf totals are written as null; a gradient fault leaves the loss finite.
  EXPECT_TRUE(records[0]["total_loss"].is_null()) << records[0].dump();
  EXPECT_TRUE(records[2]["total_loss"].is_null()) << records[2].dump();
  EXPECT_TRUE(records[4]["total_loss"].is_number()) << records[4].dump();
  for (const auto& [name, tensor] : Params(dir_ / "apart/style/model.pt")) {
    EXPECT_TRUE(torch::isfinite(tensor).all().item<bool>()) << name;
  }

  testing::RecordingMetrics in_a_row;
  options.metrics = &in_a_row;
  options.inject_faults = {"style:3:inf-gradient", "style:4:inf-loss"};
  const TrainOutcome outcome = TrainJob(Job("in_a_row", settings), options);
  EXPECT_EQ(outcome.failed_styles, std::vector<std::string>{"style"});
  EXPECT_EQ(in_a_row.bad_steps["style"], 2);
  EXPECT_EQ(in_a_row.steps["style"].back(), 4);
  EXPECT_FALSE(fs::exists(dir_ / "in_a_row/style/model.pt"));
  EXPECT_TRUE(fs::exists(CheckpointPath(dir_ / "in_a_row/style", 2)));
}

// A run that reaches its last step without one good step learned nothing: it
// fails and writes no model, even when max_steps is below max_bad_steps (it
// wrote the initial weights as model.pt, exit 0). One good step is enough.
TEST_F(TrainTest, ARunWithoutOneGoodStepWritesNoModel) {
  TrainRunOptions faulty = Quiet();
  faulty.inject_faults = {"style:1:nan-loss", "style:2:inf-gradient"};
  const std::vector<std::string> settings = {"training.max_steps=2", "training.max_bad_steps=5"};
  EXPECT_EQ(TrainJob(Job("none", settings), faulty).failed_styles,
            std::vector<std::string>{"style"});
  EXPECT_FALSE(fs::exists(dir_ / "none/style/model.pt"));
  faulty.inject_faults = {"style:1:nan-loss"};
  EXPECT_TRUE(TrainJob(Job("one", settings), faulty).failed_styles.empty());
  EXPECT_TRUE(fs::exists(dir_ / "one/style/model.pt"));
}

// A run whose model still writes nearly uniform images of photos that are
// not says so at the end, with what to change (an old seed file's short run
// at learning rate 0.001 wrote dark squares without a word); a run that
// learned something does not.
TEST_F(TrainTest, AModelThatLearnedLittleIsReported) {
  Job("out");
  const std::string train = std::string(STYLEFLEET_BINARY) + " train " + (dir_ / "job.yaml") +
                            " --no-progress --threads 1 --set monitoring.listen=off"
                            " --set training.max_steps=2 --set training.preview_every_steps=0";
  const testing::CommandResult flat =
      testing::RunCommand(train + " --set training.learning_rate=1e-9");
  ASSERT_EQ(flat.exit_code, 0) << flat.output;
  EXPECT_NE(flat.output.find("the model's output is still nearly uniform over the validation "
                             "photos"),
            std::string::npos)
      << flat.output;
  EXPECT_NE(flat.output.find("raise training.learning_rate"), std::string::npos);
  const testing::CommandResult learned =
      testing::RunCommand(train + " --set job.output_dir=" + (dir_ / "learned") +
                          " --set training.max_steps=12 "
                          "--set training.learning_rate=0.05");
  ASSERT_EQ(learned.exit_code, 0) << learned.output;
  EXPECT_EQ(learned.output.find("nearly uniform"), std::string::npos) << learned.output;
}

// A loss-network file is checked like a model: a NaN or infinite weight (also
// one that only overflows as float32), a NaN mean or a std whose inverse
// overflows is refused when loaded, naming the file and the key, so `check`
// and `losses` refuse it too; each of these used to pass and train NaN steps.
TEST_F(TrainTest, ALossNetworkWithNonFiniteValuesIsRefused) {
  const TensorDict good = testing::VggTestDict();
  auto refusal = [&](const std::string& name, const std::string& key, const torch::Tensor& value) {
    TensorDict dict = good;
    bool replaced = false;
    for (auto& [k, v] : dict) {
      if (k == key) v = value, replaced = true;
    }
    if (!replaced) dict.emplace_back(key, value);
    SaveTensorDict(dict, dir_ / name);
    try {
      Vgg16::Load(dir_ / name);
      return std::string("loaded");
    } catch (const DataError& e) {
      return std::string(e.what());
    }
  };
  torch::Tensor nan_weight = FindTensor(good, "features.2.weight")->clone();
  nan_weight[0][0][1][1] = NAN;
  EXPECT_EQ(refusal("nan.pt", "features.2.weight", nan_weight),
            dir_ /
                "nan.pt: key 'features.2.weight' holds NaN or infinite values (as float32): "
                "not a usable loss network");
  torch::Tensor huge_bias = FindTensor(good, "features.28.bias")->to(torch::kFloat64);
  huge_bias[3] = 1e300;  // finite in the file, infinite as float32
  EXPECT_NE(refusal("huge.pt", "features.28.bias", huge_bias).find("'features.28.bias' holds NaN"),
            std::string::npos);
  EXPECT_NE(refusal("mean.pt", "stylefleet.mean", torch::tensor({0.4, std::nan(""), 0.4}))
                .find("key 'stylefleet.mean' holds NaN or infinite values"),
            std::string::npos);
  EXPECT_NE(refusal("std.pt", "stylefleet.std", torch::tensor({1e-300, 1.0, 1.0}, torch::kFloat64))
                .find("stylefleet.std values must be > 0 and not so small"),
            std::string::npos);
  EXPECT_NE(refusal("scale.pt", "stylefleet.activation_scale",
                    torch::tensor(1e300, torch::TensorOptions(torch::kFloat64)))
                .find("stylefleet.activation_scale must be a finite number > 0"),
            std::string::npos);
  EXPECT_EQ(refusal("good.pt", "stylefleet.mean", torch::tensor({0.4, 0.4, 0.4})), "loaded");
}

// max_bad_steps counts bad steps in a row: two that a good step separates do
// not stop a style whose limit is two.
TEST_F(TrainTest, NonConsecutiveBadStepsDoNotStopAStyle) {
  TrainRunOptions faulty = Quiet();
  faulty.inject_faults = {"style:1:nan-loss", "style:3:nan-loss"};
  const TrainOutcome outcome = TrainJob(Job("out", {"training.max_bad_steps=2"}), faulty);
  EXPECT_TRUE(outcome.failed_styles.empty());
  EXPECT_TRUE(fs::exists(dir_ / "out/style/model.pt"));
  faulty.inject_faults = {"style:2:nan-loss", "style:3:nan-loss"};
  EXPECT_EQ(TrainJob(Job("in_a_row", {"training.max_bad_steps=2"}), faulty).failed_styles,
            std::vector<std::string>{"style"});
}

// Uniform-colour photos made 8 of 12 steps non-finite (instance norm at zero
// variance amplifies gradients ~316x per norm until they overflow). They are
// now skipped like undecodable files, and no step is lost.
TEST_F(TrainTest, FlatPhotosMixedIntoBatchesNeverMakeAStepNonFinite) {
  for (int i = 0; i < 4; ++i) {
    RgbImage flat;
    flat.width = 80;
    flat.height = 72;
    flat.pixels.assign(80 * 72 * 3, static_cast<uint8_t>(10 + 40 * i));
    SaveImageFile(flat, dir_ / ("photos/flat" + std::to_string(i) + ".png"));
  }
  const TrainOutcome outcome =
      TrainJob(Job("out", {"training.max_steps=12", "training.batch_size=4"}), Quiet());
  EXPECT_TRUE(outcome.failed_styles.empty());
  const auto records = Metrics(dir_ / "out/style");
  ASSERT_EQ(records.size(), 12u);
  for (const auto& r : records) {
    EXPECT_TRUE(std::isfinite(r["total_loss"].get<double>())) << r.dump();
  }
  EXPECT_EQ(records.back()["skipped_images"].get<int64_t>(), 4);
}

TEST_F(TrainTest, AFinishedStyleIsNotTrainedAgain) {
  TrainJob(Job("out"), Quiet());
  const auto before = fs::last_write_time(CheckpointPath(dir_ / "out/style", 4));
  TrainJob(Job("out"), Quiet());
  EXPECT_EQ(fs::last_write_time(CheckpointPath(dir_ / "out/style", 4)), before);
}

// The validation photos: previews show the listed ones (cropped as training
// images), and the end of the run writes each whole (shorter side image_size,
// sides that are no multiple of 4) as the trained model stylizes it.
TEST_F(TrainTest, PreviewsAndFinalImagesShowTheValidationPhotos) {
  fs::create_directories(dir_ / "val");
  fs::create_directories(dir_ / "in");
  SaveImageFile(testing::MakeTestImage(100, 60, 11), dir_ / "val/wide.png");
  SaveImageFile(testing::MakeTestImage(50, 90, 12), dir_ / "val/tall.jpg");
  const JobConfig job = Job("out", {"data.validation_images=[" + (dir_ / "val/wide.png") + ", " +
                                    (dir_ / "val/tall.jpg") + "]"});
  TrainJob(job, Quiet());
  const std::string style_dir = dir_ / "out/style";
  const RgbImage preview = LoadImageFile(style_dir + "/previews/step-00000004.png");
  ASSERT_EQ(preview.width, 2 * 64);
  ASSERT_EQ(preview.height, 2 * 64);
  for (int i = 0; i < 2; ++i) {
    const RgbImage photo =
        ResizeCenterCrop(LoadImageFile(i == 0 ? dir_ / "val/wide.png" : dir_ / "val/tall.jpg"), 64);
    for (int y = 0; y < 64; ++y) {
      for (int x = 0; x < 64; ++x) {
        for (int c = 0; c < 3; ++c) {
          ASSERT_EQ(preview.pixels[(size_t(y) * preview.width + i * 64 + x) * 3 + c],
                    photo.pixels[(size_t(y) * 64 + x) * 3 + c])
              << "photo " << i << " at " << x << "," << y;
        }
      }
    }
  }
  std::vector<std::string> finals;
  for (const auto& entry : fs::directory_iterator(style_dir + "/final"))
    finals.push_back(entry.path().filename().string());
  std::sort(finals.begin(), finals.end());
  EXPECT_EQ(finals, (std::vector<std::string>{"01-wide.png", "02-tall.png"}));
  const RgbImage wide = LoadImageFile(style_dir + "/final/01-wide.png");
  EXPECT_EQ(wide.width, 107);  // 100 * 64 / 60, rounded
  EXPECT_EQ(wide.height, 64);
  const RgbImage tall = LoadImageFile(style_dir + "/final/02-tall.png");
  EXPECT_EQ(tall.width, 64);
  EXPECT_EQ(tall.height, 115);  // 90 * 64 / 50, rounded
  // What `stylize` writes for the resized photo with the final model.
  SaveImageFile(Resize(LoadImageFile(dir_ / "val/wide.png"), 107, 64), dir_ / "in/wide.png");
  StylizeOptions options;
  options.model = style_dir + "/model.pt";
  options.inputs = {dir_ / "in/wide.png"};
  options.format = "png";
  options.output_dir = dir_ / "stylized";
  at::set_num_threads(1);  // LibTorch's own default here; training above set more
  ASSERT_EQ(StylizeImages(options).written.size(), 1u);
  // No --threads: OMP_NUM_THREADS when set, else every core, as `stylize --help` says.
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int from_environment = ThreadsFromOmpEnvironment();
  EXPECT_EQ(at::get_num_threads(), from_environment > 0 ? from_environment : cores);
  const RgbImage expected = LoadImageFile(dir_ / "stylized/wide.png");
  ASSERT_EQ(expected.pixels.size(), wide.pixels.size());
  int worst = 0;
  for (size_t i = 0; i < wide.pixels.size(); ++i)
    worst = std::max(worst, std::abs(int(wide.pixels[i]) - int(expected.pixels[i])));
  EXPECT_LE(worst, 1);
}

// Without data.validation_images: the first 4 content files, as previews
// always showed.
TEST_F(TrainTest, FinalImagesDefaultToTheFirstFourContentFiles) {
  TrainJob(Job("out"), Quiet());
  const std::string final_dir = dir_ / "out/style/final";
  const std::vector<std::string> files = ListImageFiles(dir_ / "photos");
  ASSERT_GE(files.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    const std::string name =
        "0" + std::to_string(i + 1) + "-" + fs::path(files[i]).stem().string() + ".png";
    ASSERT_TRUE(fs::exists(final_dir + "/" + name)) << name;
    const RgbImage image = LoadImageFile(final_dir + "/" + name);
    EXPECT_EQ(image.width, 71);  // 80 x 72 photos: 80 * 64 / 72, rounded
    EXPECT_EQ(image.height, 64);
  }
  EXPECT_FALSE(fs::exists(final_dir + "/05-" + fs::path(files[4]).stem().string() + ".png"));
  EXPECT_EQ(LoadImageFile(dir_ / "out/style/previews/step-00000004.png").width, 4 * 64);
}

// A run already trained writes its final images again, with the validation
// set of now: the photos no longer in it lose theirs.
TEST_F(TrainTest, AnAlreadyTrainedRunRewritesItsFinalImages) {
  TrainJob(Job("out"), Quiet());
  const std::string final_dir = dir_ / "out/style/final";
  fs::create_directories(dir_ / "val");
  SaveImageFile(testing::MakeTestImage(64, 64, 13), dir_ / "val/square.png");
  const auto before = fs::last_write_time(CheckpointPath(dir_ / "out/style", 4));
  TrainJob(Job("out", {"data.validation_images=[" + (dir_ / "val/square.png") + "]"}), Quiet());
  EXPECT_EQ(fs::last_write_time(CheckpointPath(dir_ / "out/style", 4)), before);  // not trained
  std::vector<std::string> finals;
  for (const auto& entry : fs::directory_iterator(final_dir))
    finals.push_back(entry.path().filename().string());
  EXPECT_EQ(finals, std::vector<std::string>{"01-square.png"});
  EXPECT_EQ(LoadImageFile(final_dir + "/01-square.png").width, 64);
}

// Final images are for people: one that cannot be written never fails the run.
TEST_F(TrainTest, FinalImagesThatCannotBeWrittenAreOnlyAWarning) {
  TrainJob(Job("out", {"training.max_steps=2"}), Quiet());  // claims the folder
  fs::remove_all(dir_ / "out/style/final");
  testing::WriteFile(dir_ / "out/style/final", "a file where the folder goes");
  EXPECT_NO_THROW(TrainJob(Job("out"), Quiet()));
  EXPECT_TRUE(fs::exists(dir_ / "out/style/model.pt"));
  EXPECT_TRUE(fs::is_regular_file(dir_ / "out/style/final"));
}

TEST_F(TrainTest, ABrokenNewestCheckpointFallsBackToTheOneBefore) {
  TrainJob(Job("out", {"training.max_steps=2"}), Quiet());
  // A torn write that somehow kept the final name: resume must skip it.
  testing::WriteFile(CheckpointPath(dir_ / "out/style", 3), "torn");
  TrainJob(Job("out"), Quiet());
  TrainJob(Job("straight"), Quiet());
  ExpectSameTensors(dir_ / "out/style/model.pt", dir_ / "straight/style/model.pt");
}

// A checkpoint copied in from another job's or style's folder, or renamed to
// another step, passes its checksum: resuming from it would silently continue
// another training. The run stops naming the file.
TEST_F(TrainTest, ACheckpointOfAnotherStyleOrStepIsNotResumed) {
  TrainJob(Job("out", {"training.max_steps=2"}), Quiet());
  TrainJob(Job("other", {"training.max_steps=2", "job.name=u"}), Quiet());
  const std::string own = CheckpointPath(dir_ / "out/style", 2);
  const std::string saved = dir_ / "own.pt";
  fs::copy_file(own, saved);
  fs::copy_file(CheckpointPath(dir_ / "other/style", 2), own, fs::copy_options::overwrite_existing);
  try {
    TrainJob(Job("out"), Quiet());
    ADD_FAILURE() << "resumed from another job's checkpoint";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.problems().front(),
              own +
                  ": checkpoint of style 'style' of job 'u', found in the folder of style "
                  "'style' of job 't'; move it out of " +
                  (dir_ / "out/style") + "/checkpoints");
  }
  fs::copy_file(saved, own, fs::copy_options::overwrite_existing);
  const std::string renamed = CheckpointPath(dir_ / "out/style", 3);
  fs::copy_file(saved, renamed);
  try {
    TrainJob(Job("out"), Quiet());
    ADD_FAILURE() << "resumed from a renamed checkpoint";
  } catch (const ConfigError& e) {
    EXPECT_NE(e.problems().front().find(renamed + ": the file is named for another step than "
                                                  "the 2 it holds"),
              std::string::npos)
        << e.problems().front();
  }
  // Moved out, the run resumes from its own and ends as a straight run does.
  fs::remove(renamed);
  TrainJob(Job("out"), Quiet());
  TrainJob(Job("straight"), Quiet());
  ExpectSameTensors(dir_ / "out/style/model.pt", dir_ / "straight/style/model.pt");
}

// A checkpoint whose tensors changed after it was written (a flipped weight,
// -1.96e37 as once seen) or that holds NaN is never resumed: the run names the
// file, resumes from the one before (the log line says which) and ends bitwise
// equal to a straight run, every tensor compared.
TEST_F(TrainTest, ADamagedOrPoisonedCheckpointIsSkippedNamingTheFile) {
  Job("out");
  const std::string train = std::string(STYLEFLEET_BINARY) + " train " + (dir_ / "job.yaml") +
                            " --no-progress --threads 1 --set monitoring.listen=off"
                            " --set monitoring.linger_seconds=0 --set checkpoint.every_steps=1";
  ASSERT_EQ(testing::RunCommand(train + " --set training.max_steps=3").exit_code, 0);
  const std::string style = dir_ / "out/style";
  TensorDict flipped = LoadTensorDict(CheckpointPath(style, 3));
  for (auto& [key, tensor] : flipped) {
    if (key == "conv1.conv2d.weight") tensor.view(-1)[0] = -1.96e37;
  }
  SaveTensorDict(flipped, CheckpointPath(style, 3));  // the stored checksum no longer matches
  TensorDict poisoned;
  for (auto& [key, tensor] : LoadTensorDict(CheckpointPath(style, 2))) {
    if (key == "stylefleet.checksum") continue;  // as a file without a checksum
    if (key == "stylefleet.adam.exp_avg.in1.weight") tensor.view(-1)[3] = NAN;
    poisoned.emplace_back(key, tensor);
  }
  SaveTensorDict(poisoned, CheckpointPath(style, 2));
  const testing::CommandResult resumed = testing::RunCommand(train);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("step-00000003.pt: checksum mismatch"), std::string::npos)
      << resumed.output;
  EXPECT_NE(resumed.output.find("step-00000002.pt: 'stylefleet.adam.exp_avg.in1.weight' holds NaN"),
            std::string::npos)
      << resumed.output;
  EXPECT_NE(resumed.output.find("resuming from " + CheckpointPath(style, 1) + " (step 1)"),
            std::string::npos)
      << resumed.output;
  TrainJob(Job("straight"), Quiet());
  ExpectSameTensors(style + "/model.pt", dir_ / "straight/style/model.pt");
}

// A checkpoint edited with its checksum recomputed (an adversarial trial's
// files) passes the checksum: every value it holds is checked before use. One
// that is out of range is skipped with a one-line warning naming the file, and
// the run resumes from the one before, as it does for a damaged file; no
// LibTorch backtrace reaches the user. Runs the binary: the trial's
// stylefleet.batch = -5 ended in std::bad_alloc and SIGABRT.
class CheckpointRangeTest : public TrainTest {
 protected:
  // Trains 3 steps with a checkpoint at each, keeping a copy of the newest.
  void SetUp() override {
    TrainTest::SetUp();
    Job("out");
    ASSERT_EQ(testing::RunCommand(Train(3)).exit_code, 0);
    fs::copy_file(Newest(), dir_ / "newest.pt");
  }

  std::string Train(int max_steps) const {
    return std::string(STYLEFLEET_BINARY) + " train " + (dir_ / "job.yaml") +
           " --no-progress --threads 1 --set monitoring.listen=off"
           " --set monitoring.linger_seconds=0 --set checkpoint.every_steps=1"
           " --set training.max_steps=" +
           std::to_string(max_steps);
  }

  std::string Newest() const { return CheckpointPath(dir_ / "out/style", 3); }

  // Rewrites the newest checkpoint as `edit` changes it, checksum recomputed,
  // resumes to train on to step 4 (a resume that only writes the model never
  // reads its batches), and expects the run to fall back to step 2 warning `why`.
  void ExpectFallBack(const std::function<void(TensorDict&)>& edit, const std::string& why) {
    SCOPED_TRACE(why);
    TensorDict dict = LoadTensorDict(dir_ / "newest.pt");
    edit(dict);
    SaveTensorDict(RecomputeChecksum(std::move(dict)), Newest());
    const testing::CommandResult resumed = testing::RunCommand(Train(4));
    ASSERT_EQ(resumed.exit_code, 0) << why << "\n" << resumed.output;
    EXPECT_NE(resumed.output.find("ignoring unreadable checkpoint: " + Newest() + ": " + why),
              std::string::npos)
        << resumed.output;
    EXPECT_NE(
        resumed.output.find("resuming from " + CheckpointPath(dir_ / "out/style", 2) + " (step 2)"),
        std::string::npos)
        << resumed.output;
    EXPECT_EQ(resumed.output.find("Exception raised from"), std::string::npos) << resumed.output;
    fs::remove(CheckpointPath(dir_ / "out/style", 4));  // the next edit is the newest again
  }

  static void Set(TensorDict& dict, const std::string& key, const torch::Tensor& value) {
    for (auto& [name, tensor] : dict) {
      if (name == key) tensor = value;
    }
  }
};

TEST_F(CheckpointRangeTest, AnImpossiblePositionFallsBackToTheCheckpointBefore) {
  const auto int64 = [](int64_t v) { return torch::tensor(v, torch::kInt64); };
  ExpectFallBack([&](TensorDict& d) { Set(d, "stylefleet.batch", int64(-5)); },
                 "'stylefleet.batch' is -5, outside [0, 3]");
  ExpectFallBack([&](TensorDict& d) { Set(d, "stylefleet.batch", int64(4)); },
                 "'stylefleet.batch' is 4, outside [0, 3]");
  ExpectFallBack([&](TensorDict& d) { Set(d, "stylefleet.epoch", int64(-1)); },
                 "'stylefleet.epoch' is -1, outside [0, 3]");
  ExpectFallBack([&](TensorDict& d) { Set(d, "stylefleet.adam.steps", int64(-1)); },
                 "'stylefleet.adam.steps' is -1, outside [0, ");
  ExpectFallBack(
      [&](TensorDict& d) { Set(d, "stylefleet.batch", torch::tensor(2.5, torch::kFloat64)); },
      "'stylefleet.batch' is Double, expected Long (int64)");
  // The last run resumed from step 2 and trained on: it ends as a straight run does.
  TrainJob(Job("straight", {"training.max_steps=4"}), Quiet());
  ExpectSameTensors(dir_ / "out/style/model.pt", dir_ / "straight/style/model.pt");
}

TEST_F(CheckpointRangeTest, ABadRngStateFallsBackWithoutABacktrace) {
  ExpectFallBack(
      [&](TensorDict& d) {
        for (auto& [key, t] : d) {
          if (key == "stylefleet.rng") t = t.slice(0, 0, 100).clone();
        }
      },
      "'stylefleet.rng' is Byte [100], expected the CPU generator's state");
  ExpectFallBack(
      [&](TensorDict& d) {
        for (auto& [key, t] : d) {
          if (key == "stylefleet.rng") t = t.to(torch::kInt64);
        }
      },
      "'stylefleet.rng' is Long [");
  // The right size and dtype, but no mt19937 state (LibTorch's own check).
  ExpectFallBack(
      [&](TensorDict& d) {
        for (auto& [key, t] : d) {
          if (key == "stylefleet.rng") t = torch::full_like(t, 255);
        }
      },
      "'stylefleet.rng' is not a valid generator state (");
}

TEST_F(CheckpointRangeTest, OptimizerStateThatDoesNotFitItsParameterFallsBack) {
  ExpectFallBack(
      [&](TensorDict& d) {
        for (auto& [key, t] : d) {
          if (key == "stylefleet.adam.exp_avg.in1.weight") t = t.to(torch::kFloat64);
        }
      },
      "optimizer state 'stylefleet.adam.exp_avg.in1.weight' is Double [32], its parameter "
      "Float [32]");
  ExpectFallBack(
      [&](TensorDict& d) {
        for (auto& [key, t] : d) {
          if (key == "stylefleet.adam.exp_avg_sq.in1.weight") t.view(-1)[5] = -1e-3;
        }
      },
      "optimizer state 'stylefleet.adam.exp_avg_sq.in1.weight' holds negative values");
}

// A conditional network's checkpoint holds each style's log window: one of
// the wrong length (an edited file, checksum recomputed) would stop the run at
// its first step after the resume; it is skipped like any unusable file.
TEST_F(TrainTest, AConditionalCheckpointWithABadLogWindowFallsBack) {
  const std::vector<std::string> every_3 = {"training.log_every_steps=3"};
  TrainJob(ConditionalJob(dir_, "out", {"a", "b"}, "", every_3), Quiet());
  const std::string newest = CheckpointPath(dir_ / "out/conditional", 4);
  TensorDict dict = LoadTensorDict(newest);
  int edited = 0;
  for (auto& [key, tensor] : dict) {
    if (key.rfind("stylefleet.log_window.", 0) != 0) continue;
    tensor = torch::tensor({2.0, 1.0, 1.0}, torch::kFloat64);  // an image count and 2 sums
    ++edited;
  }
  ASSERT_EQ(edited, 2);
  SaveTensorDict(RecomputeChecksum(std::move(dict)), newest);
  std::vector<std::string> longer = every_3;
  longer.push_back("training.max_steps=6");
  EXPECT_NO_THROW(TrainJob(ConditionalJob(dir_, "out", {"a", "b"}, "", longer), Quiet()));
  EXPECT_TRUE(fs::exists(CheckpointPath(dir_ / "out/conditional", 6)));
}

// Photos added to the content folder between runs change each epoch's order:
// safe to continue with, but said (a trial's resume did not notice).
TEST_F(TrainTest, AResumeSaysThatTheContentFolderChanged) {
  Job("out");
  const std::string train = std::string(STYLEFLEET_BINARY) + " train " + (dir_ / "job.yaml") +
                            " --no-progress --threads 1 --set monitoring.listen=off"
                            " --set monitoring.linger_seconds=0";
  ASSERT_EQ(testing::RunCommand(train + " --set training.max_steps=2").exit_code, 0);
  const std::string before = ContentListOf(dir_ / "photos");
  SaveImageFile(testing::MakeTestImage(80, 72, 9), dir_ / "photos/extra.png");
  const std::string after = ContentListOf(dir_ / "photos");
  EXPECT_EQ(before.substr(0, 8), "8 files,");
  const testing::CommandResult resumed = testing::RunCommand(train);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming with changed settings that are safe to continue with:"),
            std::string::npos)
      << resumed.output;
  EXPECT_NE(resumed.output.find("\n  data.content_dir holds: " + before + " -> " + after + "\n"),
            std::string::npos)
      << resumed.output;
}

// Each layer's value in metrics.jsonl is that layer's own style loss: at step 1
// (the initial network, the same batch) a run over four layers records for
// each what a run over that layer alone records. The four values differ, so a
// record that gave a layer its neighbour's loss fails.
TEST_F(TrainTest, EachRecordedLayerLossIsThatLayersOwn) {
  auto first_record = [&](const std::string& output, const std::string& layers) {
    TrainJob(Job(output, {"training.max_steps=1", "job.convolution=direct",
                          "training.preview_every_steps=0", "loss_network.style_layers=" + layers}),
             Quiet());
    return Metrics(dir_ / (output + "/style")).front()["style_loss_by_layer"];
  };
  const nlohmann::json all = first_record("all", "[conv1_2, conv2_2, conv3_3, conv4_3]");
  ASSERT_EQ(all.size(), 4u) << all;
  std::set<double> distinct;
  for (const std::string layer : {"conv1_2", "conv2_2", "conv3_3", "conv4_3"}) {
    const nlohmann::json alone = first_record("only_" + layer, "[" + layer + "]");
    ASSERT_EQ(alone.size(), 1u) << alone;
    const double own = alone.at(layer).get<double>();
    EXPECT_NEAR(all.at(layer).get<double>(), own, 1e-9 * std::abs(own)) << layer;
    distinct.insert(own);
  }
  EXPECT_EQ(distinct.size(), 4u) << all;
}

// training.style_luminance_only: the style loss sees only the style image's
// luminance, so a recoloured style image of the same BT.601 luma trains the
// same first step, where with the colours its style loss differs.
TEST_F(TrainTest, StyleLuminanceOnlyLearnsFromTheStyleImagesLuminanceAlone) {
  // At the image size, so that no resize mixes the recoloured pixels.
  const RgbImage style = testing::MakeTestImage(64, 64, 5);
  RgbImage recoloured = style;
  // 299 dr + 587 dg + 114 db = 0: each change keeps the luma in integers.
  const int changes[][3] = {{109, -73, 90},   {-109, 73, -90}, {83, -65, 117}, {-83, 65, -117},
                            {119, -41, -101}, {-119, 41, 101}, {11, 1, -34},   {-11, -1, 34}};
  size_t changed = 0;
  for (size_t i = 0; i < recoloured.pixels.size(); i += 3) {
    for (const auto& d : changes) {
      int next[3];
      for (int c = 0; c < 3; ++c) next[c] = style.pixels[i + c] + d[c];
      if (std::all_of(next, next + 3, [](int v) { return v >= 0 && v <= 255; })) {
        for (int c = 0; c < 3; ++c) recoloured.pixels[i + c] = static_cast<uint8_t>(next[c]);
        ++changed;
        break;
      }
    }
  }
  ASSERT_GT(changed, recoloured.pixels.size() / 3 * 9 / 10);
  auto first_style_loss = [&](const std::string& output, const RgbImage& image, bool luminance) {
    SaveImageFile(image, dir_ / "style.png");
    TrainJob(
        Job(output,
            {"training.max_steps=1", "job.convolution=direct", "training.preview_every_steps=0",
             std::string("training.style_luminance_only=") + (luminance ? "true" : "false")}),
        Quiet());
    return Metrics(dir_ / (output + "/style")).front()["style_loss"].get<double>();
  };
  const double luminance = first_style_loss("luminance", style, true);
  const double luminance_recoloured = first_style_loss("luminance_recoloured", recoloured, true);
  const double colour = first_style_loss("colour", style, false);
  const double colour_recoloured = first_style_loss("colour_recoloured", recoloured, false);
  EXPECT_NEAR(luminance_recoloured, luminance, 1e-4 * luminance);
  EXPECT_GT(std::abs(colour_recoloured - colour), 1e-2 * colour);
  EXPECT_GT(std::abs(luminance - colour), 1e-3 * colour);
}

// A settings.json written before training.style_luminance_only existed has no
// such key, and its run trained on the colours: a resume with the key on is a
// change and refused; with it off (the default) the run resumes.
TEST_F(TrainTest, AnOlderRecordWithoutStyleLuminanceOnlyCountsAsOff) {
  TrainJob(Job("out", {"training.max_steps=1", "training.preview_every_steps=0"}), Quiet());
  const std::string record_path = dir_ / "out/style/settings.json";
  nlohmann::json record;
  {
    std::ifstream in(record_path);
    in >> record;
  }
  ASSERT_EQ(record.erase("styles.style.style_luminance_only"), 1u) << record.dump(2);
  testing::WriteFile(record_path, record.dump(2));
  const std::vector<std::string> on =
      PreflightProblems(Job("out", {"training.style_luminance_only=true"}), PreflightOptions{});
  ASSERT_EQ(on.size(), 1u);
  EXPECT_NE(on[0].find("\n  styles.style.style_luminance_only: false -> true"), std::string::npos)
      << on[0];
  EXPECT_TRUE(PreflightProblems(Job("out"), PreflightOptions{}).empty());
}

// Every key a style's settings.json records (RunSettings, from the config
// tables) is changed once against a trained style: a key that changes what the
// style learns must be refused before training, naming the key; a safe one
// must resume and train one more step. The expected outcome is written here,
// not read from the tables: a flipped table entry (learning_rate marked safe)
// then fails this test, not only the README's generated column. A key the
// tables gain without an entry here fails too.
TEST_F(TrainTest, EveryRecordedSettingIsRefusedOrResumedAsItsKindRequires) {
  struct Change {
    std::string value;  // for `--set KEY=VALUE`
    bool refused;
  };
  const std::string photo = dir_ / "photos/0001.png";
  const std::map<std::string, Change> changes = {
      {"job.name", {"u", true}},
      {"job.output_dir", {dir_ / "moved", false}},
      {"job.seed", {"4", true}},
      {"job.styles_at_once", {"1", false}},
      {"job.convolution", {"direct", false}},
      {"data.content_dir", {dir_ / "photos2", true}},
      {"data.image_size", {"68", true}},
      {"data.max_image_pixels", {"40000000", false}},
      {"data.loader_threads", {"2", false}},
      {"data.prefetch_batches", {"2", false}},
      {"data.validation_images", {"[" + photo + "]", false}},
      {"loss_network.weights", {"random:3", true}},
      {"loss_network.content_layers", {"[conv2_2]", true}},
      {"loss_network.style_layers", {"[conv1_2]", true}},
      {"checkpoint.every_steps", {"1", false}},
      {"checkpoint.keep", {"2", false}},
      {"distributed.backend", {"mpi", false}},
      {"distributed.ranks_per_style", {"1", false}},
      {"distributed.bucket_mb", {"1", false}},
      {"distributed.check_every_steps", {"1", false}},
      {"distributed.stall_warn_seconds", {"30", false}},
      {"distributed.timeout_seconds", {"300", false}},
      {"monitoring.listen", {"off", false}},
      {"monitoring.listen_strict", {"true", false}},
      {"monitoring.linger_seconds", {"0", false}},
      {"monitoring.pushgateway", {"127.0.0.1:9091", false}},
      {"monitoring.push_interval_seconds", {"5", false}},
      {"styles.style.image", {dir_ / "style2.png", true}},
      {"styles.style.output_dir", {dir_ / "elsewhere", false}},
      {"styles.style.content_weight", {"2", true}},
      {"styles.style.style_weight", {"50", true}},
      {"styles.style.tv_weight", {"1", true}},
      // With 2 ranks (below): the same 2 images per step, so it resumes.
      {"styles.style.batch_size", {"1", false}},
      {"styles.style.batch_size in the job file", {"1", false}},
      {"styles.style.micro_batches", {"2", false}},
      {"styles.style.epochs", {"1", false}},
      {"styles.style.max_steps", {"2", false}},
      {"styles.style.learning_rate", {"0.02", true}},
      {"styles.style.log_every_steps", {"2", false}},
      {"styles.style.preview_every_steps", {"0", false}},
      {"styles.style.max_bad_steps", {"3", false}},
      {"styles.style.precision", {"bf16", true}},
      {"styles.style.style_image_size", {"32", true}},
      {"styles.style.style_layers", {"[conv1_2]", true}},
      {"styles.style.style_luminance_only", {"true", true}},
      // Not set with --set: two ranks train the style (PreflightOptions::world:
      // an elastic resume, batch 1 on each), a batch of 1 on one rank (1 image
      // per step where the checkpoints had 2), and a photo is added to the
      // content folder.
      {"ranks training the style together", {"", false}},
      {"images per step (batch_size x ranks)", {"", true}},
      {"data.content_dir holds", {"", false}},
  };
  // Keys no change of which resumes this folder, so there is nothing to refuse.
  const std::map<std::string, std::string> not_resumable = {
      {"job.network", "conditional: one network for all styles, in <output_dir>/conditional"},
      {"job.base_model", "valid only with network: conditional or arbitrary"},
      {"job.distill_steps", "valid only with network: arbitrary and a base_model"},
      {"job.predictor_embedding_size", "valid only with network: arbitrary"},
      {"job.predictor_layers", "valid only with network: arbitrary"},
      {"job.held_out_styles", "valid only with network: arbitrary"},
      {"styles.style.name", "another name is another style, in another folder"},
  };
  const std::vector<std::string> one_step = {"training.max_steps=1"};
  SaveImageFile(testing::MakeTestImage(90, 90, 6), dir_ / "style2.png");
  fs::copy(dir_ / "photos", dir_ / "photos2");
  TrainJob(Job("out", one_step), Quiet());
  const std::string trained = dir_ / "out/style", pristine = dir_ / "pristine";
  fs::copy(trained, pristine, fs::copy_options::recursive);
  const JobConfig job = Job("out", one_step);
  const std::vector<Setting> recorded =
      RunSettings(job, job.styles[0], 1, ContentListOf(dir_ / "photos"));
  ASSERT_GT(recorded.size(), 40u);
  size_t refusals = 0, resumes = 0;
  for (const Setting& setting : recorded) {
    SCOPED_TRACE(setting.key);
    if (not_resumable.count(setting.key) > 0) continue;
    const auto change = changes.find(setting.key);
    if (change == changes.end()) {
      ADD_FAILURE() << "the run records " << setting.key
                    << ": give it a changed value and whether a resume is refused";
      continue;
    }
    std::vector<std::string> overrides = one_step;
    PreflightOptions preflight;
    const std::string extra_photo = dir_ / "photos/extra.png";
    if (setting.key == "ranks training the style together") {
      preflight.world = 2;
    } else if (setting.key == "styles.style.batch_size" ||
               setting.key == "styles.style.batch_size in the job file") {
      preflight.world = 2;
      overrides.push_back("styles.style.batch_size=" + change->second.value);
    } else if (setting.key == kImagesPerStepKey) {
      overrides.push_back("styles.style.batch_size=1");
    } else if (setting.key == "data.content_dir holds") {
      SaveImageFile(testing::MakeTestImage(80, 72, 9), extra_photo);
    } else {
      overrides.push_back(setting.key + "=" + change->second.value);
    }
    const JobConfig changed = Job("out", overrides);
    const std::vector<std::string> problems = PreflightProblems(changed, preflight);
    if (change->second.refused) {
      ++refusals;
      // job.name is refused by the folder's owner file, before settings are compared.
      const std::string named =
          setting.key == "job.name"
              ? "belongs to style 'style' of job 't', not style 'style' of job 'u'"
              : "settings changed since its checkpoints (newest " + CheckpointPath(trained, 1) +
                    ") were trained; they change what the style learns";
      const std::string line = "\n  " + setting.key + ": " + setting.value + " -> ";
      EXPECT_EQ(problems.size(), 1u) << "a resume after the change was not refused";
      if (problems.size() == 1) {
        EXPECT_NE(problems[0].find(named), std::string::npos) << problems[0];
        if (setting.key != "job.name") {
          EXPECT_NE(problems[0].find(line), std::string::npos) << problems[0];
        }
      }
    } else {
      ++resumes;
      EXPECT_TRUE(problems.empty()) << "a safe change was refused: " << problems.front();
      // Two ranks resume in elastic_resume_test (mpirun); this process is one.
      if (preflight.world != 1) continue;
      // The resume itself: one more step from a copy of the trained folder,
      // wherever the changed job keeps it.
      const std::string folder = changed.styles[0].output_dir;
      fs::remove_all(folder);
      fs::create_directories(fs::path(folder).parent_path());
      fs::copy(pristine, folder, fs::copy_options::recursive);
      if (setting.key != "styles.style.max_steps") overrides.push_back("styles.style.max_steps=2");
      EXPECT_NO_THROW(TrainJob(Job("out", overrides), Quiet()));
      const std::vector<std::string> checkpoints = ListCheckpoints(folder);
      EXPECT_TRUE(!checkpoints.empty() && checkpoints.front() == CheckpointPath(folder, 2))
          << "no checkpoint of step 2";
      const auto records = Metrics(folder);
      EXPECT_TRUE(!records.empty() && records.front()["step"] == 1) << "not resumed";
      fs::remove_all(folder);
      if (!fs::exists(trained)) fs::copy(pristine, trained, fs::copy_options::recursive);
    }
    fs::remove(extra_photo);
  }
  EXPECT_GE(refusals, 15u);
  EXPECT_GE(resumes, 25u);
}

// When no checkpoint of a style can be read, training from step 0 would
// replace the finished model without a word: the run stops, naming the
// folder, and leaves the model as it was (found in a trial: it retrained).
TEST_F(TrainTest, AStyleWhoseCheckpointsAreAllDamagedIsNotRetrained) {
  TrainJob(Job("out", {"training.max_steps=2", "checkpoint.every_steps=1"}), Quiet());
  const std::string style = dir_ / "out/style";
  const auto model_time = fs::last_write_time(style + "/model.pt");
  for (int step : {1, 2}) testing::WriteFile(CheckpointPath(style, step), "damaged");
  try {
    TrainJob(Job("out", {"training.max_steps=3"}), Quiet());
    ADD_FAILURE() << "trained from step 0 over damaged checkpoints";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("style 'style': none of its 2 checkpoint(s) can be read "
                                         "(the newest: " +
                                         CheckpointPath(style, 2)),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("move them out of " + style + "/checkpoints"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(fs::last_write_time(style + "/model.pt"), model_time);
  EXPECT_EQ(fs::file_size(CheckpointPath(style, 2)), 7u);  // still "damaged"
}

// Checkpoints are written in the background. When the last one fails, the run
// fails, and what it leaves is the previous run's: no model, final images or
// checkpoint count of a network that was never saved (found in review: the
// final images were written before the failure was known, and the metrics
// counted a checkpoint when it was queued).
TEST_F(TrainTest, AFailedBackgroundCheckpointLeavesNoModelOfTheUnsavedNetwork) {
  testing::RecordingMetrics first_metrics;
  TrainRunOptions first = Quiet();
  first.metrics = &first_metrics;
  TrainJob(Job("out", {"training.max_steps=2"}), first);
  EXPECT_EQ(first_metrics.checkpoints["style"], 1);
  const std::string style = dir_ / "out/style";
  const auto bytes = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  const std::string model = bytes(style + "/model.pt");
  std::map<std::string, std::string> finals;
  for (const auto& entry : std::filesystem::directory_iterator(style + "/final")) {
    finals[entry.path().string()] = bytes(entry.path().string());
  }
  ASSERT_FALSE(finals.empty());
  // The last checkpoint's temporary file cannot be created: a folder is in its way.
  std::filesystem::create_directories(style + "/checkpoints/.step-00000004.pt.tmp/blocked");
  testing::RecordingMetrics metrics;
  TrainRunOptions resumed = Quiet();
  resumed.metrics = &metrics;
  try {
    TrainJob(Job("out", {"training.max_steps=4"}), resumed);
    FAIL() << "the failed checkpoint went unnoticed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("step-00000004.pt"), std::string::npos) << e.what();
  }
  EXPECT_EQ(metrics.checkpoints["style"], 0);
  EXPECT_EQ(bytes(style + "/model.pt"), model);
  for (const auto& [path, content] : finals) EXPECT_EQ(bytes(path), content) << path;
  EXPECT_FALSE(std::filesystem::exists(CheckpointPath(style, 4)));
}

TEST_F(TrainTest, AnotherJobsFolderIsNeverOverwritten) {
  TrainJob(Job("out"), Quiet());
  JobConfig other = Job("out", {"job.name=other"});
  other.output_dir = dir_ / "out";
  try {
    TrainJob(other, Quiet());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("belongs to style 'style' of job 't'"), std::string::npos)
        << e.what();
  }
  testing::WriteFile(dir_ / "foreign/style/notes.txt", "mine");
  try {
    TrainJob(Job("foreign"), Quiet());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not empty and was not written by stylefleet"),
              std::string::npos);
  }
}

TEST_F(TrainTest, BadStyleImageStopsBeforeTraining) {
  testing::WriteFile(dir_ / "style.png", "broken");
  EXPECT_THROW(TrainJob(Job("out"), Quiet()), DataError);
  EXPECT_FALSE(fs::exists(dir_ / "out/style/checkpoints"));
}

// Tiled stylize (--tile) writes what one pass writes, on crops of a photo
// that stress padding and tile edges: the four widths modulo 4 (sizes one
// pixel apart), a 5-pixel strip, an image smaller than a tile; tiles of 64
// and 66 pixels. The model is random with its last conv rescaled so that the
// output spreads over 0..255 (a fresh one's is near 0 and clamps to black).
TEST_F(TrainTest, TiledStylizeWritesWhatOnePassWrites) {
  const torch::Tensor photo = ImageToTensor(
      LoadImageFile(std::string(STYLEFLEET_SOURCE_DIR) + "/configs/data/content/0008.jpg"));
  TransformerNet net;
  InitializeTransformer(net, 5);
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor out = net->forward(photo.slice(2, 0, 200).slice(3, 0, 300));
    const double scale = 60 / out.std().item<double>(), mean = out.mean().item<double>();
    auto params = net->named_parameters();
    params["deconv3.conv2d.weight"].mul_(scale);
    params["deconv3.conv2d.bias"].sub_(mean).mul_(scale).add_(128);
  }
  SaveTensorDict(ModelDict(net, ModelInfo{"job", "style", 64, {}}), dir_ / "model.pt");
  fs::create_directories(dir_ / "in");
  const std::vector<std::pair<int, int>> sizes = {{300, 200}, {301, 201}, {302, 202},
                                                  {303, 203}, {300, 5},   {50, 40}};
  for (const auto& [w, h] : sizes) {
    SaveImageFile(TensorToImage(photo.slice(2, 7, 7 + h).slice(3, 11, 11 + w)),
                  dir_ / ("in/" + std::to_string(w) + "x" + std::to_string(h) + ".png"));
  }
  StylizeOptions options;
  options.model = dir_ / "model.pt";
  options.inputs = {dir_ / "in"};
  options.format = "png";
  options.output_dir = dir_ / "whole";
  options.tile_size = 0;
  ASSERT_EQ(StylizeImages(options).written.size(), sizes.size());
  for (int tile : {64, 66}) {
    options.output_dir = dir_ / ("tiled" + std::to_string(tile));
    options.tile_size = tile;
    ASSERT_EQ(StylizeImages(options).written.size(), sizes.size());
    for (const auto& [w, h] : sizes) {
      const std::string name = std::to_string(w) + "x" + std::to_string(h) + ".png";
      const RgbImage whole = LoadImageFile(dir_ / ("whole/" + name));
      const RgbImage tiled = LoadImageFile(options.output_dir + "/" + name);
      ASSERT_EQ(tiled.width, w);
      ASSERT_EQ(tiled.height, h);
      int worst = 0;
      double total = 0;
      for (size_t i = 0; i < whole.pixels.size(); ++i) {
        const int d = std::abs(whole.pixels[i] - tiled.pixels[i]);
        worst = std::max(worst, d);
        total += d;
      }
      // Float summation order can move a value across a rounding boundary.
      EXPECT_LE(worst, 1) << name << " tile " << tile;
      EXPECT_LT(total / whole.pixels.size(), 0.05) << name << " tile " << tile;
    }
  }
}

// Images of a few pixels (the network needs 8 per side after padding) are
// stylized at their own size; none of them ends the run of the others.
TEST_F(TrainTest, StylizeTakesImagesOfAFewPixels) {
  torch::manual_seed(4);
  TransformerNet net;
  SaveTensorDict(ModelDict(net, ModelInfo{"job", "style", 64, {}}), dir_ / "model.pt");
  fs::create_directories(dir_ / "in");
  const std::vector<std::pair<int, int>> sizes = {{1, 1},   {2, 2}, {4, 4}, {3, 200},
                                                  {200, 4}, {5, 5}, {7, 9}};
  for (const auto& [w, h] : sizes) {
    SaveImageFile(TensorToImage(torch::rand({1, 3, h, w}) * 255),
                  dir_ / ("in/" + std::to_string(w) + "x" + std::to_string(h) + ".png"));
  }
  StylizeOptions options;
  options.model = dir_ / "model.pt";
  options.inputs = {dir_ / "in"};
  options.format = "png";
  options.output_dir = dir_ / "out";
  const StylizeResult result = StylizeImages(options);
  EXPECT_TRUE(result.failed.empty());
  ASSERT_EQ(result.written.size(), sizes.size());
  for (const auto& [w, h] : sizes) {
    const RgbImage out =
        LoadImageFile(dir_ / ("out/" + std::to_string(w) + "x" + std::to_string(h) + ".png"));
    EXPECT_EQ(out.width, w);
    EXPECT_EQ(out.height, h);
  }
  // --max-image-pixels: larger inputs fail (the message names the option: data_test).
  options.max_image_pixels = 35;
  options.output_dir = dir_ / "limited";
  const StylizeResult limited = StylizeImages(options);
  EXPECT_EQ(limited.written.size(), 4u);  // 1x1, 2x2, 4x4 and 5x5 px
  EXPECT_EQ(limited.failed.size(), 3u);   // 3x200, 200x4 and 7x9 px
}

// PNGs with transparency (RGBA, grey + alpha): the stylized PNG keeps each
// pixel's alpha exactly (checked by PIL); JPEG output still works, without it.
TEST_F(TrainTest, StylizeKeepsThePngAlpha) {
  torch::manual_seed(4);
  TransformerNet net;
  SaveTensorDict(ModelDict(net, ModelInfo{"job", "style", 64, {}}), dir_ / "model.pt");
  testing::WriteFile(dir_ / "alpha.py", R"(import sys
from PIL import Image
folder, mode = sys.argv[1], sys.argv[2]
if mode == 'make':
    rgba = Image.new('RGBA', (40, 30))
    for x in range(40):
        for y in range(30):
            rgba.putpixel((x, y), (x * 6, y * 8, 90, (x * 7 + y * 3) % 256))
    rgba.save(folder + '/in/rgba.png')
    rgba.convert('LA').save(folder + '/in/grey.png')
else:
    for name in ('rgba', 'grey'):
        src = Image.open(f'{folder}/in/{name}.png').getchannel('A')
        out = Image.open(f'{folder}/out/{name}.png')
        assert out.mode == 'RGBA', f'{name}: output mode {out.mode}, alpha lost'
        assert list(out.getchannel('A').getdata()) == list(src.getdata()), f'{name}: alpha differs'
)");
  fs::create_directories(dir_ / "in");
  const std::string python = "/usr/bin/python3 " + (dir_ / "alpha.py") + " " + dir_.path();
  ASSERT_EQ(std::system((python + " make").c_str()), 0);
  StylizeOptions options;
  options.model = dir_ / "model.pt";
  options.inputs = {dir_ / "in"};
  options.output_dir = dir_ / "out";
  options.format = "png";
  ASSERT_EQ(StylizeImages(options).written.size(), 2u);
  EXPECT_EQ(std::system((python + " check").c_str()), 0);
  options.format = "jpg";
  EXPECT_EQ(StylizeImages(options).written.size(), 2u);
}

// Only the network's folder holds a conditional job's checkpoints: each of
// its styles' folders got an empty checkpoints/ as well (issue 32), made by
// ClaimOutputDir for every folder it claimed.
TEST_F(TrainTest, ConditionalStyleFoldersHoldNoCheckpointsFolder) {
  TrainJob(ConditionalJob(dir_, "net", {"a", "b"}, "", {"training.max_steps=2"}), Quiet());
  EXPECT_FALSE(ListCheckpoints(dir_ / "net/conditional").empty());
  for (const std::string style : {"a", "b"}) {
    EXPECT_TRUE(fs::exists(dir_ / ("net/" + style + "/metrics.jsonl"))) << style;
    EXPECT_FALSE(fs::exists(dir_ / ("net/" + style + "/checkpoints"))) << style;
  }
}

}  // namespace
}  // namespace stylefleet
