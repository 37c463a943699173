// The command-line tool's contract: exit codes and messages at the edge.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>

#include "test_paths.h"
#include "test_util.h"

namespace stylefleet {
namespace {

struct Result {
  int exit_code;
  std::string output;  // stdout and stderr together
};

Result RunTool(const std::string& args) {
  const std::string command = std::string(STYLEFLEET_BINARY) + " " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

TEST(CliTest, InvalidJobExitsWithCode2AndPositions) {
  testing::TempDir dir;
  testing::WriteFile(dir / "job.yaml", "data:\n  content_dir: nowhere\n  image_size: 0\n");
  const Result r = RunTool("check " + (dir / "job.yaml"));
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
  const Result r = RunTool("check " + std::string(STYLEFLEET_SOURCE_DIR) + "/configs/demo.yaml");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("styles (3):"), std::string::npos);
}

TEST(CliTest, RuntimeFailureExitsWithCode1) {
  testing::TempDir dir;
  const Result r = RunTool("export --model " + (dir / "none.pt") + " --to " + (dir / "x.pt"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("none.pt: cannot open file"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace stylefleet
