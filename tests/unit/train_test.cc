// Training end to end on generated photos with a random loss network:
// the loss falls, resume is bitwise exact, output folders are protected,
// stylize tiles blend correctly.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "config/job_config.h"
#include "data/image.h"
#include "model/tensor_file.h"
#include "test_util.h"
#include "train/checkpoints.h"
#include "train/commands.h"
#include "train/model_state.h"

namespace stylefleet {
namespace {
namespace fs = std::filesystem;
using testing::TempDir;

class TrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::WriteTestImages(dir_ / "photos", 8, 80, 72);
    SaveImageFile(testing::MakeTestImage(90, 90, 5), dir_ / "style.png");
  }

  JobConfig Job(const std::string& output, std::vector<std::string> overrides = {}) {
    const std::string text =
        "job: {name: t, output_dir: " + output + ", seed: 3}\n"
        "data: {content_dir: photos, image_size: 64, loader_threads: 1}\n"
        "loss_network: {weights: 'random:2'}\n"
        "training: {batch_size: 2, epochs: 0, max_steps: 4, learning_rate: 0.01,\n"
        "           log_every_steps: 1, preview_every_steps: 2}\n"
        "checkpoint: {every_steps: 2, keep: 5}\n"
        "styles:\n  - image: style.png\n";
    testing::WriteFile(dir_ / "job.yaml", text);
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

  static std::vector<nlohmann::json> Metrics(const std::string& style_dir) {
    std::ifstream in(style_dir + "/metrics.jsonl");
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
  const TensorDict a = Params(dir_ / "straight/style/model.pt");
  const TensorDict b = Params(dir_ / "resumed/style/model.pt");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  }
  // The resumed run's metrics continue without duplicates.
  const auto records = Metrics(dir_ / "resumed/style");
  ASSERT_EQ(records.size(), 4u);
  for (size_t i = 0; i < records.size(); ++i) EXPECT_EQ(records[i]["step"], i + 1);
}

// job.styles_at_once: styles sharing each batch and loss-network pass train as
// they would apart; a style with other batch settings trains on its own; a
// style stopped by numerical faults leaves the pass and the others finish.
TEST_F(TrainTest, StylesTrainedTogetherMatchStylesTrainedApart) {
  SaveImageFile(testing::MakeTestImage(90, 90, 9), dir_ / "style2.png");
  auto job_text = [&](const std::string& output, int at_once) {
    return "job: {name: t, output_dir: " + output + ", seed: 3, styles_at_once: " +
           std::to_string(at_once) + "}\n"
           "data: {content_dir: photos, image_size: 64, loader_threads: 1}\n"
           "loss_network: {weights: 'random:2'}\n"
           "training: {batch_size: 2, epochs: 0, max_steps: 4, learning_rate: 0.01,\n"
           "           log_every_steps: 1, preview_every_steps: 0, max_bad_steps: 2}\n"
           "checkpoint: {every_steps: 2, keep: 5}\n"
           "styles:\n"
           "  - {name: a, image: style.png}\n"
           "  - {name: b, image: style2.png, style_weight: 50}\n"
           "  - {name: c, image: style.png, batch_size: 4}\n";
  };
  testing::WriteFile(dir_ / "apart.yaml", job_text("apart", 1));
  testing::WriteFile(dir_ / "together.yaml", job_text("together", 3));
  EXPECT_TRUE(TrainJob(LoadJob(dir_ / "apart.yaml"), Quiet()).failed_styles.empty());
  EXPECT_TRUE(TrainJob(LoadJob(dir_ / "together.yaml"), Quiet()).failed_styles.empty());
  for (const std::string style : {"a", "b", "c"}) {
    const auto apart = Metrics(dir_ / ("apart/" + style));
    const auto together = Metrics(dir_ / ("together/" + style));
    ASSERT_EQ(apart.size(), 4u) << style;
    ASSERT_EQ(together.size(), 4u) << style;
    for (size_t i = 0; i < 4; ++i) {
      const double x = apart[i]["total_loss"], y = together[i]["total_loss"];
      EXPECT_LT(std::abs(x - y), 1e-4 * std::abs(x)) << style << " step " << i + 1;
    }
    EXPECT_TRUE(fs::exists(dir_ / ("together/" + style + "/model.pt"))) << style;
  }

  TrainRunOptions faulty = Quiet();
  faulty.inject_nan = {"a:1", "a:2"};
  testing::WriteFile(dir_ / "faulty.yaml", job_text("faulty", 2));
  const TrainOutcome outcome = TrainJob(LoadJob(dir_ / "faulty.yaml"), faulty);
  EXPECT_EQ(outcome.failed_styles, std::vector<std::string>{"a"});
  EXPECT_FALSE(fs::exists(dir_ / "faulty/a/model.pt"));
  EXPECT_TRUE(fs::exists(dir_ / "faulty/b/model.pt"));
  EXPECT_EQ(Metrics(dir_ / "faulty/b").size(), 4u);
}

TEST_F(TrainTest, AFinishedStyleIsNotTrainedAgain) {
  TrainJob(Job("out"), Quiet());
  const auto before = fs::last_write_time(CheckpointPath(dir_ / "out/style", 4));
  TrainJob(Job("out"), Quiet());
  EXPECT_EQ(fs::last_write_time(CheckpointPath(dir_ / "out/style", 4)), before);
}

TEST_F(TrainTest, ABrokenNewestCheckpointFallsBackToTheOneBefore) {
  TrainJob(Job("out", {"training.max_steps=2"}), Quiet());
  // A torn write that somehow kept the final name: resume must skip it.
  testing::WriteFile(CheckpointPath(dir_ / "out/style", 3), "torn");
  TrainJob(Job("out"), Quiet());
  TrainJob(Job("straight"), Quiet());
  EXPECT_TRUE(torch::equal(Params(dir_ / "out/style/model.pt")[0].second,
                           Params(dir_ / "straight/style/model.pt")[0].second));
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

TEST_F(TrainTest, StylizeHandlesAnySizeAndTilesBlendWithoutSeams) {
  TrainJob(Job("out"), Quiet());
  // A flat image: every tile sees the same statistics as the whole, so the
  // blended result must equal the untiled one; any weighting error would show.
  RgbImage flat;
  flat.width = 150;
  flat.height = 90;
  flat.pixels.assign(150 * 90 * 3, 100);
  fs::create_directories(dir_ / "in");
  SaveImageFile(flat, dir_ / "in/flat.png");
  SaveImageFile(testing::MakeTestImage(37, 23, 1), dir_ / "in/odd.png");
  StylizeOptions options;
  options.model = dir_ / "out/style";
  options.inputs = {dir_ / "in"};
  options.output_dir = dir_ / "whole";
  options.format = "png";
  options.tile_size = 0;
  ASSERT_EQ(StylizeImages(options).written.size(), 2u);
  options.output_dir = dir_ / "tiled";
  options.tile_size = 64;
  options.tile_overlap = 16;
  ASSERT_EQ(StylizeImages(options).written.size(), 2u);
  const RgbImage whole = LoadImageFile(dir_ / "whole/flat.png");
  const RgbImage tiled = LoadImageFile(dir_ / "tiled/flat.png");
  ASSERT_EQ(whole.width, 150);
  ASSERT_EQ(whole.height, 90);
  int worst = 0;
  for (size_t i = 0; i < whole.pixels.size(); ++i) {
    worst = std::max(worst, std::abs(whole.pixels[i] - tiled.pixels[i]));
  }
  EXPECT_LE(worst, 1);
  EXPECT_EQ(LoadImageFile(dir_ / "tiled/odd.png").width, 37);
}

// PNGs with transparency (RGBA, grey + alpha): the stylized PNG keeps each
// pixel's alpha exactly (checked by PIL); JPEG output still works, without it.
TEST_F(TrainTest, StylizeKeepsThePngAlpha) {
  torch::manual_seed(4);
  TransformerNet net;
  SaveTensorDict(ModelDict(net, ModelInfo{"job", "style", 64}), dir_ / "model.pt");
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

}  // namespace
}  // namespace stylefleet
