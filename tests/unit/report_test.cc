// The HTML report: run folders read back (torn and null records, previews,
// sweep-run nesting), the SVG charts, and a page that needs no network.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "common/error.h"
#include "report/job_report.h"
#include "report/run_history.h"
#include "report/svg_chart.h"

namespace stylefleet {
namespace {
namespace fs = std::filesystem;

class ReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("stylefleet_report_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  static void Write(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
  }
  static std::string Record(int step, double total, const std::string& conv1 = "2.5") {
    return "{\"step\":" + std::to_string(step) +
           ",\"total_steps\":40,\"time\":1795952228.5,\"content_loss\":3,\"style_loss\":4,"
           "\"tv_loss\":0.5,\"total_loss\":" +
           std::to_string(total) + ",\"style_loss_by_layer\":{\"conv1_2\":" + conv1 +
           ",\"conv2_2\":1.5},\"images_per_second\":1.25,\"eta_seconds\":30}\n";
  }

  fs::path root_;
};

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST_F(ReportTest, ReadsRecordsSkippingATornLineAndKeepingNullsAsGaps) {
  Write(root_ / "candy" / "metrics.jsonl",
        Record(10, 100) + Record(20, 50, "null") + "{\"step\":30,\"total_lo");
  Write(root_ / "candy" / "previews" / "step-00000020.png", "b");
  Write(root_ / "candy" / "previews" / "step-00000100.png", "c");
  Write(root_ / "candy" / "previews" / "step-00000003.png", "a");
  Write(root_ / "candy" / "previews" / "notes.png", "x");
  const RunHistory run = ReadRunHistory((root_ / "candy").string());
  EXPECT_EQ(run.name, "candy");
  ASSERT_EQ(run.records.size(), 2u);
  EXPECT_EQ(run.records[1].step, 20);
  EXPECT_DOUBLE_EQ(run.records[1].total, 50);
  EXPECT_DOUBLE_EQ(run.records[0].style_by_layer.at("conv1_2"), 2.5);
  EXPECT_TRUE(std::isnan(run.records[1].style_by_layer.at("conv1_2")));
  EXPECT_EQ(run.style_layers, (std::vector<std::string>{"conv1_2", "conv2_2"}));
  ASSERT_EQ(run.unreadable.size(), 1u);
  EXPECT_NE(run.unreadable[0].find("metrics.jsonl:3"), std::string::npos);
  ASSERT_EQ(run.previews.size(), 3u);  // numeric order, foreign names ignored
  EXPECT_EQ(run.previews[0].step, 3);
  EXPECT_EQ(run.previews[1].step, 20);
  EXPECT_EQ(run.previews[2].step, 100);
  EXPECT_FALSE(run.finished);
}

TEST_F(ReportTest, FindsStyleAndSweepRunsBelowTheJobFolder) {
  Write(root_ / "mosaic" / "metrics.jsonl", Record(1, 1));
  Write(root_ / "candy" / "style_weight=50" / "metrics.jsonl", Record(1, 1));
  Write(root_ / "candy" / "style_weight=5" / "previews" / "step-00000001.png", "p");
  Write(root_ / "mosaic" / "checkpoints" / "metrics.jsonl", Record(1, 1));  // inside a run
  Write(root_ / "unrelated" / "notes.txt", "n");
  const auto runs = ReadJobHistory(root_.string());
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].name, "candy/style_weight=5");
  EXPECT_EQ(runs[1].name, "candy/style_weight=50");
  EXPECT_EQ(runs[2].name, "mosaic");
  // One run's folder alone is a job of one run.
  EXPECT_EQ(ReadJobHistory((root_ / "mosaic").string()).size(), 1u);
  EXPECT_THROW(ReadJobHistory((root_ / "unrelated").string()), DataError);
  EXPECT_THROW(ReadJobHistory((root_ / "missing").string()), DataError);
}

TEST(SvgChartTest, DrawsLinesGapsDotsAndEscapesNames) {
  ChartSpec spec;
  spec.title = "loss <b>";
  spec.series.push_back({"a&b", {{0, 1}, {1, 2}, {2, std::nan("")}, {3, 4}, {4, 5}}});
  spec.series.push_back({"single", {{2, 3}}});
  const std::string svg = LineChartSvg(spec);
  EXPECT_EQ(Count(svg, "<polyline"), 2);  // the NaN splits the first series
  EXPECT_EQ(Count(svg, "<circle"), 1);
  EXPECT_NE(svg.find("loss &lt;b&gt;"), std::string::npos);
  EXPECT_NE(svg.find("a&amp;b"), std::string::npos);
  EXPECT_EQ(svg.find("<b>"), std::string::npos);
  EXPECT_EQ(svg.find("log scale"), std::string::npos);
}

TEST(SvgChartTest, PlacesPointsByValue) {
  ChartSpec spec;
  spec.width = 200;
  spec.height = 100;
  spec.log_y_when_useful = false;
  spec.series.push_back({"s", {{0, 0}, {10, 10}}});
  const std::string svg = LineChartSvg(spec);
  const std::regex points("points=\"([0-9.]+),([0-9.]+) ([0-9.]+),([0-9.]+) \"");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(svg, m, points)) << svg;
  // x runs from the plot's left edge to its right edge; the larger y is drawn higher.
  EXPECT_LT(std::stod(m[1]), std::stod(m[3]));
  EXPECT_GT(std::stod(m[2]), std::stod(m[4]));
  EXPECT_NEAR(std::stod(m[3]) - std::stod(m[1]), 200 - 62 - 12, 1e-6);
}

TEST(SvgChartTest, UsesALogAxisForLossesSpanningDecadesAndSaysSo) {
  ChartSpec spec;
  spec.series.push_back({"loss", {{0, 1e4}, {1, 1e2}, {2, 3}}});
  EXPECT_NE(LineChartSvg(spec).find("(log scale)"), std::string::npos);
  spec.series[0].points.push_back({3, -1});  // not every value positive: linear
  EXPECT_EQ(LineChartSvg(spec).find("(log scale)"), std::string::npos);
}

TEST(SvgChartTest, SaysWhenThereIsNoData) {
  ChartSpec spec;
  spec.title = "t";
  spec.series.push_back({"s", {{1, std::nan("")}}});
  const std::string svg = LineChartSvg(spec);
  EXPECT_NE(svg.find("no data yet"), std::string::npos);
  EXPECT_EQ(svg.find("<polyline"), std::string::npos);
}

TEST_F(ReportTest, PageIsSelfContainedWithEveryRunAndItsPreviewsInline) {
  Write(root_ / "candy" / "metrics.jsonl", Record(10, 100) + Record(20, 50));
  const std::string png_signature("\x89PNG\r\n\x1a\n", 8);
  Write(root_ / "candy" / "previews" / "step-00000010.png", png_signature + "M");
  Write(root_ / "candy" / "previews" / "step-00000020.png", png_signature + "Ma");
  Write(root_ / "candy" / "model.pt", "x");
  Write(root_ / "<script>x" / "metrics.jsonl", Record(5, 7));
  ReportOptions options;
  options.job_dir = root_.string();
  const std::string path = WriteJobReport(options);
  EXPECT_EQ(path, (root_ / "report.html").string());
  std::ifstream in(path);
  const std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  // Base64 of the preview files' bytes (Python's base64.b64encode): the latest
  // in the contact sheet and in the strip, the first in the strip.
  EXPECT_EQ(Count(html, "data:image/png;base64,iVBORw0KGgpN\""), 1);
  EXPECT_EQ(Count(html, "data:image/png;base64,iVBORw0KGgpNYQ==\""), 2);
  EXPECT_NE(html.find("step 20 of 40, finished"), std::string::npos);
  EXPECT_NE(html.find("id=\"run-2-candy\""), std::string::npos);
  // 7 charts per run.
  EXPECT_EQ(Count(html, "<svg "), 14);
  // Nothing is fetched: the only URL is the SVG namespace; a hostile folder
  // name stays text.
  EXPECT_EQ(Count(html, "http"), Count(html, "xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;x"), std::string::npos);
}

TEST_F(ReportTest, ShowsAtMostTheRequestedPreviewsWithTheLatest) {
  std::string records;
  for (int step = 1; step <= 30; ++step) {
    Write(root_ / "wave" / "previews" /
              ("step-" + std::string(8 - std::to_string(step).size(), '0') + std::to_string(step) +
               ".png"),
          "p" + std::to_string(step));
  }
  ReportOptions options;
  options.job_dir = root_.string();
  options.max_previews_per_run = 4;
  const std::string html = JobReportHtml(ReadJobHistory(root_.string()), "t", options);
  EXPECT_EQ(Count(html, "<figcaption>step "), 4);
  EXPECT_NE(html.find("<figcaption>step 1<"), std::string::npos);
  EXPECT_NE(html.find("<figcaption>step 30<"), std::string::npos);
  EXPECT_NE(html.find("4 of 30 previews"), std::string::npos);
}

TEST_F(ReportTest, AnUnwritableOutputIsAnErrorAndLeavesNoTemporaryFile) {
  Write(root_ / "candy" / "metrics.jsonl", Record(10, 100));
  Write(root_ / "blocker", "a file where a folder should be");
  ReportOptions options;
  options.job_dir = root_.string();
  options.output = (root_ / "blocker" / "report.html").string();
  EXPECT_THROW(WriteJobReport(options), Error);
  // A folder in the way: the page is written, the rename fails, the
  // temporary file goes.
  fs::create_directories(root_ / "taken" / "inside");
  options.output = (root_ / "taken").string();
  EXPECT_THROW(WriteJobReport(options), Error);
  EXPECT_FALSE(fs::exists(root_ / "taken.tmp"));
}

// What an adversary or an accident puts where the report reads or writes.
TEST_F(ReportTest, ReplacesOnlyAnEarlierReportAndEmbedsOnlyRealPngFiles) {
  Write(root_ / "candy" / "metrics.jsonl", Record(10, 100));
  Write(root_ / "model.pt", "weights");
  ReportOptions options;
  options.job_dir = root_.string();
  options.output = (root_ / "model.pt").string();
  EXPECT_THROW(WriteJobReport(options), Error);
  std::ifstream kept(root_ / "model.pt");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(kept), {}), "weights");
  fs::create_symlink(root_ / "model.pt", root_ / "link.html");
  options.output = (root_ / "link.html").string();
  EXPECT_THROW(WriteJobReport(options), Error);
  EXPECT_TRUE(fs::is_symlink(root_ / "link.html"));
  options.output = (root_ / "r.html").string();
  WriteJobReport(options);
  EXPECT_NO_THROW(WriteJobReport(options));  // its own earlier page is replaced

  const std::string png("\x89PNG\r\n\x1a\nrest", 12);
  Write(root_ / "secret.txt", "password");
  Write(root_ / "wave" / "previews" / "step-00000001.png", png);
  Write(root_ / "wave" / "previews" / "step-00000002.png", "not a png");
  fs::create_symlink(root_ / "secret.txt", root_ / "wave" / "previews" / "step-00000003.png");
  const std::string html = JobReportHtml(ReadJobHistory(root_.string()), "t", options);
  EXPECT_EQ(Count(html, "data:image/png;base64,"), 1);  // step 1 in the strip
  EXPECT_NE(html.find("step-00000002.png left out (not a PNG file)"), std::string::npos);
  EXPECT_NE(html.find("step-00000003.png left out (not a regular file)"), std::string::npos);
  EXPECT_EQ(html.find("cGFzc3dvcmQ"), std::string::npos);  // base64 of "password"
}

TEST_F(ReportTest, APipeForMetricsIsNamedNotOpened) {
  fs::create_directories(root_ / "candy");
  ASSERT_EQ(mkfifo((root_ / "candy" / "metrics.jsonl").c_str(), 0600), 0);
  const RunHistory run = ReadRunHistory((root_ / "candy").string());
  EXPECT_TRUE(run.records.empty());
  ASSERT_EQ(run.unreadable.size(), 1u);
  EXPECT_NE(run.unreadable[0].find("not a regular file"), std::string::npos);
}

TEST_F(ReportTest, RunIdsAreUniqueAndNamesStayValidUtf8) {
  Write(root_ / "a b" / "metrics.jsonl", Record(1, 1));
  Write(root_ / "a_b" / "metrics.jsonl", Record(1, 1));
  Write(root_ / "caf\xc3\xa9" / "metrics.jsonl", Record(1, 1));
  Write(root_ / "bad\xff" / "metrics.jsonl", Record(1, 1));
  ReportOptions options;
  options.job_dir = root_.string();
  const std::string html = JobReportHtml(ReadJobHistory(root_.string()), "t", options);
  std::regex id("id=\"(run-[^\"]*)\"");
  std::set<std::string> ids;
  for (std::sregex_iterator it(html.begin(), html.end(), id), end; it != end; ++it) {
    EXPECT_TRUE(ids.insert((*it)[1]).second) << (*it)[1];
  }
  EXPECT_EQ(ids.size(), 4u);
  EXPECT_NE(html.find("caf\xc3\xa9"), std::string::npos);
  EXPECT_EQ(html.find("bad\xff"), std::string::npos);
  EXPECT_NE(html.find("bad\xef\xbf\xbd"), std::string::npos);
}

TEST(SvgChartTest, LongRunsAreThinnedToAFewThousandPointsKeepingTheLast) {
  ChartSpec spec;
  ChartSeries series{"s", {}};
  for (int i = 0; i < 500000; ++i) series.points.emplace_back(i, 1 + i % 7);
  series.points.back().second = 3.5;
  spec.series.push_back(series);
  const std::string svg = LineChartSvg(spec);
  EXPECT_LT(Count(svg, ","), 2100);
  EXPECT_LT(svg.size(), 100000u);
}

}  // namespace
}  // namespace stylefleet
