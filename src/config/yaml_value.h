// One YAML value being read into a typed field: the readers for each type of
// key, which report a wrong value as a problem at its position and leave the
// field at its default.
// Part of the job loader (src/config), not for use outside it.
#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "common/vgg_layers.h"
#include "config/problems.h"

namespace stylefleet::job_loader {

// A value being read: the node, the dotted key path for messages, and the sink.
struct Value {
  const YAML::Node& node;
  std::string path;  // e.g. training.batch_size
  Problems& problems;
  // Command-line overrides have no position in a file.
  std::string override_text;
  // Where the value's key is: a blank value (`key:` and nothing after it) has
  // no position of its own, and yaml-cpp marks it at the next token, which may
  // be lines further down.
  YAML::Mark key_mark = YAML::Mark::null_mark();

  void Fail(const std::string& message) const {
    problems.MarkUnread(path);
    if (!override_text.empty()) {
      problems.Add("command line (--set " + override_text + "): " + path + ": " + message);
    } else {
      const bool blank = node.IsNull() && !key_mark.is_null();
      problems.At(blank ? key_mark : node.Mark(), path + ": " + message);
    }
  }

  std::string Describe() const {
    switch (node.Type()) {
      case YAML::NodeType::Null:
        return "nothing";
      case YAML::NodeType::Sequence:
        return "a list";
      case YAML::NodeType::Map:
        return "a mapping";
      case YAML::NodeType::Scalar:
        return node.Tag() == "!" ? "the string \"" + node.Scalar() + "\""
                                 : "'" + node.Scalar() + "'";
      default:
        return "an undefined value";
    }
  }

  // A plain (unquoted) scalar; quoted values are strings, never numbers.
  bool PlainScalar() const { return node.IsScalar() && node.Tag() != "!"; }

  bool ReadString(std::string* out) const {
    if (!node.IsScalar() || node.Scalar().empty()) {
      Fail("expected a non-empty string, got " + Describe());
      return false;
    }
    *out = node.Scalar();
    return true;
  }

  // One of `choices`; otherwise the message lists them.
  bool ReadChoice(std::string* out, const std::vector<std::string>& choices) const {
    const std::string text = node.IsScalar() ? node.Scalar() : "";
    if (std::find(choices.begin(), choices.end(), text) == choices.end()) {
      std::string expected;
      for (size_t i = 0; i < choices.size(); ++i) {
        expected += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + choices[i];
      }
      Fail("expected " + expected + ", got " + (node.IsScalar() ? "'" + text + "'" : Describe()));
      return false;
    }
    *out = text;
    return true;
  }

  template <typename Int>
  bool ReadInt(Int* out, long long min, long long max) const {
    if (!PlainScalar()) {
      Fail("expected an integer, got " + Describe());
      return false;
    }
    const std::string& text = node.Scalar();
    errno = 0;
    char* end = nullptr;
    const long long value = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE) {
      Fail("expected an integer, got " + Describe());
      return false;
    }
    if (value < min || value > max) {
      Fail("must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
           text);
      return false;
    }
    *out = static_cast<Int>(value);
    return true;
  }

  bool ReadDouble(double* out, double min, double max, bool min_exclusive = false) const {
    if (!PlainScalar()) {
      Fail("expected a number, got " + Describe());
      return false;
    }
    const std::string& text = node.Scalar();
    double value = 0;
    const std::string lower = [&] {
      std::string s = text;
      std::transform(s.begin(), s.end(), s.begin(), ::tolower);
      return s;
    }();
    if (lower == ".nan" || lower == "nan") {
      value = std::nan("");
    } else if (lower == ".inf" || lower == "+.inf" || lower == "inf") {
      value = HUGE_VAL;
    } else if (lower == "-.inf" || lower == "-inf") {
      value = -HUGE_VAL;
    } else {
      char* end = nullptr;
      value = std::strtod(text.c_str(), &end);
      if (text.empty() || end != text.c_str() + text.size()) {
        Fail("expected a number, got " + Describe());
        return false;
      }
    }
    if (!std::isfinite(value)) {
      Fail("must be a finite number, got " + text);
      return false;
    }
    if (value < min || value > max || (min_exclusive && value == min)) {
      std::ostringstream range;
      range << "must be " << (min_exclusive ? "> " : ">= ") << min << " and <= " << max << ", got "
            << text;
      Fail(range.str());
      return false;
    }
    *out = value;
    return true;
  }

  bool ReadBool(bool* out) const {
    const std::string text = PlainScalar() ? node.Scalar() : "";
    if (text != "true" && text != "false") {
      Fail("expected true or false, got " + Describe());
      return false;
    }
    *out = text == "true";
    return true;
  }

  // A list of at most `max` distinct non-empty strings (paths, resolved by the caller).
  bool ReadStringList(std::vector<std::string>* out, size_t max) const {
    if (!node.IsSequence()) {
      Fail("expected a list of paths, got " + Describe());
      return false;
    }
    if (node.size() > max) {
      Fail("at most " + std::to_string(max) + " entries, got " + std::to_string(node.size()));
      return false;
    }
    std::vector<std::string> values;
    bool ok = true;
    for (size_t i = 0; i < node.size(); ++i) {
      const YAML::Node item = node[i];
      Value element{item, path + "[" + std::to_string(i) + "]", problems, override_text};
      std::string value;
      if (!element.ReadString(&value)) {
        ok = false;
      } else if (std::find(values.begin(), values.end(), value) != values.end()) {
        element.Fail("'" + value + "' is listed twice");
        ok = false;
      } else {
        values.push_back(value);
      }
    }
    if (ok) *out = values;
    return ok;
  }

  bool ReadLayers(std::vector<std::string>* out) const {
    if (!node.IsSequence() || node.size() == 0) {
      Fail("expected a non-empty list of VGG-16 layer names, got " +
           (node.IsSequence() ? std::string("an empty list") : Describe()));
      return false;
    }
    std::vector<std::string> layers;
    bool ok = true;
    for (size_t i = 0; i < node.size() && i < 64; ++i) {
      const YAML::Node item = node[i];
      Value element{item, path + "[" + std::to_string(i) + "]", problems, override_text};
      std::string name;
      if (!element.ReadString(&name)) {
        ok = false;
        continue;
      }
      const auto index = VggLayerIndex(name);
      if (!index) {
        element.Fail("unknown layer '" + name + "'; valid layers are " + VggLayerNameList() +
                     " (also written relu3_3 or vgg_16/conv3/conv3_3)");
        ok = false;
        continue;
      }
      const std::string& canonical = VggLayerNames()[*index];
      if (std::find(layers.begin(), layers.end(), canonical) != layers.end()) {
        element.Fail("layer '" + name + "' is listed twice");
        ok = false;
        continue;
      }
      layers.push_back(canonical);
    }
    if (node.size() > 64) {
      Fail("too many layers");
      ok = false;
    }
    if (ok) *out = layers;
    return ok;
  }
};

}  // namespace stylefleet::job_loader
