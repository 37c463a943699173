#include "train/style_schedule.h"

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/log.h"
#include "config/job_settings.h"

namespace stylefleet {

namespace fs = std::filesystem;

StyleSchedule PlanStyles(int styles, int world, int ranks_per_style) {
  SF_CHECK(styles >= 1 && world >= 1, "empty schedule");
  // A `train` run plans once (cli_test counts these lines).
  SF_LOG(kDebug) << "planning " << styles << " run(s) over " << world << " rank(s)";
  StyleSchedule plan;
  plan.world = world;
  if (ranks_per_style > 0) {
    if (world % ranks_per_style != 0) {
      throw ConfigError({"distributed.ranks_per_style: " + std::to_string(ranks_per_style) +
                         " does not divide the " + std::to_string(world) +
                         " ranks of this launch"});
    }
    plan.ranks_per_group = ranks_per_style;
    plan.groups = world / ranks_per_style;
  } else {
    plan.groups = 1;
    for (int g = std::min(styles, world); g >= 1; --g) {
      if (world % g == 0) {
        plan.groups = g;
        break;
      }
    }
    plan.ranks_per_group = world / plan.groups;
  }
  plan.styles_of_group.resize(static_cast<size_t>(plan.groups));
  for (int s = 0; s < styles; ++s)
    plan.styles_of_group[static_cast<size_t>(s % plan.groups)].push_back(s);
  return plan;
}

std::vector<std::vector<int>> GroupPasses(const std::vector<const StyleSpec*>& styles,
                                          const std::vector<int>& group_styles,
                                          int styles_at_once) {
  std::vector<std::vector<int>> passes;
  for (int index : group_styles) {
    const StyleSpec& style = *styles[static_cast<size_t>(index)];
    const StyleSpec* last =
        passes.empty() ? nullptr : styles[static_cast<size_t>(passes.back().front())];
    // 0: runs of one sweep together, up to kAutoStylesAtOnce; other styles alone.
    const bool fits =
        last != nullptr &&
        (styles_at_once > 0 ? static_cast<int>(passes.back().size()) < styles_at_once
                            : !style.sweep.empty() && style.sweep == last->sweep &&
                                  static_cast<int>(passes.back().size()) < kAutoStylesAtOnce);
    if (fits && CanShareTrainingPass(last->training, style.training)) {
      passes.back().push_back(index);
    } else {
      passes.push_back({index});
    }
  }
  return passes;
}

std::string DescribeRanks(const std::vector<int>& ranks) {
  std::string out;
  for (size_t i = 0; i < ranks.size();) {
    size_t last = i;
    while (last + 1 < ranks.size() && ranks[last + 1] == ranks[last] + 1) ++last;
    out += (out.empty() ? "" : ", ") + std::to_string(ranks[i]);
    if (last > i) out += "-" + std::to_string(ranks[last]);
    i = last + 1;
  }
  return out;
}

namespace {

// Hosts in order of their first rank in [first, end), for a group's line.
std::string HostsOf(const std::vector<std::string>& rank_hosts, int first, int end) {
  std::string out;
  std::set<std::string> seen;
  for (int r = first; r < end; ++r) {
    const std::string& host = rank_hosts[static_cast<size_t>(r)];
    if (seen.insert(host).second) out += (out.empty() ? "" : ", ") + host;
  }
  return out;
}

}  // namespace

std::string DescribeRankHosts(const std::vector<std::string>& rank_hosts) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<int>> ranks_of;
  for (size_t r = 0; r < rank_hosts.size(); ++r) {
    auto& ranks = ranks_of[rank_hosts[r]];
    if (ranks.empty()) order.push_back(rank_hosts[r]);
    ranks.push_back(static_cast<int>(r));
  }
  std::string out = "  " + std::to_string(order.size()) + " host(s):";
  for (size_t h = 0; h < order.size(); ++h) {
    out += (h ? ", " : " ") + order[h] + " (rank" + (ranks_of[order[h]].size() > 1 ? "s " : " ") +
           DescribeRanks(ranks_of[order[h]]) + ")";
  }
  return out + "\n";
}

namespace {

constexpr int64_t kMostRanks = 1 << 20;

// A hostfile name as Open MPI names the node (and MPI_Get_processor_name says
// it): the domain dropped from a DNS name, localhost as this machine.
std::string NodeName(const std::string& name) {
  if (name == "localhost" || name == "127.0.0.1") {
    char host[256] = {};
    if (gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0') return NodeName(host);
    return name;
  }
  const bool address = name.find_first_not_of("0123456789.") == std::string::npos ||
                       name.find(':') != std::string::npos;
  return address ? name : name.substr(0, name.find('.'));
}

// -1 unless `text` is a whole number 0..kMostRanks.
int64_t Count(const std::string& text) {
  if (text.empty() || text.size() > 9 ||
      text.find_first_not_of("0123456789") != std::string::npos) {
    return -1;
  }
  const int64_t value = std::stoll(text);
  return value <= kMostRanks ? value : -1;
}

}  // namespace

namespace {

// At most this much of a word from the file goes into a message.
std::string Quoted(const std::string& word) {
  return "'" + (word.size() > 60 ? word.substr(0, 60) + "..." : word) + "'";
}

// What one host's lines said.
struct HostLines {
  int bare_lines = 0;  // lines with neither slots= nor max_slots=
  int64_t slots = -1;  // from slots= (or max_slots= alone)
  int slots_line = 0;  // the line that gave it
  int first_line = 0;  // where the host first appears
};

}  // namespace

namespace {

// One line of a hostfile, without its comment: the node it names ("" for a
// blank line) and its slots (-1: none given). `where` starts each message.
std::pair<std::string, int64_t> ReadHostfileLine(std::string line, const std::string& where) {
  // Open MPI 4.1's hostfile words (its lexer): the slot count and its synonyms, the maximum
  // and its synonyms, and words that do not change where ranks go.
  static const std::set<std::string> slot_words = {"slots", "cpu", "count"};
  static const std::set<std::string> max_words = {"max_slots", "max-slots", "slots-max",
                                                  "slots_max", "max_cpu",   "cpu-max",
                                                  "max-count", "count_max"};
  static const std::set<std::string> other_words = {"username", "user-name", "port"};
  line = line.substr(0, std::min(line.find('#'), line.find("//")));
  if (!line.empty() && line.back() == '\r') {
    throw ConfigError({where + "ends with a carriage return (a Windows line end), which "
                               "mpirun cannot read: convert the file (dos2unix)"});
  }
  for (const char c : line) {
    if (static_cast<unsigned char>(c) < 0x20 ? c != '\t' : static_cast<unsigned char>(c) >= 0x7f) {
      throw ConfigError({where + "holds a byte that is not printable ASCII (a host name, "
                                 "'slots=N' and '#' comments only)"});
    }
  }
  // "slots = 4" is "slots=4".
  for (size_t eq = line.find('='); eq != std::string::npos; eq = line.find('=', eq + 1)) {
    while (eq > 0 && (line[eq - 1] == ' ' || line[eq - 1] == '\t')) line.erase(--eq, 1);
    while (eq + 1 < line.size() && (line[eq + 1] == ' ' || line[eq + 1] == '\t')) {
      line.erase(eq + 1, 1);
    }
  }
  std::istringstream words(line);
  std::string name, word;
  if (!(words >> name)) return {"", -1};
  if (name[0] == '^' || name[0] == '/' || name.find('=') != std::string::npos) {
    throw ConfigError({where + Quoted(name) +
                       " is not a host name (exclusions and other syntax are not read here)"});
  }
  int64_t slots = -1, most = -1;
  while (words >> word) {
    const size_t eq = word.find('=');
    const std::string key = word.substr(0, eq);
    if (eq == std::string::npos ||
        (!slot_words.count(key) && !max_words.count(key) && !other_words.count(key))) {
      throw ConfigError({where + Quoted(word) +
                         " is not slots=N (or another word of Open MPI's "
                         "hostfiles: max_slots=N, username=...)"});
    }
    if (other_words.count(key)) continue;
    const int64_t n = Count(word.substr(eq + 1));
    if (n < 0) {
      throw ConfigError({where + Quoted(word) + ": N must be a whole number from 0 to " +
                         std::to_string(kMostRanks)});
    }
    int64_t& target = slot_words.count(key) ? slots : most;
    if (target >= 0) throw ConfigError({where + "gives " + key + " twice"});
    target = n;
  }
  if (slots >= 0 && most >= 0 && most < slots) {
    throw ConfigError({where + "max_slots " + std::to_string(most) + " is below slots " +
                       std::to_string(slots) + " (mpirun refuses it)"});
  }
  // user@host; "slots defaults to max_slots".
  return {NodeName(name.substr(name.find('@') + 1)), slots >= 0 ? slots : most};
}

// Adds one line's slots (-1: a line without) to `host`, as mpirun would take them.
void AddHostLine(HostLines& host, const std::string& node, int64_t slots, int number,
                 const std::string& where) {
  if (host.first_line == 0) host.first_line = number;
  if (slots < 0) {
    ++host.bare_lines;
  } else if (host.slots >= 0) {
    throw ConfigError({where + "host " + node + " was given slots on line " +
                       std::to_string(host.slots_line) +
                       " already (mpirun refuses more than one slot count)"});
  } else {
    host.slots = slots;
    host.slots_line = number;
  }
  if (host.slots >= 0 && host.bare_lines > 0) {
    throw ConfigError({where + "host " + node +
                       " is listed both with slots= and without (one line a slot, or one "
                       "slots=N line)"});
  }
}

// The ranks mpirun starts on `node`: its slots, one line a slot, or `ranks_per_host`.
int64_t RanksOnHost(const HostLines& host, const std::string& node, int ranks_per_host,
                    const std::string& path) {
  if (ranks_per_host > 0) {
    if (host.slots >= 0 && host.slots < ranks_per_host) {
      throw ConfigError({"hostfile " + path + ": host " + node +
                         " has slots=" + std::to_string(host.slots) + ", fewer than the " +
                         std::to_string(ranks_per_host) +
                         " ranks per host: mpirun refuses that without --oversubscribe"});
    }
    return ranks_per_host;
  }
  if (host.slots >= 0) return host.slots;
  if (host.bare_lines > 1) return host.bare_lines;
  // A single bare line: as many slots as the host has cores, which is unknown here.
  throw ConfigError({"hostfile " + path + ":" + std::to_string(host.first_line) + ": host " + node +
                     " has no slots=N: mpirun would start as many ranks there as it has "
                     "cores, which only that host knows; add slots=N or give the ranks per "
                     "host"});
}

}  // namespace

std::vector<std::string> RankHostsFromHostfile(const std::string& path, int world,
                                               int ranks_per_host) {
  if (fs::is_directory(path)) throw ConfigError({"hostfile " + path + ": is a folder"});
  std::ifstream in(path);
  if (!in) throw ConfigError({"hostfile " + path + ": cannot be read"});
  constexpr size_t kLongestLine = 65536;
  std::vector<std::string> order;
  std::map<std::string, HostLines> hosts;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string where = "hostfile " + path + ":" + std::to_string(number) + ": ";
    if (line.size() > kLongestLine) {
      throw ConfigError({where + "longer than " + std::to_string(kLongestLine) + " bytes"});
    }
    const auto [node, slots] = ReadHostfileLine(line, where);
    if (node.empty()) continue;
    if (!hosts.count(node)) order.push_back(node);
    AddHostLine(hosts[node], node, slots, number, where);
  }
  if (order.empty()) throw ConfigError({"hostfile " + path + ": names no host"});
  // mpirun's own machine comes first when the hostfile lists it.
  const std::string here = NodeName("localhost");
  const auto local = std::find(order.begin(), order.end(), here);
  if (local != order.end()) std::rotate(order.begin(), local, local + 1);
  std::map<std::string, int64_t> slots_of;
  int64_t total = 0;
  for (const auto& node : order) {
    slots_of[node] = RanksOnHost(hosts[node], node, ranks_per_host, path);
    total = std::min(total + slots_of[node], kMostRanks + 1);
  }
  if (total == 0) throw ConfigError({"hostfile " + path + ": every host has slots=0"});
  const int64_t wanted = world > 0 ? world : total;
  if (wanted > kMostRanks || wanted > total) {
    throw ConfigError(
        {"hostfile " + path + ": " + std::to_string(wanted) + " ranks do not fit its " +
         (total > kMostRanks ? "more than " + std::to_string(kMostRanks) : std::to_string(total)) +
         " slot(s) on " + std::to_string(order.size()) + " host(s)" +
         (wanted > kMostRanks ? " (at most " + std::to_string(kMostRanks) + " ranks)" : "")});
  }
  std::vector<std::string> rank_hosts;
  for (const auto& host : order) {
    for (int64_t s = 0; s < slots_of[host] && static_cast<int64_t>(rank_hosts.size()) < wanted;
         ++s) {
      rank_hosts.push_back(host);
    }
  }
  return rank_hosts;
}

std::string DescribeSchedule(const JobConfig& job, const StyleSchedule& plan,
                             const std::vector<std::string>& rank_hosts) {
  SF_CHECK(rank_hosts.empty() || static_cast<int>(rank_hosts.size()) == plan.world,
           "one host per rank");
  std::vector<const StyleSpec*> styles;
  for (const auto& style : job.styles) styles.push_back(&style);
  std::ostringstream out;
  out << "schedule on " << plan.world << " rank(s): " << plan.groups << " group(s) of "
      << plan.ranks_per_group << " rank(s)\n";
  if (!rank_hosts.empty()) out << DescribeRankHosts(rank_hosts);
  for (int g = 0; g < plan.groups; ++g) {
    const int first = g * plan.ranks_per_group;
    out << "  group " << g << " (ranks " << first;
    if (plan.ranks_per_group > 1) out << "-" << first + plan.ranks_per_group - 1;
    if (!rank_hosts.empty())
      out << " on " << HostsOf(rank_hosts, first, first + plan.ranks_per_group);
    out << "):";
    const auto& mine = plan.styles_of_group[static_cast<size_t>(g)];
    if (mine.empty()) out << " idle";
    const auto passes = GroupPasses(styles, mine, job.styles_at_once);
    for (size_t p = 0; p < passes.size(); ++p) {
      out << (p ? " ->" : "");
      for (size_t i = 0; i < passes[p].size(); ++i) {
        out << (i ? " +" : "") << " " << styles[static_cast<size_t>(passes[p][i])]->name;
      }
      const TrainingOptions& t = styles[static_cast<size_t>(passes[p].front())]->training;
      out << " (" << (passes[p].size() > 1 ? "together on the same batches, " : "") << "batch "
          << t.batch_size << " x " << plan.ranks_per_group << " = "
          << t.batch_size * plan.ranks_per_group << ")";
    }
    out << "\n";
  }
  return out.str();
}

}  // namespace stylefleet
