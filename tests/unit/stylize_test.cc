// Where `stylize` writes: folder trees mirrored, the output folder never read
// (however it is spelled), one input per output file, existing files kept.
// PlanStylize reads no image, so these cases need neither a model nor pixels.
#include <gtest/gtest.h>

#include <filesystem>

#include "commands/commands.h"
#include "common/error.h"
#include "test_util.h"

namespace stylefleet {
namespace {
namespace fs = std::filesystem;

class StylizePlanTest : public ::testing::Test {
 protected:
  // Only names matter to the plan: the files need not hold pixels.
  void Touch(const std::string& name) { testing::WriteFile(dir_ / name, "not read"); }

  StylizePlan Plan(std::vector<std::string> inputs, const std::string& output,
                   bool overwrite = false) {
    StylizeOptions options;
    options.inputs = std::move(inputs);
    options.output_dir = output;
    options.overwrite = overwrite;
    return PlanStylize(options);
  }

  // The output path of every target, relative to `output`, and its input's name.
  std::vector<std::pair<std::string, std::string>> Targets(const StylizePlan& plan,
                                                           const std::string& output) {
    fs::path base = fs::path(output).lexically_normal();
    if (base.filename().empty()) base = base.parent_path();
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& t : plan.targets) {
      out.emplace_back(
          fs::path(t.output).lexically_normal().lexically_relative(base).string(),
          fs::path(t.input).lexically_normal().lexically_relative(dir_.path()).string());
    }
    return out;
  }

  testing::TempDir dir_;
};

using Mapping = std::vector<std::pair<std::string, std::string>>;

TEST_F(StylizePlanTest, FolderTreesAreMirroredAndFilesGoToTheirName) {
  Touch("imgs/a.png");
  Touch("imgs/sub/a.png");
  Touch("imgs/sub/deeper/b.JPEG");
  Touch("other/c.png");
  const std::string out = dir_ / "out";
  // A trailing separator and "." / ".." in the folder's spelling change nothing.
  const StylizePlan plan =
      Plan({dir_ / "imgs/", dir_ / "other/../other/c.png", dir_ / "./imgs/sub/deeper"}, out);
  EXPECT_EQ(Targets(plan, out), (Mapping{{"a.jpg", "imgs/a.png"},
                                         {"sub/a.jpg", "imgs/sub/a.png"},
                                         {"sub/deeper/b.jpg", "imgs/sub/deeper/b.JPEG"},
                                         {"c.jpg", "other/c.png"}}));
  // imgs/sub/deeper/b.JPEG was already an input through imgs/.
  ASSERT_EQ(plan.skipped.size(), 1u);
  EXPECT_EQ(plan.skipped[0].reason, SkipReason::kRepeatedInput);
  EXPECT_NE(DescribeSkip(plan.skipped[0]).find("already an input"), std::string::npos);
}

TEST_F(StylizePlanTest, NothingInsideTheOutputFolderIsReadHoweverItIsSpelled) {
  Touch("imgs/a.png");
  Touch("imgs/styled/a.jpg");  // results of an earlier run, inside the input folder
  Touch("imgs/styled/x/b.png");
  fs::create_directory_symlink(dir_ / "imgs/styled", dir_ / "link");
  for (const std::string& out :
       {dir_ / "imgs/styled", dir_ / "imgs/./x/../styled/", dir_ / "link"}) {
    SCOPED_TRACE(out);
    const StylizePlan plan = Plan({dir_ / "imgs", dir_ / "link/x/b.png"}, out, true);
    EXPECT_EQ(Targets(plan, out), (Mapping{{"a.jpg", "imgs/a.png"}}));
    ASSERT_EQ(plan.skipped.size(), 3u);
    for (const auto& s : plan.skipped) EXPECT_EQ(s.reason, SkipReason::kInsideOutput) << s.input;
  }
}

TEST_F(StylizePlanTest, ExistingOutputsAreKeptUnlessOverwriting) {
  Touch("imgs/a.png");
  Touch("imgs/sub/b.png");
  Touch("out/sub/b.jpg");
  const StylizePlan kept = Plan({dir_ / "imgs"}, dir_ / "out");
  EXPECT_EQ(Targets(kept, dir_ / "out"), (Mapping{{"a.jpg", "imgs/a.png"}}));
  ASSERT_EQ(kept.skipped.size(), 1u);
  EXPECT_EQ(kept.skipped[0].reason, SkipReason::kOutputExists);
  EXPECT_EQ(DescribeSkip(kept.skipped[0]), "skipped " + (dir_ / "imgs/sub/b.png") + ": " +
                                               (dir_ / "out/sub/b.jpg") +
                                               " exists (--overwrite replaces it)");
  const StylizePlan replaced = Plan({dir_ / "imgs"}, dir_ / "out", true);
  EXPECT_EQ(replaced.targets.size(), 2u);
  EXPECT_TRUE(replaced.skipped.empty());
}

// a.jpg and a.png would both become a.jpg; two files of one name from two
// folders would both become OUT/a.jpg: the run is refused, naming each.
TEST_F(StylizePlanTest, TwoInputsOnOneOutputFileAreRefused) {
  Touch("imgs/a.jpg");
  Touch("imgs/a.png");
  Touch("imgs/b.png");
  Touch("more/b.png");
  try {
    Plan({dir_ / "imgs", dir_ / "more/b.png"}, dir_ / "out", true);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.problems().size(), 2u);
    EXPECT_EQ(e.problems()[0], "stylize: " + (dir_ / "out/a.jpg") +
                                   " would be written from each of " + (dir_ / "imgs/a.jpg") +
                                   " and " + (dir_ / "imgs/a.png") +
                                   "; rename one of them or stylize them in separate runs");
    EXPECT_NE(e.problems()[1].find((dir_ / "more/b.png")), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

TEST_F(StylizePlanTest, BadFormatIsAConfigError) {
  StylizeOptions options;
  options.inputs = {dir_ / "a.png"};
  options.output_dir = dir_ / "out";
  options.format = "gif";
  EXPECT_THROW(PlanStylize(options), ConfigError);
}

}  // namespace
}  // namespace stylefleet
