#include "runtime/group_ops.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/fnv1a.h"

namespace stylefleet {
namespace {

// How an exception crosses a broadcast: its kind in the first byte.
enum class ErrorKind : char { kNone = '0', kError = 'E', kData = 'D', kConfig = 'C' };

std::string EncodeError(ErrorKind kind, const std::string& message) {
  return std::string(1, static_cast<char>(kind)) + message;
}

[[noreturn]] void ThrowDecoded(const std::string& encoded) {
  const std::string message = encoded.substr(1);
  switch (static_cast<ErrorKind>(encoded[0])) {
    case ErrorKind::kConfig: {
      std::vector<std::string> problems;
      std::istringstream lines(message);
      for (std::string line; std::getline(lines, line);) problems.push_back(line);
      throw ConfigError(problems);
    }
    case ErrorKind::kData:
      throw DataError(message);
    default:
      throw Error(message);
  }
}

std::string RunAndEncode(const std::function<void()>& action) {
  try {
    action();
    return EncodeError(ErrorKind::kNone, "");
  } catch (const ConfigError& e) {
    std::string joined;
    for (const auto& p : e.problems()) joined += (joined.empty() ? "" : "\n") + p;
    return EncodeError(ErrorKind::kConfig, joined);
  } catch (const DataError& e) {
    return EncodeError(ErrorKind::kData, e.what());
  } catch (const std::exception& e) {
    const std::string what = e.what();
    return EncodeError(ErrorKind::kError, what.empty() ? "unknown error" : what);
  }
}

std::string JoinItems(const std::vector<AgreedItem>& items) {
  std::string text;
  for (const auto& item : items) text += item.first + '\t' + item.second + '\n';
  return text;
}

// One rank's items: values by name, and the names in the rank's order.
struct RankItems {
  std::map<std::string, std::string> values;
  std::vector<std::string> order;
};
using ItemsByRank = std::vector<RankItems>;

// Each rank's items, and in `keys` the names of all in first-seen order.
ItemsByRank ParseItems(const std::vector<std::string>& all, std::vector<std::string>& keys) {
  ItemsByRank by_rank(all.size());
  std::set<std::string> seen;
  for (size_t r = 0; r < all.size(); ++r) {
    std::istringstream lines(all[r]);
    for (std::string line; std::getline(lines, line);) {
      const size_t tab = line.find('\t');
      const std::string key = line.substr(0, tab);
      if (seen.insert(key).second) keys.push_back(key);
      by_rank[r].values[key] = tab == std::string::npos ? "" : line.substr(tab + 1);
      by_rank[r].order.push_back(key);
    }
  }
  return by_rank;
}

// "rank 0 has '25'; ranks 1, 2 have '0.01'" (values in the order of the lowest
// rank holding each), or "" when every rank holds one value.
std::string DescribeDisagreement(const ItemsByRank& by_rank, const std::string& key) {
  std::vector<std::pair<std::string, std::vector<int>>> holders;
  for (size_t r = 0; r < by_rank.size(); ++r) {
    const auto it = by_rank[r].values.find(key);
    const std::string value = it == by_rank[r].values.end() ? "nothing" : "'" + it->second + "'";
    auto same = std::find_if(holders.begin(), holders.end(),
                             [&](const auto& h) { return h.first == value; });
    if (same == holders.end()) same = holders.insert(holders.end(), {value, {}});
    same->second.push_back(static_cast<int>(r));
  }
  if (holders.size() == 1) return "";
  std::string text;
  for (const auto& [value, ranks] : holders) {
    std::string list;
    for (int r : ranks) list += (list.empty() ? "" : ", ") + std::to_string(r);
    text += (text.empty() ? "" : "; ") + std::string(ranks.size() == 1 ? "rank " : "ranks ") +
            list + (ranks.size() == 1 ? " has " : " have ") + value;
  }
  return text;
}

// The same items in another order (styles listed in another order): "ranks
// disagree on the order of their settings: item 3 is 'styles.candy.image' on
// rank 0, 'styles.wave.image' on rank 1".
std::string DescribeOrderDisagreement(const ItemsByRank& by_rank) {
  const auto name = [](const std::vector<std::string>& order, size_t i) {
    return i < order.size() ? "'" + order[i] + "'" : std::string("nothing");
  };
  size_t longest = 0;
  for (const RankItems& rank : by_rank) longest = std::max(longest, rank.order.size());
  for (size_t i = 0; i < longest; ++i) {
    std::string text;
    bool differ = false;
    for (size_t r = 0; r < by_rank.size(); ++r) {
      const std::string key = name(by_rank[r].order, i);
      differ = differ || key != name(by_rank[0].order, i);
      text += (r == 0 ? "" : ", ") + key + " on rank " + std::to_string(r);
    }
    if (differ) {
      return "ranks disagree on the order of their settings: item " + std::to_string(i + 1) +
             " is " + text;
    }
  }
  return "ranks disagree on the order of their settings";
}

}  // namespace

void RunOnRoot(Communicator& group, const std::string& what, const std::function<void()>& action) {
  std::string outcome =
      group.rank() == 0 ? RunAndEncode(action) : EncodeError(ErrorKind::kNone, "");
  if (group.size() > 1) {
    uint64_t length = outcome.size();
    group.Broadcast(&length, sizeof(length), 0, what + " outcome broadcast");
    outcome.resize(length);
    group.Broadcast(outcome.data(), length, 0, what + " outcome broadcast");
  }
  if (static_cast<ErrorKind>(outcome[0]) != ErrorKind::kNone) ThrowDecoded(outcome);
}

void BroadcastTensors(Communicator& group, const std::vector<torch::Tensor>& tensors,
                      const std::string& what) {
  if (group.size() == 1) return;
  torch::NoGradGuard no_grad;
  for (const auto& t : tensors) {
    SF_CHECK(t.is_contiguous(), "broadcast needs contiguous tensors");
    group.Broadcast(t.data_ptr(), static_cast<size_t>(t.numel()) * t.element_size(), 0, what);
  }
}

void CheckRanksAgree(Communicator& group, const std::vector<AgreedItem>& items,
                     const std::string& advice) {
  if (group.size() == 1) return;
  const std::string mine = JoinItems(items);
  const auto hashes = group.AllGather(std::to_string(Fnv1a(mine)), "agreement check");
  bool same = true;
  for (const auto& h : hashes) same = same && h == hashes[0];
  if (same) return;
  std::vector<std::string> keys;
  const std::vector<std::string> all = group.AllGather(mine, "agreement check");
  const ItemsByRank by_rank = ParseItems(all, keys);
  std::vector<std::string> problems;
  for (const auto& key : keys) {
    const std::string values = DescribeDisagreement(by_rank, key);
    if (values.empty()) continue;
    if (problems.size() == 5) {
      problems.push_back("(more differences not shown)");
      break;
    }
    problems.push_back("ranks disagree on " + key + ": " + values);
  }
  if (problems.empty()) problems.push_back(DescribeOrderDisagreement(by_rank));
  problems.push_back(advice);
  throw ConfigError(problems);
}

}  // namespace stylefleet
