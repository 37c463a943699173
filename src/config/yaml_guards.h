// Parsing a job file's text into YAML, with guards yaml-cpp lacks: flow
// nesting too deep for its recursion, and a second document it would drop.
// Part of the job loader (src/config), not for use outside it.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>

#include "config/problems.h"

namespace stylefleet::job_loader {

// The document of `text`; a null node, with the problem said, when it is not
// one readable YAML document.
YAML::Node ParseYaml(const std::string& text, Problems& problems);

}  // namespace stylefleet::job_loader
