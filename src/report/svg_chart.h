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

/// `text` with &, <, >, " and ' escaped for HTML/XML text and attributes.
std::string EscapeXml(const std::string& text);

}  // namespace stylefleet
