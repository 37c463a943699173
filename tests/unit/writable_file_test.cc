// The one write path (common/writable_file.h): whole replacement, links followed, refusals,
// and a failed write that keeps the old file.
#include "common/writable_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "test_util.h"

namespace stylefleet {
namespace {
namespace fs = std::filesystem;

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> Names(const std::string& folder) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(ReplaceFileDurablyTest, ReplacesTheFileWholeAndLeavesNothingElse) {
  const testing::TempDir dir;
  testing::WriteFile(dir / "settings.json", std::string(1000, 'o'));
  ReplaceFileDurably(dir / "settings.json", "new");
  EXPECT_EQ(Read(dir / "settings.json"), "new");
  EXPECT_EQ(Names(dir.path()), std::vector<std::string>{"settings.json"});
  ReplaceFileDurably(dir / "a/b/model.pt", std::string("\0bytes", 6));  // folders created
  EXPECT_EQ(Read(dir / "a/b/model.pt"), std::string("\0bytes", 6));
  EXPECT_EQ(Names(dir / "a/b"), std::vector<std::string>{"model.pt"});
}

TEST(ReplaceFileDurablyTest, ALinkKeepsPointingAtTheReplacedFile) {
  const testing::TempDir dir;
  testing::WriteFile(dir / "real.png", "old");
  fs::create_symlink(dir / "real.png", dir / "link.png");
  ReplaceFileDurably(dir / "link.png", "new");
  EXPECT_TRUE(fs::is_symlink(dir / "link.png"));
  EXPECT_EQ(Read(dir / "real.png"), "new");
}

TEST(ReplaceFileDurablyTest, RefusesWhatIsNotARegularFile) {
  const testing::TempDir dir;
  fs::create_directories(dir / "folder");
  for (const std::string& path : {std::string("/dev/null"), dir / "folder"}) {
    try {
      ReplaceFileDurably(path, "x");
      ADD_FAILURE() << path << " was replaced";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("not a regular file; nothing was written"),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_TRUE(fs::is_character_file("/dev/null"));
  EXPECT_TRUE(fs::is_directory(dir / "folder"));
}

// The temporary cannot be created (a folder holds its name): the old file stays whole, what
// was in the way is not removed, and the error names the file asked for.
TEST(ReplaceFileDurablyTest, AFailedWriteKeepsTheOldFileAndRemovesNothingItDidNotWrite) {
  const testing::TempDir dir;
  testing::WriteFile(dir / "metrics.jsonl", "old\n");
  fs::create_directories(dir / ".metrics.jsonl.tmp");
  try {
    ReplaceFileDurably(dir / "metrics.jsonl", "new\n");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              dir / "metrics.jsonl" + ": cannot write (Is a directory); nothing was replaced");
  }
  EXPECT_EQ(Read(dir / "metrics.jsonl"), "old\n");
  EXPECT_TRUE(fs::is_directory(dir / ".metrics.jsonl.tmp"));
}

}  // namespace
}  // namespace stylefleet
