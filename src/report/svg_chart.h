// Line charts as standalone SVG text, for reports that must open without any
// network access or script.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace stylefleet {

struct ChartSeries {
  std::string name;
  /// (x, y) points in x order; a non-finite y breaks the line (a gap).
  std::vector<std::pair<double, double>> points;
};

struct ChartSpec {
  std::string title;
  std::string x_label = "step";
  std::vector<ChartSeries> series;
  /// Logarithmic y axis when every finite value is positive and they span
  /// more than a factor of 20 (the title then says "log scale").
  bool log_y_when_useful = true;
  int width = 380;
  int height = 210;
};

/// An <svg> element with axes, ticks, one polyline per series (a dot for a
/// single point), a legend, and "no data" when no series has a finite point.
/// Text is XML-escaped.
std::string LineChartSvg(const ChartSpec& spec);

/// About `count` round tick values (1, 2 or 5 times a power of ten apart)
/// covering [low, high], in increasing order. At most a few more than `count`
/// for any input: none when a bound is not finite or low > high, `low` alone
/// when low == high, and the bounds themselves when no round step fits between
/// them.
std::vector<double> LinearTicks(double low, double high, int count);

/// `text` with &, <, >, " and ' escaped for HTML/XML text and attributes.
std::string EscapeXml(const std::string& text);

}  // namespace stylefleet
