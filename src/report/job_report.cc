#include "report/job_report.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/writable_file.h"
#include "report/svg_chart.h"

namespace stylefleet {
namespace fs = std::filesystem;
namespace {

// Larger previews are left out (named instead), so that one huge file cannot
// make the page unusable.
constexpr uintmax_t kMaxEmbeddedImageBytes = 8u << 20;
// A small PNG can declare a huge image (a "PNG bomb"): every browser that
// opens the page would decode it. Previews are a few training crops.
constexpr uint64_t kMaxEmbeddedImagePixels = uint64_t{64} << 20;

std::string Base64(const std::string& bytes) {
  static const char* const kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) |
                       (uint32_t(uint8_t(bytes[i + 1])) << 8) | uint32_t(uint8_t(bytes[i + 2]));
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// An <img> with the PNG inline, or a note naming the file when it cannot be.
// Only a regular file (not a link, which could point anywhere, nor a device)
// that starts with the PNG signature goes into a page meant to be passed on.
std::string InlinePng(const std::string& path, const std::string& alt) {
  std::error_code ec;
  if (!fs::is_regular_file(fs::symlink_status(path, ec))) {
    return "<p class=\"note\">" + EscapeXml(path) + " left out (not a regular file)</p>";
  }
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) return "<p class=\"note\">cannot read " + EscapeXml(path) + "</p>";
  if (size > kMaxEmbeddedImageBytes) {
    return "<p class=\"note\">" + EscapeXml(path) + " left out (" + std::to_string(size >> 20) +
           " MiB)</p>";
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (!in && !in.eof()) return "<p class=\"note\">cannot read " + EscapeXml(path) + "</p>";
  static const std::string kPngSignature = "\x89PNG\r\n\x1a\n";
  const std::string& png = bytes.str();
  if (png.compare(0, kPngSignature.size(), kPngSignature) != 0) {
    return "<p class=\"note\">" + EscapeXml(path) + " left out (not a PNG file)</p>";
  }
  // The IHDR chunk (length 13) after the signature gives width and height.
  const auto big_endian = [&](size_t at) {
    uint64_t v = 0;
    for (size_t i = 0; i < 4; ++i) v = (v << 8) | uint8_t(png[at + i]);
    return v;
  };
  const bool has_header =
      png.size() >= 24 && png.compare(8, 8, std::string("\0\0\0\x0dIHDR", 8)) == 0;
  const uint64_t width = has_header ? big_endian(16) : 0, height = has_header ? big_endian(20) : 0;
  if (width * height > kMaxEmbeddedImagePixels) {
    return "<p class=\"note\">" + EscapeXml(path) + " left out (" + std::to_string(width) + "x" +
           std::to_string(height) + " pixels)</p>";
  }
  return "<img alt=\"" + EscapeXml(alt) + "\" src=\"data:image/png;base64," + Base64(bytes.str()) +
         "\">";
}

std::string Number(double value) {
  if (!std::isfinite(value)) return "n/a";
  char text[32];
  std::snprintf(text, sizeof(text), std::fabs(value) >= 1e5 ? "%.3e" : "%.4g", value);
  return text;
}

std::string Duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "n/a";
  char text[32];
  const long s = std::lround(seconds);
  if (s >= 3600) {
    std::snprintf(text, sizeof(text), "%ldh %02ldm", s / 3600, s / 60 % 60);
  } else {
    std::snprintf(text, sizeof(text), "%ldm %02lds", s / 60, s % 60);
  }
  return text;
}

std::string Timestamp(double epoch_seconds) {
  if (!std::isfinite(epoch_seconds) || epoch_seconds <= 0) return "n/a";
  const std::time_t t = static_cast<std::time_t>(epoch_seconds);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char text[40];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S UTC", &utc);
  return text;
}

ChartSeries Series(const std::string& name, const std::vector<HistoryRecord>& records,
                   const std::function<double(const HistoryRecord&)>& value) {
  ChartSeries series{name, {}};
  for (const auto& r : records) series.points.emplace_back(double(r.step), value(r));
  return series;
}

// The last record's step with the run's state (RunState: what the folder
// records, as the last record may be from before a resume with a new target).
std::string Status(const RunHistory& run) {
  std::string status = "no step logged yet";
  if (!run.records.empty()) {
    const HistoryRecord& last = run.records.back();
    status = "step " + std::to_string(last.step);
    if (last.total_steps > 0) status += " of " + std::to_string(last.total_steps);
  }
  switch (run.state) {
    case RunState::kTraining:
      if (run.records.empty()) return status + ", training";
      return status + ", training, ETA " + Duration(run.records.back().eta_seconds) + " at " +
             Timestamp(run.records.back().time);
    case RunState::kFinished:
      return status + ", finished";
    case RunState::kStopped:
      break;
  }
  return status + ", stopped, not finished (the same train command resumes it)";
}

// The previews to show: all when few, else evenly spaced with the first and latest.
std::vector<PreviewImage> PickPreviews(const std::vector<PreviewImage>& all, int limit) {
  if (limit <= 0) return {};
  if (all.size() <= static_cast<size_t>(limit)) return all;
  std::vector<PreviewImage> picked;
  for (int i = 0; i < limit; ++i) {
    const size_t index = limit == 1 ? all.size() - 1
                                    : static_cast<size_t>(std::llround(
                                          double(i) * double(all.size() - 1) / double(limit - 1)));
    if (picked.empty() || picked.back().step != all[index].step) picked.push_back(all[index]);
  }
  return picked;
}

// A page-unique id: the run's position, then its name's ASCII letters and digits.
// Sweeps' ids start with "sweep-" instead, so that they never meet a run's.
std::string Anchor(size_t index, const std::string& name, const std::string& kind = "run") {
  std::string id = kind + "-" + std::to_string(index + 1) + "-";
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    id += u < 128 && std::isalnum(u) ? c : '-';
  }
  return id;
}

void WriteContactSheet(std::ostream& html, const std::vector<RunHistory>& runs) {
  html << "<h2>All runs</h2><p class=\"note\">Each run's latest preview (the validation photos "
          "on top, the run's stylization below) with its latest losses.</p><div class=\"sheet\">";
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunHistory& run = runs[i];
    html << "<figure class=\"cell\"><a href=\"#" << Anchor(i, run.name) << "\">";
    if (!run.previews.empty()) {
      html << InlinePng(run.previews.back().path,
                        run.name + " at step " + std::to_string(run.previews.back().step));
    } else if (!run.final_images.empty()) {
      // Previews may be off; a finished run still shows what it does.
      html << InlinePng(run.final_images.front(), run.name + ", final image");
    } else {
      html << "<p class=\"note\">no preview yet</p>";
    }
    html << "</a><figcaption><b>" << EscapeXml(run.name) << "</b><br>" << EscapeXml(Status(run));
    if (!run.records.empty()) {
      const HistoryRecord& last = run.records.back();
      html << "<br>total " << Number(last.total) << " · content " << Number(last.content)
           << " · style " << Number(last.style) << " · TV " << Number(last.tv);
    }
    html << "</figcaption></figure>";
  }
  html << "</div>";
}

// ---------------------------------------------------------------------------
// Per-sweep contact sheets.

// A grid too large to show whole (many keys, few runs): a list of the runs.
constexpr size_t kMaxSweepCells = 1024;

// "style_weight=50, style_image_size=128"
std::string SweptLabel(const std::vector<std::pair<std::string, std::string>>& swept,
                       const std::string& separator = ", ") {
  std::string label;
  for (const auto& [key, value] : swept)
    label += (label.empty() ? "" : separator) + key + "=" + value;
  return label;
}

bool ParseNumber(const std::string& text, double* value) {
  if (text.empty()) return false;
  char* end = nullptr;
  *value = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() && std::isfinite(*value);
}

// Values in the order the job lists them (those it does not list after them),
// or without a listing numerically when all are numbers, else as text.
std::vector<std::string> OrderValues(const std::set<std::string>& seen,
                                     const std::vector<std::string>* listed) {
  std::vector<std::string> ordered;
  if (listed != nullptr) {
    for (const auto& value : *listed) {
      if (std::find(ordered.begin(), ordered.end(), value) == ordered.end())
        ordered.push_back(value);
    }
  }
  std::vector<std::string> rest;
  for (const auto& value : seen) {
    if (std::find(ordered.begin(), ordered.end(), value) == ordered.end()) rest.push_back(value);
  }
  double unused = 0;
  if (std::all_of(rest.begin(), rest.end(),
                  [&](const std::string& v) { return ParseNumber(v, &unused); })) {
    std::stable_sort(rest.begin(), rest.end(), [](const std::string& a, const std::string& b) {
      double x = 0, y = 0;
      ParseNumber(a, &x);
      ParseNumber(b, &y);
      return x < y;
    });
  }
  ordered.insert(ordered.end(), rest.begin(), rest.end());
  return ordered;
}

// One sweep's runs, placed by their swept values.
struct SweepSheet {
  std::string name;
  std::vector<std::string> keys;                     ///< in the sweep's order
  std::vector<std::vector<std::string>> values;      ///< per key, in display order
  std::map<std::vector<std::string>, size_t> cells;  ///< values in key order -> run index
  std::vector<size_t> unplaced;  ///< runs with other keys, or a second run for one cell
};

std::vector<SweepSheet> BuildSweepSheets(const std::vector<RunHistory>& runs,
                                         const ReportOptions& options) {
  std::map<std::string, SweepSheet> sheets;
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunHistory& run = runs[i];
    if (run.sweep.empty()) continue;
    SweepSheet& sheet = sheets[run.sweep];
    if (sheet.keys.empty()) {
      sheet.name = run.sweep;
      for (const auto& pair : run.swept) sheet.keys.push_back(pair.first);
    }
    std::vector<std::string> keys, values;
    for (const auto& [key, value] : run.swept) {
      keys.push_back(key);
      values.push_back(value);
    }
    if (keys != sheet.keys || !sheet.cells.emplace(values, i).second) sheet.unplaced.push_back(i);
  }
  std::vector<SweepSheet> out;
  for (auto& [name, sheet] : sheets) {
    const auto listing = options.sweep_values.find(name);
    for (size_t k = 0; k < sheet.keys.size(); ++k) {
      std::set<std::string> seen;
      for (const auto& cell : sheet.cells) seen.insert(cell.first[k]);
      const std::vector<std::string>* listed = nullptr;
      if (listing != options.sweep_values.end()) {
        for (const auto& [key, values] : listing->second) {
          if (key == sheet.keys[k]) listed = &values;
        }
      }
      sheet.values.push_back(OrderValues(seen, listed));
    }
    out.push_back(std::move(sheet));
  }
  return out;
}

// Every combination of the values of keys [0, count), the first key slowest.
// Only for grids of at most kMaxSweepCells (GridCells says).
std::vector<std::vector<std::string>> Combinations(const SweepSheet& sheet, size_t count) {
  std::vector<std::vector<std::string>> rows = {{}};
  for (size_t k = 0; k < count; ++k) {
    std::vector<std::vector<std::string>> longer;
    for (const auto& row : rows) {
      for (const auto& value : sheet.values[k]) {
        longer.push_back(row);
        longer.back().push_back(value);
      }
    }
    rows = std::move(longer);
  }
  return rows;
}

// The cells of the sheet's full grid (every combination of every key's
// values), or kMaxSweepCells + 1 when more: counted, never built, as zipped
// keys make a grid of values^keys cells for only `values` runs (issue 32).
size_t GridCells(const SweepSheet& sheet) {
  size_t cells = 1;
  for (const auto& values : sheet.values) {
    if (values.empty()) return 0;
    if (cells > kMaxSweepCells / values.size()) return kMaxSweepCells + 1;
    cells *= values.size();
  }
  return cells;
}

// The sheet's runs' values, in display order: each key's values in the
// sheet's order, the first key slowest.
std::vector<std::vector<std::string>> RunsInOrder(const SweepSheet& sheet) {
  std::vector<std::map<std::string, size_t>> position(sheet.values.size());
  for (size_t k = 0; k < sheet.values.size(); ++k) {
    for (size_t i = 0; i < sheet.values[k].size(); ++i) position[k][sheet.values[k][i]] = i;
  }
  std::vector<std::pair<std::vector<size_t>, std::vector<std::string>>> keyed;
  for (const auto& cell : sheet.cells) {
    std::vector<size_t> order;
    for (size_t k = 0; k < cell.first.size(); ++k) order.push_back(position[k].at(cell.first[k]));
    keyed.emplace_back(std::move(order), cell.first);
  }
  std::sort(keyed.begin(), keyed.end());
  std::vector<std::vector<std::string>> out;
  for (auto& entry : keyed) out.push_back(std::move(entry.second));
  return out;
}

void WriteSweepCell(std::ostream& html, const SweepSheet& sheet,
                    const std::vector<std::string>& values, const std::vector<RunHistory>& runs) {
  std::vector<std::pair<std::string, std::string>> swept;
  for (size_t k = 0; k < sheet.keys.size(); ++k) swept.emplace_back(sheet.keys[k], values[k]);
  const auto found = sheet.cells.find(values);
  if (found == sheet.cells.end()) {
    const std::string name = sheet.name + "/" + SweptLabel(swept, ",");
    html << "<td class=\"missing\" data-run=\"" << EscapeXml(name) << "\"><p class=\"note\">"
         << "not started</p><b>" << EscapeXml(SweptLabel(swept)) << "</b><br><code>"
         << EscapeXml(name) << "</code></td>";
    return;
  }
  const size_t index = found->second;
  const RunHistory& run = runs[index];
  html << "<td class=\"cell\" data-run=\"" << EscapeXml(run.name) << "\"><a href=\"#"
       << Anchor(index, run.name) << "\">";
  if (!run.final_images.empty()) {
    for (const auto& image : run.final_images) {
      html << InlinePng(image, run.name + " " + fs::path(image).filename().string());
    }
  } else if (!run.previews.empty()) {
    html << InlinePng(run.previews.back().path,
                      run.name + " at step " + std::to_string(run.previews.back().step));
  } else {
    html << "<p class=\"note\">no image yet</p>";
  }
  html << "</a>";
  if (run.final_images.empty() && !run.previews.empty()) {
    html << "<div class=\"note\">latest preview, step " << run.previews.back().step << "</div>";
  }
  html << "<div class=\"label\"><b>" << EscapeXml(SweptLabel(run.swept)) << "</b></div>";
  if (run.records.empty()) {
    html << "<div class=\"losses note\">no step logged yet</div>";
  } else {
    const HistoryRecord& last = run.records.back();
    html << "<div class=\"losses\">total " << Number(last.total) << " · content "
         << Number(last.content) << " · style " << Number(last.style) << " · tv " << Number(last.tv)
         << "</div>";
  }
  html << "</td>";
}

void WriteSweepSheet(std::ostream& html, size_t index, const SweepSheet& sheet,
                     const std::vector<RunHistory>& runs) {
  const size_t last = sheet.keys.size() - 1;
  // One key: a single row of its values; more: rows by all keys but the last.
  const size_t row_keys = sheet.keys.size() == 1 ? 0 : last;
  std::string row_title;
  for (size_t k = 0; k < row_keys; ++k) row_title += (k ? ", " : "") + sheet.keys[k];
  html << "<section id=\"" << Anchor(index, sheet.name, "sweep") << "\" class=\"sweep\"><h2>Sweep "
       << EscapeXml(sheet.name) << "</h2><p class=\"note\">";
  if (GridCells(sheet) > kMaxSweepCells) {
    // Too many combinations to show (zipped keys, or a sparse sweep): a list
    // of the runs that exist, one row each, whatever the number of keys.
    std::string keys;
    for (const auto& key : sheet.keys) keys += (keys.empty() ? "" : ", ") + key;
    html << "One row per run, by " << EscapeXml(keys)
         << ": the combinations of the swept values are too many for a grid. Each cell: the "
            "run's final stylizations of the validation photos (its latest preview while it "
            "trains), its swept values and its last losses.</p><table class=\"sweep\"><tr><th>"
            "swept values</th><th>run</th></tr>";
    for (const auto& values : RunsInOrder(sheet)) {
      std::vector<std::pair<std::string, std::string>> swept;
      for (size_t k = 0; k < sheet.keys.size(); ++k) swept.emplace_back(sheet.keys[k], values[k]);
      html << "<tr><th>" << EscapeXml(SweptLabel(swept)) << "</th>";
      WriteSweepCell(html, sheet, values, runs);
      html << "</tr>";
    }
  } else {
    const std::vector<std::vector<std::string>> rows = Combinations(sheet, row_keys);
    const std::vector<std::string>& columns = sheet.values[last];
    html << (row_keys == 0 ? "" : "Rows: " + EscapeXml(row_title) + "; columns: ")
         << (row_keys == 0 ? "Columns: " : "") << EscapeXml(sheet.keys[last])
         << ". Each cell: the run's final stylizations of the validation photos (its latest "
            "preview while it trains), its swept values and its last losses.";
    html << "</p><table class=\"sweep\"><tr><th>" << EscapeXml(row_title) << "</th>";
    for (const auto& column : columns) {
      html << "<th>" << EscapeXml(sheet.keys[last] + "=" + column) << "</th>";
    }
    html << "</tr>";
    for (const auto& row : rows) {
      std::vector<std::pair<std::string, std::string>> row_swept;
      for (size_t k = 0; k < row.size(); ++k) row_swept.emplace_back(sheet.keys[k], row[k]);
      html << "<tr><th>" << EscapeXml(SweptLabel(row_swept)) << "</th>";
      for (const auto& column : columns) {
        std::vector<std::string> values = row;
        values.push_back(column);
        WriteSweepCell(html, sheet, values, runs);
      }
      html << "</tr>";
    }
  }
  html << "</table>";
  if (!sheet.unplaced.empty()) {
    html << "<p class=\"note\">Not placed on the sheet (other swept keys, or a second run with "
            "the same values):";
    for (size_t i : sheet.unplaced) html << " <code>" << EscapeXml(runs[i].name) << "</code>";
    html << "</p>";
  }
  html << "</section>";
}

// A run's loss, throughput and ETA charts, with a note when layers were left out.
void WriteRunCharts(std::ostream& html, const RunHistory& run) {
  const auto& r = run.records;
  html << "<div class=\"charts\">";
  html << LineChartSvg(
      {"total loss", "step", {Series("total", r, [](const HistoryRecord& x) { return x.total; })}});
  html << LineChartSvg({"content loss", "step", {Series("content", r, [](const HistoryRecord& x) {
                          return x.content;
                        })}});
  html << LineChartSvg(
      {"style loss", "step", {Series("style", r, [](const HistoryRecord& x) { return x.style; })}});
  html << LineChartSvg({"total variation loss",
                        "step",
                        {Series("TV", r, [](const HistoryRecord& x) { return x.tv; })}});
  ChartSpec layers{"style loss by layer", "step", {}};
  for (const auto& layer : run.style_layers) {
    layers.series.push_back(Series(layer, r, [&layer](const HistoryRecord& x) {
      const auto it = x.style_by_layer.find(layer);
      return it == x.style_by_layer.end() ? std::nan("") : it->second;
    }));
  }
  html << LineChartSvg(layers);
  ChartSpec speed{
      "throughput (images/s)",
      "step",
      {Series("images/s", r, [](const HistoryRecord& x) { return x.images_per_second; })}};
  speed.log_y_when_useful = false;
  html << LineChartSvg(speed);
  ChartSpec eta{
      "ETA (s)", "step", {Series("ETA", r, [](const HistoryRecord& x) { return x.eta_seconds; })}};
  eta.log_y_when_useful = false;
  html << LineChartSvg(eta);
  html << "</div>";
  if (run.style_layers_left_out > 0) {
    html << "<p class=\"note\">style loss by layer: the first " << run.style_layers.size()
         << " layers only; " << run.style_layers_left_out
         << " other layer name(s) in metrics.jsonl left out</p>";
  }
}

void WriteRun(std::ostream& html, size_t index, const RunHistory& run,
              const ReportOptions& options) {
  html << "<section id=\"" << Anchor(index, run.name) << "\"><h2>" << EscapeXml(run.name)
       << "</h2><p>" << EscapeXml(Status(run)) << " · folder <code>" << EscapeXml(run.dir)
       << "</code>";
  if (!run.sweep.empty()) {
    html << " · sweep " << EscapeXml(run.sweep) << " (" << EscapeXml(SweptLabel(run.swept)) << ")";
  }
  for (const auto& [key, value] : run.identity) {
    if (key != "job" && key != "style" && key != "sweep" && key != "swept") {
      html << " · " << EscapeXml(key) << " " << EscapeXml(value);
    }
  }
  html << "</p>";
  if (!run.identity_problem.empty()) {
    html << "<p class=\"note\">" << EscapeXml((fs::path(run.dir) / "stylefleet.json").string())
         << ": " << EscapeXml(run.identity_problem) << "; the run is shown outside any sweep</p>";
  }
  if (!run.unreadable.empty()) {
    html << "<p class=\"note\">skipped " << run.unreadable.size()
         << " line(s) of metrics.jsonl that are not whole records (a record being written, or a "
            "damaged file): "
         << EscapeXml(run.unreadable.front()) << (run.unreadable.size() > 1 ? ", ..." : "")
         << "</p>";
  }
  WriteRunCharts(html, run);
  const auto previews = PickPreviews(run.previews, options.max_previews_per_run);
  if (!previews.empty()) {
    html << "<h3>Previews</h3>";
    if (previews.size() < run.previews.size()) {
      html << "<p class=\"note\">" << previews.size() << " of " << run.previews.size()
           << " previews, evenly spaced</p>";
    }
    html << "<div class=\"strip\">";
    for (const auto& preview : previews) {
      html << "<figure>"
           << InlinePng(preview.path, run.name + " at step " + std::to_string(preview.step))
           << "<figcaption>step " << preview.step << "</figcaption></figure>";
    }
    html << "</div>";
  }
  html << "</section>";
}

constexpr const char* kStyleSheet =
    "body{font:14px/1.4 sans-serif;margin:24px;color:#222;background:#fff}"
    "h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}"
    "h3{font-size:15px}code{font-size:12px}.note{color:#666;font-size:12px}"
    ".charts{display:flex;flex-wrap:wrap;gap:8px}"
    ".chart{background:#fafafa}.chart .title{font-size:13px;font-weight:bold}"
    ".chart .tick,.chart .legend{font-size:10px;fill:#444}.chart .empty{fill:#888}"
    ".chart .frame{fill:none;stroke:#bbb}.chart .grid{stroke:#e4e4e4}"
    ".sheet{display:flex;flex-wrap:wrap;gap:12px}.cell{margin:0;max-width:420px}"
    ".cell img{max-width:420px;image-rendering:pixelated}"
    ".strip{display:flex;flex-wrap:wrap;gap:8px}.strip figure{margin:0}"
    ".strip img{max-width:300px;image-rendering:pixelated}"
    "figcaption{font-size:12px}"
    "table.sweep{border-collapse:collapse}table.sweep th,table.sweep td{border:1px solid #ddd;"
    "padding:4px;vertical-align:top;font-size:12px}table.sweep th{background:#f4f4f4}"
    "table.sweep img{max-width:160px;margin:1px;image-rendering:pixelated}"
    "td.missing{background:#fafafa;color:#888}";

constexpr const char* kPageStart =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>";

// The page replaces only an earlier report: never a model, a job file, a link
// or a device given to --output by mistake.
void RefuseToReplaceOtherFiles(const fs::path& output) {
  std::error_code ec;
  const fs::file_status status = fs::symlink_status(output, ec);
  if (!fs::exists(status)) return;
  if (fs::is_regular_file(status)) {
    std::ifstream in(output, std::ios::binary);
    std::string head(std::strlen(kPageStart) + 64, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    head.resize(static_cast<size_t>(in.gcount()));
    if (head.rfind(std::string(kPageStart) + "stylefleet report", 0) == 0) return;
  }
  throw Error(output.string() +
              " exists and is not a stylefleet report: not replacing it (choose another --output, "
              "or remove it first)");
}

}  // namespace

std::string JobReportHtml(const std::vector<RunHistory>& runs, const std::string& title,
                          const ReportOptions& options) {
  std::ostringstream html;
  html << kPageStart << EscapeXml(title) << "</title><style>" << kStyleSheet
       << "</style></head><body><h1>" << EscapeXml(title) << "</h1><p class=\"note\">Written "
       << Timestamp(
              std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                  .count())
       << " from <code>" << EscapeXml(options.job_dir) << "</code>: " << runs.size()
       << " run(s). Runs still training show their state at that moment; run "
          "<code>stylefleet report</code> again to refresh.</p>";
  WriteContactSheet(html, runs);
  const std::vector<SweepSheet> sheets = BuildSweepSheets(runs, options);
  for (size_t i = 0; i < sheets.size(); ++i) WriteSweepSheet(html, i, sheets[i], runs);
  for (size_t i = 0; i < runs.size(); ++i) WriteRun(html, i, runs[i], options);
  html << "</body></html>\n";
  return html.str();
}

std::string WriteJobReport(const ReportOptions& options) {
  std::error_code ec;
  std::vector<RunHistory> outside;
  for (const auto& [name, folder] : options.outside_runs) {
    if (!fs::is_directory(folder, ec)) continue;  // not started yet
    outside.push_back(ReadRunHistory(folder));
    outside.back().name = name;
  }
  std::vector<RunHistory> runs;
  try {
    runs = ReadJobHistory(options.job_dir);
  } catch (const DataError&) {
    if (outside.empty()) throw;  // nothing anywhere: say why for the job's folder
  }
  runs.insert(runs.end(), outside.begin(), outside.end());
  const fs::path output =
      options.output.empty() ? fs::path(options.job_dir) / "report.html" : fs::path(options.output);
  std::string job = options.job_name.empty()
                        ? fs::path(options.job_dir).lexically_normal().filename().string()
                        : options.job_name;
  if (job.empty()) {
    job = fs::path(options.job_dir).lexically_normal().parent_path().filename().string();
  }
  const std::string html = JobReportHtml(runs, "stylefleet report: " + job, options);
  RefuseToReplaceOtherFiles(output);
  ReplaceFileDurably(output.string(), html);
  return output.string();
}

}  // namespace stylefleet
