// The HTML report: run folders read back (torn and null records, previews,
// sweep-run nesting), the SVG charts, and a page that needs no network.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <regex>
#include <set>

#include "common/error.h"
#include "common/file_lock.h"
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

  // A sweep run's folder, as training leaves it: its stylefleet.json, one
  // metrics record, `finals` final images (01-p0.png, ...) and a preview.
  fs::path SweepRun(const std::string& sweep,
                    const std::vector<std::pair<std::string, std::string>>& swept, double total,
                    int finals, bool preview = true) {
    std::string folder, pairs;
    for (const auto& [key, value] : swept) {
      folder += (folder.empty() ? "" : ",") + key + "=" + value;
      pairs += std::string(pairs.empty() ? "" : ", ") + "[\"" + key + "\", \"" + value + "\"]";
    }
    const fs::path dir = root_ / sweep / folder;
    Write(dir / "stylefleet.json", "{\"job\": \"j\", \"style\": \"" + sweep + "/" + folder +
                                       "\", \"sweep\": \"" + sweep + "\", \"swept\": [" + pairs +
                                       "]}");
    Write(dir / "metrics.jsonl", Record(20, total));
    for (int i = 0; i < finals; ++i) {
      Write(dir / "final" / ("0" + std::to_string(i + 1) + "-p" + std::to_string(i) + ".png"),
            kPng + folder + "/final" + std::to_string(i));
    }
    if (preview) Write(dir / "previews" / "step-00000020.png", kPng + folder + "/preview");
    return dir;
  }

  // The page's section of sweep number `n` (1-based), or "" when there is none.
  std::string SweepSection(const std::string& html, int n) {
    const size_t start = html.find("<section id=\"sweep-" + std::to_string(n) + "-");
    if (start == std::string::npos) return "";
    return html.substr(start, html.find("</section>", start) - start);
  }

  std::string Page(const ReportOptions& extra = {}) {
    ReportOptions options = extra;
    options.job_dir = root_.string();
    return JobReportHtml(ReadJobHistory(root_.string()), "t", options);
  }

  const std::string kPng = std::string("\x89PNG\r\n\x1a\n", 8);
  fs::path root_;
};

// The data-run names of a sheet's cells, row by row (one string per <tr> after the header).
std::vector<std::vector<std::string>> SheetRows(const std::string& section) {
  std::vector<std::vector<std::string>> rows;
  const std::regex cell("data-run=\"([^\"]*)\"");
  size_t at = section.find("<tr>");
  at = section.find("<tr>", at + 1);  // past the header row
  while (at != std::string::npos) {
    const size_t next = section.find("<tr>", at + 1);
    const std::string row = section.substr(at, next == std::string::npos ? next : next - at);
    rows.emplace_back();
    for (std::sregex_iterator it(row.begin(), row.end(), cell), end; it != end; ++it)
      rows.back().push_back((*it)[1]);
    at = next;
  }
  return rows;
}

// The text of the cell for `run` in `section`.
std::string Cell(const std::string& section, const std::string& run) {
  const size_t start = section.find("data-run=\"" + run + "\"");
  if (start == std::string::npos) return "";
  return section.substr(start, section.find("</td>", start) - start);
}

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
  EXPECT_EQ(run.state, RunState::kStopped);  // no model.pt
  // A step below 1 or not after the line before is not a line training
  // wrote: it is noted, not shown as the run's state (a trial's -5 was).
  Write(root_ / "wave" / "metrics.jsonl", Record(10, 100) + Record(-5, 1) + Record(10, 7));
  const RunHistory wave = ReadRunHistory((root_ / "wave").string());
  ASSERT_EQ(wave.records.size(), 1u);
  EXPECT_DOUBLE_EQ(wave.records[0].total, 100);
  ASSERT_EQ(wave.unreadable.size(), 2u);
  EXPECT_NE(wave.unreadable[0].find("metrics.jsonl:2 (step -5 out of order)"), std::string::npos);
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

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif

// Runs `work` in a forked child that is killed after `seconds` and fails an
// allocation past 4 GiB of address space: a loop that never ends (issue 32)
// fails the test instead of hanging it or filling the machine's memory.
// Whether the child exited with status 0.
bool FinishesInTime(const std::function<bool()>& work, unsigned seconds = 10) {
  const pid_t child = ::fork();
  if (child == 0) {
    ::alarm(seconds);
    // AddressSanitizer reserves terabytes of address space for its shadow
    // memory, so a 4 GiB limit would fail its every mmap (launch/test_sanitizers.sh);
    // there the alarm alone bounds the child.
    if (!kAddressSanitizer) {
      const rlimit memory{4ull << 30, 4ull << 30};
      ::setrlimit(RLIMIT_AS, &memory);
    }
    bool ok = false;
    try {
      ok = work();
    } catch (...) {
    }
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  if (child < 0 || ::waitpid(child, &status, 0) != child) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Series spanning one ulp of their values made the tick loop add a step too
// small to change its value, forever (issue 32).
TEST(SvgChartTest, TicksEndAndAreFewWhenValuesSpanOneUlp) {
  const double two_60 = std::ldexp(1.0, 60);
  const std::vector<std::vector<std::pair<double, double>>> cases = {
      {{0, 1.0}, {1, 1.0000000000000002}},
      {{0, 1e17}, {1, 1e17 + 16}},
      {{two_60, 1}, {two_60 + 256, 2}},
      {{two_60, 1e17}, {two_60 + 256, 1e17 + 16}},
      {{-1e308, -1e308}, {1e308, 1e308}},
      {{0, std::numeric_limits<double>::denorm_min()}, {1, 0}}};
  for (const auto& points : cases) {
    EXPECT_TRUE(FinishesInTime([&] {
      ChartSpec spec;
      spec.log_y_when_useful = false;
      spec.series.push_back({"s", points});
      // Tick labels and the x axis label: a handful each way.
      return Count(LineChartSvg(spec), "class=\"tick\"") <= 16;
    })) << points[0].first
        << "," << points[0].second << " " << points[1].first << "," << points[1].second;
  }
}

TEST(SvgChartTest, LinearTicksAreFewForAnyInput) {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double max = std::numeric_limits<double>::max();
  const double two_60 = std::ldexp(1.0, 60);
  const std::vector<std::pair<double, double>> ranges = {
      {1.0, 1.0000000000000002},
      {1e17, 1e17 + 16},
      {two_60, two_60 + 256},
      {-max, max},
      {0, std::numeric_limits<double>::denorm_min()},
      {-inf, inf},
      {0, inf},
      {nan, 1},
      {0, nan},
      {2, 1},
      {3, 3},
      {-max, -max}};
  for (const auto& [low, high] : ranges) {
    EXPECT_TRUE(FinishesInTime([&] {
      const std::vector<double> ticks = LinearTicks(low, high, 4);
      if (ticks.size() > 8) return false;
      for (size_t i = 0; i < ticks.size(); ++i) {
        // Finite, inside the range, strictly increasing.
        if (!std::isfinite(ticks[i]) || ticks[i] < low || ticks[i] > high) return false;
        if (i > 0 && !(ticks[i - 1] < ticks[i])) return false;
      }
      return true;
    })) << low
        << " " << high;
  }
  // Ordinary ranges keep their round ticks.
  EXPECT_EQ(LinearTicks(0, 10, 4), (std::vector<double>{0, 5, 10}));
  EXPECT_EQ(LinearTicks(-0.3, 0.3, 4), (std::vector<double>{-0.2, 0, 0.2}));
}

TEST_F(ReportTest, PageIsSelfContainedWithEveryRunAndItsPreviewsInline) {
  Write(root_ / "candy" / "metrics.jsonl", Record(10, 100) + Record(40, 50));
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
  EXPECT_NE(html.find("step 40 of 40, finished"), std::string::npos);
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
  // A small file that declares 20000 x 20000 pixels (a trial's "PNG bomb")
  // would make every browser decode 1.6 GB: named, not embedded.
  const std::string bomb = std::string("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16) +
                           std::string("\0\0\x4e\x20\0\0\x4e\x20\x08\x02\0\0\0", 13);
  Write(root_ / "wave" / "previews" / "step-00000004.png", bomb);
  const std::string bombed = JobReportHtml(ReadJobHistory(root_.string()), "t", options);
  EXPECT_NE(bombed.find("step-00000004.png left out (20000x20000 pixels)"), std::string::npos);
  EXPECT_EQ(Count(bombed, "data:image/png;base64,"), 1);  // still only step 1
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

// Two keys: rows by the first key's values, columns by the second's, values
// in numeric order (text order would put 100 before 5); a combination no run
// has started is an empty cell with its name; a cell shows the final images,
// else the latest preview, with its swept values and last losses.
TEST_F(ReportTest, TwoKeySweepIsAGridWithRowsByTheFirstKey) {
  SweepRun("candy", {{"style_weight", "50"}, {"size", "128"}}, 12.5, 2);
  SweepRun("candy", {{"style_weight", "5"}, {"size", "128"}}, 11, 0);
  SweepRun("candy", {{"style_weight", "5"}, {"size", "64"}}, 10, 1);
  SweepRun("candy", {{"style_weight", "100"}, {"size", "128"}}, 13, 0, false);
  SweepRun("candy", {{"style_weight", "50"}, {"size", "64"}}, 14, 3);
  Write(root_ / "mosaic" / "metrics.jsonl", Record(1, 1));  // not a sweep run
  const std::string html = Page();
  const std::string sheet = SweepSection(html, 1);
  ASSERT_FALSE(sheet.empty()) << html;
  EXPECT_TRUE(SweepSection(html, 2).empty());
  EXPECT_NE(sheet.find("<h2>Sweep candy</h2>"), std::string::npos);
  EXPECT_NE(sheet.find("Rows: style_weight; columns: size."), std::string::npos);
  EXPECT_LT(sheet.find("<th>size=64</th>"), sheet.find("<th>size=128</th>"));
  EXPECT_EQ(SheetRows(sheet),
            (std::vector<std::vector<std::string>>{
                {"candy/style_weight=5,size=64", "candy/style_weight=5,size=128"},
                {"candy/style_weight=50,size=64", "candy/style_weight=50,size=128"},
                {"candy/style_weight=100,size=64", "candy/style_weight=100,size=128"}}));
  EXPECT_NE(sheet.find("<tr><th>style_weight=100</th>"), std::string::npos);
  // The missing run.
  const std::string missing = Cell(sheet, "candy/style_weight=100,size=64");
  EXPECT_NE(missing.find("not started"), std::string::npos);
  EXPECT_NE(missing.find("<code>candy/style_weight=100,size=64</code>"), std::string::npos);
  EXPECT_EQ(missing.find("<img"), std::string::npos);
  // Final images in name order, label and losses.
  const std::string finished = Cell(sheet, "candy/style_weight=50,size=128");
  EXPECT_EQ(Count(finished, "<img"), 2);
  EXPECT_LT(finished.find("style_weight=50,size=128 01-p0.png"),
            finished.find("style_weight=50,size=128 02-p1.png"));
  EXPECT_NE(finished.find("<b>style_weight=50, size=128</b>"), std::string::npos);
  EXPECT_NE(finished.find("total 12.5 · content 3 · style 4 · tv 0.5"), std::string::npos);
  EXPECT_EQ(finished.find("latest preview"), std::string::npos);
  EXPECT_EQ(Count(Cell(sheet, "candy/style_weight=50,size=64"), "<img"), 3);
  // No final image yet: the latest preview.
  const std::string training = Cell(sheet, "candy/style_weight=5,size=128");
  EXPECT_EQ(Count(training, "<img"), 1);
  EXPECT_NE(training.find("latest preview, step 20"), std::string::npos);
  EXPECT_NE(training.find("total 11 · "), std::string::npos);
  // Neither: said so, losses still shown.
  const std::string bare = Cell(sheet, "candy/style_weight=100,size=128");
  EXPECT_EQ(bare.find("<img"), std::string::npos);
  EXPECT_NE(bare.find("no image yet"), std::string::npos);
  EXPECT_NE(bare.find("total 13 · "), std::string::npos);
  // The sheet comes before the runs' own sections, and its cells link to them.
  EXPECT_LT(html.find("<section id=\"sweep-1-"), html.find("<section id=\"run-1-"));
  EXPECT_NE(finished.find("href=\"#run-"), std::string::npos);
}

// One key: one row, values as numbers (1e-3 < 0.01 < 2).
TEST_F(ReportTest, OneKeySweepIsOneRowInValueOrder) {
  SweepRun("wave", {{"lr", "2"}}, 1, 1);
  SweepRun("wave", {{"lr", "1e-3"}}, 1, 1);
  SweepRun("wave", {{"lr", "0.01"}}, 1, 1);
  const std::string sheet = SweepSection(Page(), 1);
  EXPECT_NE(sheet.find("Columns: lr."), std::string::npos);
  EXPECT_EQ(SheetRows(sheet),
            (std::vector<std::vector<std::string>>{{"wave/lr=1e-3", "wave/lr=0.01", "wave/lr=2"}}));
}

// Three keys: rows are the combinations of the first two (the first slowest),
// columns the third; text values stay in text order.
TEST_F(ReportTest, ThreeKeySweepHasARowPerCombinationOfAllButTheLastKey) {
  for (const std::string a : {"x", "w"}) {
    for (const std::string b : {"2", "1"}) {
      for (const std::string c : {"fp32", "bf16"}) {
        if (a == "x" && b == "2" && c == "bf16") continue;  // not started
        SweepRun("s", {{"a", a}, {"b", b}, {"precision", c}}, 1, 1);
      }
    }
  }
  const std::string sheet = SweepSection(Page(), 1);
  EXPECT_NE(sheet.find("Rows: a, b; columns: precision."), std::string::npos);
  EXPECT_NE(sheet.find("<tr><th>a, b</th><th>precision=bf16</th><th>precision=fp32</th></tr>"),
            std::string::npos);
  EXPECT_EQ(SheetRows(sheet), (std::vector<std::vector<std::string>>{
                                  {"s/a=w,b=1,precision=bf16", "s/a=w,b=1,precision=fp32"},
                                  {"s/a=w,b=2,precision=bf16", "s/a=w,b=2,precision=fp32"},
                                  {"s/a=x,b=1,precision=bf16", "s/a=x,b=1,precision=fp32"},
                                  {"s/a=x,b=2,precision=bf16", "s/a=x,b=2,precision=fp32"}}));
  EXPECT_NE(sheet.find("<tr><th>a=x, b=2</th>"), std::string::npos);
  EXPECT_NE(Cell(sheet, "s/a=x,b=2,precision=bf16").find("not started"), std::string::npos);
}

// The job's own listing orders the values and names combinations no run has
// started, even a value no run has yet.
TEST_F(ReportTest, TheJobsListingOrdersTheSheetAndShowsRunsNotStarted) {
  SweepRun("candy", {{"style_weight", "5"}}, 1, 1);
  SweepRun("candy", {{"style_weight", "500"}}, 1, 1);
  ReportOptions options;
  options.sweep_values["candy"] = {{"style_weight", {"500", "50", "5"}}};
  const std::string sheet = SweepSection(Page(options), 1);
  EXPECT_EQ(SheetRows(sheet),
            (std::vector<std::vector<std::string>>{
                {"candy/style_weight=500", "candy/style_weight=50", "candy/style_weight=5"}}));
  EXPECT_NE(Cell(sheet, "candy/style_weight=50").find("not started"), std::string::npos);
}

// A stylefleet.json whose sweep fields are missing or malformed makes a run
// outside any sweep, never an error; the run is still reported.
TEST_F(ReportTest, MalformedSweepRecordsAreRunsOutsideASweep) {
  const std::vector<std::string> records = {
      "{\"job\": \"j\", \"style\": \"r\", \"sweep\": \"s\"}",
      "{\"job\": \"j\", \"style\": \"r\", \"sweep\": \"s\", \"swept\": \"a=1\"}",
      "{\"job\": \"j\", \"style\": \"r\", \"sweep\": \"s\", \"swept\": [[\"a\", 1]]}",
      "{\"job\": \"j\", \"style\": \"r\", \"sweep\": \"s\", \"swept\": [[\"a\"]]}",
      "{\"job\": \"j\", \"style\": \"r\", \"sweep\": \"s\", \"swept\": [[\"a\", \"1\"], [\"a\", "
      "\"2\"]]}",
      "{\"job\": \"j\", \"style\": \"r\", \"sweep\": \"s\", \"swept\": []}",
      "{\"job\": \"j\", \"style\": \"r\", \"sweep\": 7, \"swept\": [[\"a\", \"1\"]]}",
      "{\"job\": \"j\", \"style\": \"r\", \"sweep\": \"\", \"swept\": [[\"a\", \"1\"]]}",
      "{\"job\": \"j\", \"style\": \"r\", \"sweep\": \"s\", \"swept\": [[\"a\", \"1\"]",
      "[\"not\", \"an object\"]"};
  for (size_t i = 0; i < records.size(); ++i) {
    const fs::path dir = root_ / ("r" + std::to_string(i));
    Write(dir / "stylefleet.json", records[i]);
    Write(dir / "metrics.jsonl", Record(1, 1));
    const RunHistory run = ReadRunHistory(dir.string());
    EXPECT_TRUE(run.sweep.empty()) << records[i];
    EXPECT_TRUE(run.swept.empty()) << records[i];
    EXPECT_FALSE(run.identity_problem.empty()) << records[i];
  }
  const std::string html = Page();
  EXPECT_TRUE(SweepSection(html, 1).empty());
  EXPECT_EQ(Count(html, "<section id=\"run-"), static_cast<int>(records.size()));
  // Each says why it is outside its sweep, rather than its sheet cell just saying "not started".
  EXPECT_EQ(Count(html, "; the run is shown outside any sweep</p>"),
            static_cast<int>(records.size()));
  // The note names the file (a trial had to guess which one).
  EXPECT_EQ(Count(html, "/stylefleet.json: "), static_cast<int>(records.size()));
  // A plain style's record has no sweep fields: nothing to say.
  Write(root_ / "plain" / "stylefleet.json", "{\"job\": \"j\", \"style\": \"plain\"}");
  EXPECT_TRUE(ReadRunHistory((root_ / "plain").string()).identity_problem.empty());
  // The well-formed record next to them.
  SweepRun("s", {{"a", "1"}}, 1, 0);
  const RunHistory good = ReadRunHistory((root_ / "s" / "a=1").string());
  EXPECT_EQ(good.sweep, "s");
  EXPECT_EQ(good.swept, (std::vector<std::pair<std::string, std::string>>{{"a", "1"}}));
  EXPECT_TRUE(good.identity_problem.empty());
}

// Final images are read as training names them, regular files only.
TEST_F(ReportTest, FinalImagesAreTheRegularFilesNamedAsTrainingNamesThem) {
  const fs::path dir = SweepRun("s", {{"a", "1"}}, 1, 2);
  Write(dir / "final" / "notes.png", kPng);
  Write(dir / "final" / "03-x.jpg", "j");
  Write(root_ / "secret.png", kPng + "secret");
  fs::create_symlink(root_ / "secret.png", dir / "final" / "04-link.png");
  const RunHistory run = ReadRunHistory(dir.string());
  EXPECT_EQ(run.final_images, (std::vector<std::string>{(dir / "final" / "01-p0.png").string(),
                                                        (dir / "final" / "02-p1.png").string()}));
}

// With previews off (training.preview_every_steps 0) a finished run still has
// its final images: the overview shows the first of them, not "no preview yet".
TEST_F(ReportTest, TheOverviewShowsAFinalImageOfARunWithoutPreviews) {
  Write(root_ / "wave" / "metrics.jsonl", Record(20, 5));
  Write(root_ / "wave" / "model.pt", "x");
  Write(root_ / "wave" / "final" / "01-p0.png", kPng + "F");
  Write(root_ / "candy" / "metrics.jsonl", Record(10, 5));  // neither: still says so
  const std::string html = Page();
  const size_t start = html.find("<h2>All runs</h2>");
  ASSERT_NE(start, std::string::npos);
  const std::string overview = html.substr(start, html.find("</div>", start) - start);
  EXPECT_EQ(Count(overview, "data:image/png;base64,iVBORw0KGgpG\""), 1) << overview;
  EXPECT_EQ(Count(overview, "no preview yet"), 1) << overview;
}

TEST_F(ReportTest, APipeForTheRunRecordIsNotOpened) {
  fs::create_directories(root_ / "candy");
  Write(root_ / "candy" / "metrics.jsonl", Record(1, 1));
  ASSERT_EQ(mkfifo((root_ / "candy" / "stylefleet.json").c_str(), 0600), 0);
  const RunHistory run = ReadRunHistory((root_ / "candy").string());  // would block on open
  EXPECT_TRUE(run.identity.empty());
  EXPECT_EQ(run.records.size(), 1u);
}

// JSON nested deeper than any record of training is a damaged file, said with
// its name: 400,000 nested lists in stylefleet.json crashed the report, whose
// JSON dump recurses once per level (issue 32).
TEST_F(ReportTest, DeeplyNestedJsonIsADamagedFileNotADeepTree) {
  auto nested = [](size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  Write(root_ / "candy" / "metrics.jsonl",
        Record(1, 1) + "{\"step\":2,\"total_loss\":" + nested(1000) + "}\n" + Record(3, 1));
  Write(root_ / "candy" / "stylefleet.json", "{\"job\": \"j\", \"x\": " + nested(1000) +
                                                 ", \"note\": \"" + std::string(500, '[') + "\"}");
  RunHistory run = ReadRunHistory((root_ / "candy").string());
  ASSERT_NE(run.identity_problem.find("nested"), std::string::npos) << run.identity_problem;
  EXPECT_TRUE(run.identity.empty());
  ASSERT_EQ(run.records.size(), 2u);
  ASSERT_EQ(run.unreadable.size(), 1u);
  EXPECT_NE(run.unreadable[0].find("metrics.jsonl:2 (nested"), std::string::npos)
      << run.unreadable[0];
  // Brackets inside strings are text, not nesting: such a record is read.
  Write(root_ / "wave" / "metrics.jsonl", Record(1, 1));
  Write(root_ / "wave" / "stylefleet.json",
        "{\"job\": \"j\", \"note\": \"" + std::string(5000, '[') + "\\\"]\"}");
  run = ReadRunHistory((root_ / "wave").string());
  EXPECT_EQ(run.identity_problem, "");
  EXPECT_EQ(run.identity["note"], std::string(5000, '[') + "\"]");
  // The nesting of the issue: the page says which file is damaged.
  Write(root_ / "candy" / "stylefleet.json", "{\"x\": " + nested(400000) + "}");
  const std::string html = Page();
  EXPECT_NE(html.find(EscapeXml((root_ / "candy" / "stylefleet.json").string()) + ": nested"),
            std::string::npos);
}

// A sweep of zipped keys has as many runs as values, but a grid of
// values^keys cells: the 5 keys x 64 values built 64^4 rows (85 s,
// 4 GB). Such a sheet lists the runs that exist, one row each, in value order.
TEST_F(ReportTest, ASweepTooLargeForAGridHasOneRowPerRun) {
  const auto zipped = [&](int values) {
    for (int v = values; v >= 1; --v) {
      std::vector<std::pair<std::string, std::string>> swept;
      for (const std::string key : {"a", "b", "c", "d", "e"}) {
        swept.emplace_back(key, std::to_string(v));
      }
      SweepRun("z", swept, 1, 1, false);
    }
  };
  zipped(6);  // 6^5 cells, past the grid's limit
  const std::string sheet = SweepSection(Page(), 1);
  std::vector<std::vector<std::string>> expected;
  for (int v = 1; v <= 6; ++v) {
    const std::string n = std::to_string(v);
    expected.push_back({"z/a=" + n + ",b=" + n + ",c=" + n + ",d=" + n + ",e=" + n});
  }
  EXPECT_EQ(SheetRows(sheet), expected) << sheet;
  EXPECT_EQ(sheet.find("not started"), std::string::npos);
  EXPECT_NE(sheet.find("<tr><th>a=2, b=2, c=2, d=2, e=2</th>"), std::string::npos);
  EXPECT_EQ(Count(Cell(sheet, "z/a=3,b=3,c=3,d=3,e=3"), "<img"), 1);
  // The sweep, in a child with a time and memory limit.
  fs::remove_all(root_ / "z");
  zipped(64);
  EXPECT_TRUE(FinishesInTime([&] { return SheetRows(SweepSection(Page(), 1)).size() == 64; }, 30));
}

// A record with thousands of layer names (the had 200,000: a 43 MB
// page in 22 s) is charted by its first layers, and the page says how many
// others it left out.
TEST_F(ReportTest, StyleLayersAreCappedAndThePageCountsTheOthers) {
  std::string layers;
  for (int i = 0; i < 5000; ++i) {
    char name[16];
    std::snprintf(name, sizeof(name), "L%05d", i);
    layers += std::string(i ? "," : "") + "\"" + name + "\":1";
  }
  Write(root_ / "candy" / "metrics.jsonl",
        "{\"step\":1,\"total_steps\":2,\"style_loss_by_layer\":{" + layers +
            "}}\n{\"step\":2,\"total_steps\":2,\"style_loss_by_layer\":{\"L00000\":2,"
            "\"zz\":3}}\n");
  const RunHistory run = ReadRunHistory((root_ / "candy").string());
  ASSERT_EQ(run.style_layers.size(), kMaxStyleLayers);
  EXPECT_EQ(run.style_layers.front(), "L00000");
  EXPECT_EQ(run.style_layers.back(), "L00015");
  EXPECT_EQ(run.style_layers_left_out, 5000u - kMaxStyleLayers + 1);  // with "zz"
  ASSERT_EQ(run.records.size(), 2u);
  EXPECT_EQ(run.records[0].style_by_layer.size(), kMaxStyleLayers);
  EXPECT_EQ(run.records[1].style_by_layer, (std::map<std::string, double>{{"L00000", 2}}));
  const std::string html = Page();
  EXPECT_LT(html.size(), 100000u);
  EXPECT_NE(html.find("style loss by layer: the first 16 layers only; 4985 other layer name(s) "
                      "in metrics.jsonl left out"),
            std::string::npos);
  EXPECT_EQ(html.find("L00016"), std::string::npos);
}

// The state comes from what the folder records, not from the last metrics
// line: a run resumed with a larger max_steps still says "step 40 of 40"
// until it logs again, and was reported finished while it trained (issue 32).
TEST_F(ReportTest, TheRunStateComesFromTheFolderNotTheLastRecord) {
  const fs::path dir = root_ / "candy";
  Write(dir / "metrics.jsonl", Record(40, 5));  // step 40 of 40
  Write(dir / "settings.json", "{}");
  Write(dir / "checkpoints" / "step-00000040.pt", "c");
  Write(dir / "model.pt", "m");
  Write(dir / "stylefleet.lock", "host h, pid 1");  // left by the run, not held
  // Explicit times: files written at once may share one.
  const auto t0 = fs::last_write_time(dir / "model.pt");
  const auto at = [&](const fs::path& file, int seconds) {
    fs::last_write_time(file, t0 + std::chrono::seconds(seconds));
  };
  at(dir / "settings.json", -3);
  at(dir / "checkpoints" / "step-00000040.pt", -1);
  const auto state = [&] { return ReadRunHistory(dir.string()).state; };
  EXPECT_EQ(state(), RunState::kFinished);
  EXPECT_NE(Page().find("step 40 of 40, finished"), std::string::npos);
  {
    // Resumed: `train` holds the folder's lock while it trains.
    FileLock lock((dir / "stylefleet.lock").string(), "test");
    EXPECT_EQ(state(), RunState::kTraining);
    const std::string html = Page();
    EXPECT_NE(html.find("step 40 of 40, training, ETA 0m 30s"), std::string::npos);
    EXPECT_EQ(html.find("40 of 40, finished"), std::string::npos);
  }
  // Stopped after the new start recorded its settings (and target)...
  at(dir / "settings.json", 1);
  EXPECT_EQ(state(), RunState::kStopped);
  EXPECT_NE(Page().find("step 40 of 40, stopped, not finished"), std::string::npos);
  // ... or after a checkpoint past the model.
  at(dir / "settings.json", -3);
  Write(dir / "checkpoints" / "step-00000045.pt", "c");
  at(dir / "checkpoints" / "step-00000045.pt", 2);
  EXPECT_EQ(state(), RunState::kStopped);
  // The new target reached: a model.pt after both.
  at(dir / "model.pt", 3);
  EXPECT_EQ(state(), RunState::kFinished);
  // A writer's temporary is no checkpoint.
  Write(dir / "checkpoints" / ".step-00000050.pt.tmp", "t");
  at(dir / "checkpoints" / ".step-00000050.pt.tmp", 9);
  EXPECT_EQ(state(), RunState::kFinished);
  // Without settings.json (an older version's folder) the last record must
  // also have reached its total.
  fs::remove(dir / "settings.json");
  EXPECT_EQ(state(), RunState::kFinished);
  Write(dir / "metrics.jsonl", Record(20, 5));
  at(dir / "model.pt", 3);
  EXPECT_EQ(state(), RunState::kStopped);
  // No model.pt: never finished.
  Write(dir / "metrics.jsonl", Record(40, 5));
  fs::remove(dir / "model.pt");
  EXPECT_EQ(state(), RunState::kStopped);
}

}  // namespace
}  // namespace stylefleet
