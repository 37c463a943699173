#include "report/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include "common/utf8.h"

namespace stylefleet {
namespace {

// Colours that stay apart for the common colour-vision deficiencies.
constexpr const char* kPalette[] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7",
                                    "#e69f00", "#56b4e9", "#000000", "#f0e442"};

std::string Format(double value) {
  char text[32];
  const double magnitude = std::fabs(value);
  if (value == 0) return "0";
  if (magnitude >= 1e6 || magnitude < 1e-3) {
    std::snprintf(text, sizeof(text), "%.1e", value);
  } else {
    std::snprintf(text, sizeof(text), "%.6g", value);
  }
  return text;
}

}  // namespace

std::vector<double> LinearTicks(double low, double high, int count) {
  if (!std::isfinite(low) || !std::isfinite(high) || low > high || count < 1) return {};
  if (low == high) return {low};
  // Divided before subtracting: high - low overflows for bounds near ±max.
  const double raw = high / count - low / count;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  double step = power;
  for (double factor : {1.0, 2.0, 5.0, 10.0}) {
    step = factor * power;
    if (step >= raw) break;
  }
  // A span of subnormals has no round step (its power of ten underflows).
  if (!(step > 0) || !std::isfinite(step)) return {low, high};
  // Each tick is its index times the step, never a running sum: where the
  // step is below the values' ulp, adding it leaves the sum where it was, and
  // a loop until the sum passes `high` never ended (issue 32). The indices are
  // about `count` apart whatever the values, so the loop is short.
  const double first = std::ceil(low / step), last = std::floor(high / step + 1e-9);
  std::vector<double> ticks;
  for (double i = 0; first + i <= last && i <= count + 1; ++i) {
    double t = (first + i) * step;
    if (std::fabs(t) < step * 1e-9) t = 0.0;
    // Rounding may put a tick a hair outside the range or onto the last one.
    t = std::clamp(t, low, high);
    if (ticks.empty() || t > ticks.back()) ticks.push_back(t);
  }
  if (ticks.empty()) return {low, high};
  return ticks;
}

std::string EscapeXml(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (static_cast<unsigned char>(c) >= 0x80) {
      // Names come from the file system: bytes that are not UTF-8 become
      // U+FFFD, so the page stays valid in the encoding it declares.
      const size_t length = Utf8Length(text, i);
      if (length == 0) {
        out += "\xef\xbf\xbd";
      } else {
        out.append(text, i, length);
        i += length - 1;
      }
      continue;
    }
    if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n') {
      out += "\xef\xbf\xbd";  // control characters are not allowed in XML
      continue;
    }
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

// Where a chart's plot area lies and how data maps onto it.
struct ChartFrame {
  double left = 62, right = 12, top = 24, bottom = 34;
  double plot_w = 0, plot_h = 0;
  double x_min = 0, x_max = 0;
  double lo = 0, hi = 0;  ///< the y axis, in log10 on a log axis
  bool log_y = false;

  double Transform(double y) const { return log_y ? std::log10(y) : y; }
  double Px(double x) const { return left + (x - x_min) / (x_max - x_min) * plot_w; }
  double Py(double y) const { return top + (hi - Transform(y)) / (hi - lo) * plot_h; }
};

// The frame of `spec`: the finite points' range, padded; false when there are none.
bool FrameOf(const ChartSpec& spec, ChartFrame* f) {
  f->plot_w = spec.width - f->left - f->right;
  f->plot_h = spec.height - f->top - f->bottom;
  double x_min = std::numeric_limits<double>::infinity(), x_max = -x_min;
  double y_min = x_min, y_max = -x_min;
  for (const auto& series : spec.series) {
    for (const auto& [x, y] : series.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      x_min = std::min(x_min, x);
      x_max = std::max(x_max, x);
      y_min = std::min(y_min, y);
      y_max = std::max(y_max, y);
    }
  }
  if (!std::isfinite(x_min)) return false;
  f->log_y = spec.log_y_when_useful && y_min > 0 && y_max / y_min > 20;
  f->x_min = x_max == x_min ? x_min - 1 : x_min;
  f->x_max = x_max == x_min ? x_max + 1 : x_max;
  f->lo = f->Transform(y_min);
  f->hi = f->Transform(y_max);
  if (f->hi == f->lo) {
    const double pad = f->lo == 0 ? 1 : std::fabs(f->lo) * 0.1;
    f->lo -= pad;
    f->hi += pad;
  } else if (!f->log_y) {
    const double pad = (f->hi - f->lo) * 0.05;
    f->lo -= pad;
    f->hi += pad;
  }
  return true;
}

// The y ticks: powers of ten on a log axis (with 2 and 5 times each when the
// axis spans few decades), round numbers otherwise.
std::vector<double> YTicks(const ChartFrame& f) {
  if (!f.log_y) return LinearTicks(f.lo, f.hi, 4);
  std::vector<double> ticks;
  const bool fine = f.hi - f.lo < 3;
  for (double e = std::floor(f.lo); e <= std::ceil(f.hi); e += 1) {
    for (double m : {1.0, 2.0, 5.0}) {
      if (m != 1.0 && !fine) continue;
      const double v = m * std::pow(10, e);
      if (std::log10(v) >= f.lo - 1e-9 && std::log10(v) <= f.hi + 1e-9) ticks.push_back(v);
    }
  }
  return ticks;
}

// The frame, its grid and ticks, and the x axis label.
void WriteAxes(const ChartSpec& spec, const ChartFrame& f, std::ostringstream& svg) {
  svg << "<rect x=\"" << f.left << "\" y=\"" << f.top << "\" width=\"" << f.plot_w << "\" height=\""
      << f.plot_h << "\" class=\"frame\"/>";
  for (double t : YTicks(f)) {
    const double y = f.Py(t);
    if (y < f.top - 0.5 || y > f.top + f.plot_h + 0.5) continue;
    svg << "<line x1=\"" << f.left << "\" x2=\"" << f.left + f.plot_w << "\" y1=\"" << y
        << "\" y2=\"" << y << "\" class=\"grid\"/><text x=\"" << f.left - 4 << "\" y=\"" << y + 4
        << "\" text-anchor=\"end\" class=\"tick\">" << Format(t) << "</text>";
  }
  for (double t : LinearTicks(f.x_min, f.x_max, 4)) {
    svg << "<text x=\"" << f.Px(t) << "\" y=\"" << f.top + f.plot_h + 14
        << "\" text-anchor=\"middle\" class=\"tick\">" << Format(t) << "</text>";
  }
  svg << "<text x=\"" << f.left + f.plot_w / 2 << "\" y=\"" << spec.height - 4
      << "\" text-anchor=\"middle\" class=\"tick\">" << EscapeXml(spec.x_label) << "</text>";
}

// Series `s` of `spec`: its lines (broken at points that cannot be drawn), and
// its legend entry when there are several.
void WriteSeries(const ChartSpec& spec, size_t s, const ChartFrame& f, std::ostringstream& svg) {
  const auto& series = spec.series[s];
  const char* colour = kPalette[s % (sizeof(kPalette) / sizeof(kPalette[0]))];
  // At most ~2000 points per line (every k-th and the last): a page of a
  // long run stays small, and a line of more points than pixels looks the same.
  const size_t stride = series.points.size() / 2000 + 1;
  std::vector<std::vector<std::pair<double, double>>> runs(1);
  for (size_t p = 0; p < series.points.size(); ++p) {
    if (p % stride != 0 && p + 1 != series.points.size()) continue;
    const auto& [x, y] = series.points[p];
    if (!std::isfinite(x) || !std::isfinite(y) || (f.log_y && y <= 0)) {
      if (!runs.back().empty()) runs.emplace_back();
      continue;
    }
    runs.back().emplace_back(f.Px(x), f.Py(y));
  }
  svg << "<g class=\"series\"><title>" << EscapeXml(series.name) << "</title>";
  for (const auto& run : runs) {
    if (run.size() == 1) {
      svg << "<circle cx=\"" << run[0].first << "\" cy=\"" << run[0].second
          << "\" r=\"2.5\" fill=\"" << colour << "\"/>";
    } else if (run.size() > 1) {
      svg << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"1.6\" points=\"";
      for (const auto& [x, y] : run) svg << x << "," << y << " ";
      svg << "\"/>";
    }
  }
  svg << "</g>";
  if (spec.series.size() > 1) {
    const double ly = f.top + 10 + 12 * static_cast<double>(s);
    svg << "<rect x=\"" << f.left + f.plot_w - 96 << "\" y=\"" << ly - 7
        << "\" width=\"8\" height=\"8\" fill=\"" << colour << "\"/><text x=\""
        << f.left + f.plot_w - 84 << "\" y=\"" << ly << "\" class=\"legend\">"
        << EscapeXml(series.name) << "</text>";
  }
}

}  // namespace

std::string LineChartSvg(const ChartSpec& spec) {
  ChartFrame frame;
  const bool has_data = FrameOf(spec, &frame);
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"" << spec.width
      << "\" height=\"" << spec.height << "\" viewBox=\"0 0 " << spec.width << " " << spec.height
      << "\" role=\"img\" aria-label=\"" << EscapeXml(spec.title) << "\">";
  svg << "<text x=\"" << frame.left << "\" y=\"15\" class=\"title\">" << EscapeXml(spec.title)
      << (frame.log_y ? " (log scale)" : "") << "</text>";
  if (!has_data) {
    svg << "<text x=\"" << spec.width / 2 << "\" y=\"" << spec.height / 2
        << "\" text-anchor=\"middle\" class=\"empty\">no data yet</text></svg>";
    return svg.str();
  }
  WriteAxes(spec, frame, svg);
  for (size_t s = 0; s < spec.series.size(); ++s) WriteSeries(spec, s, frame, svg);
  svg << "</svg>";
  return svg.str();
}

}  // namespace stylefleet
