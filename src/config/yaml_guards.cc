#include "config/yaml_guards.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/fnv1a.h"
#include "common/utf8.h"
#include "common/vgg_layers.h"

namespace stylefleet::job_loader {
namespace fs = std::filesystem;

namespace {

// yaml-cpp recurses once per level of flow nesting and gives up past its limit
// with "bad file": say what is wrong instead. Returns the 0-based offset where
// the nesting first exceeds kMaxNesting, or npos.
constexpr int kMaxNesting = 256;
size_t ExcessiveNesting(const std::string& text) {
  int depth = 0;
  char quote = 0;
  bool comment = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (comment) {
      comment = c != '\n';
    } else if (quote != 0) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '#') {
      comment = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxNesting) return i;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return std::string::npos;
}

// Where the first thing of a document after the first is (null when none
// holds anything). Read as parser events, never as nodes, and at most
// kMaxDocuments of them: yaml-cpp 0.7's LoadAll never returns on some inputs
// (", x" yields empty documents without end; found by the fuzzer).
YAML::Mark SecondDocumentContent(const std::string& text) {
  class FirstContent : public YAML::EventHandler {
   public:
    int documents = 0;
    YAML::Mark found = YAML::Mark::null_mark();

   private:
    void Content(const YAML::Mark& mark) {
      if (documents > 1 && found.is_null()) found = mark;
    }
    void OnDocumentStart(const YAML::Mark&) override { ++documents; }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Content(mark); }
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  const std::string&) override {
      Content(mark);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {
      Content(mark);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {
      Content(mark);
    }
    void OnMapEnd() override {}
  };
  constexpr int kMaxDocuments = 64;
  std::istringstream in(text);
  YAML::Parser parser(in);
  FirstContent handler;
  for (int i = 0; i < kMaxDocuments && handler.found.is_null(); ++i) {
    if (!parser.HandleNextDocument(handler)) break;
  }
  return handler.found;
}

}  // namespace

YAML::Node ParseYaml(const std::string& text, Problems& problems) {
  const size_t deep = ExcessiveNesting(text);
  if (deep != std::string::npos) {
    const size_t line_start = text.rfind('\n', deep);
    YAML::Mark mark;
    mark.line = static_cast<int>(std::count(text.begin(), text.begin() + deep, '\n'));
    mark.column = static_cast<int>(line_start == std::string::npos ? deep : deep - line_start - 1);
    problems.At(mark, "lists and mappings are nested more than " + std::to_string(kMaxNesting) +
                          " levels deep here; a job file never needs that (is it a job file?)");
    return YAML::Node();
  }
  try {
    YAML::Node document = YAML::Load(text);
    // A second document would otherwise be dropped without a word (a job
    // pasted after another, say); an empty one after '---' changes nothing.
    const YAML::Mark second = SecondDocumentContent(text);
    if (!second.is_null()) {
      problems.At(second,
                  "a second YAML document starts here (after '---'); a job file holds one job: "
                  "split it into two files, or remove the '---' line");
      return YAML::Node();
    }
    return document;
  } catch (const YAML::ParserException& e) {
    problems.At(e.mark, "YAML syntax error: " + e.msg);
  } catch (const YAML::Exception& e) {
    problems.At(e.mark, "YAML error: " + e.msg);
  }
  return YAML::Node();
}

}  // namespace stylefleet::job_loader
