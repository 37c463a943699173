// The command-line tool's contract: exit codes and messages at the edge.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_paths.h"
#include "test_util.h"

namespace stylefleet {
namespace {

testing::CommandResult RunTool(const std::string& args) {
  return testing::RunCommand(std::string(STYLEFLEET_BINARY) + " " + args);
}

TEST(CliTest, InvalidJobExitsWithCode2AndPositions) {
  testing::TempDir dir;
  testing::WriteFile(dir / "job.yaml", "data:\n  content_dir: nowhere\n  image_size: 0\n");
  const testing::CommandResult r = RunTool("check " + (dir / "job.yaml"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(
      r.output.find(dir / "job.yaml:3:15: data.image_size: must be between 64 and 4096, got 0"),
      std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("problems found; nothing was run"), std::string::npos);
  EXPECT_EQ(r.output.find("terminate called"), std::string::npos);
}

TEST(CliTest, UsageErrorsExitWithCode2) {
  EXPECT_EQ(RunTool("train").exit_code, 2);
  EXPECT_EQ(RunTool("frobnicate").exit_code, 2);
  EXPECT_EQ(RunTool("--help").exit_code, 0);
}

TEST(CliTest, ShippedDemoJobChecksClean) {
  const testing::CommandResult r =
      RunTool("check " + std::string(STYLEFLEET_SOURCE_DIR) + "/configs/demo.yaml");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("styles (3):"), std::string::npos);
}

// A job whose steps cannot fit the machine is refused before training (exit
// 2, with the estimate and the limit), not after a 4 GiB allocation failure.
TEST(CliTest, AJobThatCannotFitInMemoryIsRefusedUpFront) {
  testing::TempDir dir;
  testing::WriteTestImages(dir / "photos", 2, 72, 64);
  testing::WriteFile(dir / "job.yaml",
                     "data: {content_dir: photos, image_size: 4096}\n"
                     "loss_network: {weights: 'random:1'}\n"
                     "training: {batch_size: 64, max_steps: 1}\n"
                     "monitoring: {listen: 'off'}\n"
                     "styles:\n  - image: photos/0001.png\n");
  for (const std::string command : {"check ", "train "}) {
    const testing::CommandResult r = RunTool(command + (dir / "job.yaml"));
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("training needs about 7501.3 GiB of memory (style '"),
              std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("available; lower data.image_size or training.batch_size"),
              std::string::npos)
        << r.output;
  }
}

TEST(CliTest, RuntimeFailureExitsWithCode1) {
  testing::TempDir dir;
  const testing::CommandResult r =
      RunTool("export --model " + (dir / "none.pt") + " --to " + (dir / "x.pt"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("none.pt: cannot open file"), std::string::npos) << r.output;
}

// export creates the folder it is asked to write into; stylize takes --format
// in any case. The model comes from PyTorch (reference.py's random transformer).
TEST(CliTest, ExportCreatesItsFolderAndFormatIgnoresCase) {
  testing::TempDir dir;
  const std::string make = "/usr/bin/python3 " + std::string(STYLEFLEET_SOURCE_DIR) +
                           "/tests/python/reference.py file-losses " + dir.path() + " >/dev/null";
  ASSERT_EQ(std::system(make.c_str()), 0) << make;
  const testing::CommandResult exported =
      RunTool("export --model " + (dir / "transformer.pt") + " --to " + (dir / "new/sub/x.pth"));
  EXPECT_EQ(exported.exit_code, 0) << exported.output;
  EXPECT_TRUE(std::ifstream(dir / "new/sub/x.pth").good());
  EXPECT_EQ(exported.output.find(".tmp"), std::string::npos) << exported.output;
  const testing::CommandResult upper =
      RunTool("stylize --model " + (dir / "new/sub/x.pth") + " " + (dir / "content.png") +
              " --output " + (dir / "out") + " --format PNG --threads 1");
  EXPECT_EQ(upper.exit_code, 0) << upper.output;
  EXPECT_TRUE(std::ifstream(dir / "out/content.png").good()) << upper.output;
  EXPECT_EQ(RunTool("stylize --model " + (dir / "new/sub/x.pth") + " " + (dir / "content.png") +
                    " --output " + (dir / "out") + " --format gif")
                .exit_code,
            2);
}

// `stylefleet bench` at a toy size: one JSON document with every section,
// figures that are positive, a trace, and usage errors as exit code 2.
TEST(CliTest, BenchPrintsOneJsonDocumentWithEverySection) {
  testing::TempDir dir;
  const testing::CommandResult r = RunTool(
      "bench --image-size 32 --batch 2 --warmup 0 --steps 2 --styles-at-once 2 --stylize-sizes 32 "
      "--threads 1 --no-progress --content " +
      std::string(STYLEFLEET_SOURCE_DIR) + "/configs/data/content --trace " + (dir / "trace.json") +
      " --output " + (dir / "bench.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(dir / "bench.json");
  const nlohmann::json doc = nlohmann::json::parse(in);
  EXPECT_GT(doc.at("flops_per_training_image").at("total_gflop").get<double>(), 0.0);
  ASSERT_GE(doc.at("train_synthetic").size(), 1u);
  for (const auto& run : doc.at("train_synthetic")) {
    EXPECT_GT(run.at("images_per_second_per_style").get<double>(), 0.0);
    EXPECT_GT(run.at("achieved_gflops").get<double>(), 0.0);
    EXPECT_EQ(run.at("step_seconds").size(), 2u);
    EXPECT_TRUE(run.at("phase_seconds_per_step").contains("backward"));
  }
  EXPECT_EQ(doc.at("train_synthetic")[0].at("precision"), "fp32");
  EXPECT_EQ(doc.at("train_synthetic").size() == 2u,
            doc.at("machine").at("bf16_instructions").get<bool>());
  const auto& together = doc.at("train_styles_at_once");
  EXPECT_EQ(together.at("styles_at_once"), 2);
  EXPECT_LT(together.at("max_loss_relative_difference_vs_separate").get<double>(), 1e-5);
  // The rates from the raw step times, recomputed here: batch 2 on 1 rank per
  // style per step, over the median step (the mean of 2 steps).
  const auto rate = [](const nlohmann::json& run) {
    const auto& seconds = run.at("step_seconds");
    return 2 / (0.5 * (seconds.at(0).get<double>() + seconds.at(1).get<double>()));
  };
  const double alone = rate(doc.at("train_synthetic")[0]);
  EXPECT_NEAR(doc.at("train_synthetic")[0].at("images_per_second_per_style").get<double>(), alone,
              1e-9 * alone);
  const double per_style = rate(together);
  EXPECT_NEAR(together.at("images_per_second_per_style").get<double>(), per_style,
              1e-9 * per_style);
  EXPECT_NEAR(together.at("images_per_second_all_styles").get<double>(), 2 * per_style,
              1e-9 * per_style);
  EXPECT_NEAR(together.at("speedup_over_one_style_at_a_time").get<double>(), 2 * per_style / alone,
              1e-9 * per_style / alone);
  EXPECT_GT(doc.at("train_pipeline").at("images_per_second_per_style").get<double>(), 0.0);
  EXPECT_GT(doc.at("stylize").at(0).at("images_per_second").get<double>(), 0.0);
  EXPECT_FALSE(doc.contains("allreduce"));  // one process
  std::ifstream trace_in(dir / "trace.json");
  EXPECT_GT(nlohmann::json::parse(trace_in).at("traceEvents").size(), 10u);

  EXPECT_EQ(RunTool("bench --image-size 30 --no-progress").exit_code, 2);
  EXPECT_EQ(RunTool("bench --precision fp16").exit_code, 2);
  const testing::CommandResult missing =
      RunTool("bench --content " + (dir / "nowhere") + " --no-progress");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.output.find("nowhere"), std::string::npos) << missing.output;
}

}  // namespace
}  // namespace stylefleet
