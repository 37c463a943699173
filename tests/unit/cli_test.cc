// The command-line tool's contract: exit codes and messages at the edge.
#include <gtest/gtest.h>

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
  EXPECT_NE(r.output.find(dir / "job.yaml:3:15: data.image_size: must be between 64 and 4096, got 0"),
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
  const testing::CommandResult r = RunTool("check " + std::string(STYLEFLEET_SOURCE_DIR) + "/configs/demo.yaml");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("styles (3):"), std::string::npos);
}

TEST(CliTest, RuntimeFailureExitsWithCode1) {
  testing::TempDir dir;
  const testing::CommandResult r = RunTool("export --model " + (dir / "none.pt") + " --to " + (dir / "x.pt"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("none.pt: cannot open file"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace stylefleet
