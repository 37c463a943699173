#include "common/vgg_layers.h"

namespace stylefleet {

const std::array<std::string, kVggConvLayerCount>& VggLayerNames() {
  static const std::array<std::string, kVggConvLayerCount> names = {
      "conv1_1", "conv1_2",             //
      "conv2_1", "conv2_2",             //
      "conv3_1", "conv3_2", "conv3_3",  //
      "conv4_1", "conv4_2", "conv4_3",  //
      "conv5_1", "conv5_2", "conv5_3"};
  return names;
}

std::optional<int> VggLayerIndex(const std::string& name) {
  std::string base = name;
  // The seed's TF-slim scope: vgg_16/conv3/conv3_3.
  const std::string slim_prefix = "vgg_16/";
  if (base.rfind(slim_prefix, 0) == 0) {
    const auto slash = base.find('/', slim_prefix.size());
    if (slash == std::string::npos) return std::nullopt;
    const std::string block = base.substr(slim_prefix.size(), slash - slim_prefix.size());
    base = base.substr(slash + 1);
    // The block scope must agree with the layer (conv3/conv3_3, not conv2/conv3_3).
    if (base.compare(0, block.size(), block) != 0) return std::nullopt;
  } else if (base.rfind("relu", 0) == 0) {
    base = "conv" + base.substr(4);
  }
  const auto& names = VggLayerNames();
  for (int i = 0; i < kVggConvLayerCount; ++i) {
    if (names[i] == base) return i;
  }
  return std::nullopt;
}

std::string VggLayerNameList() {
  std::string out;
  for (const auto& name : VggLayerNames()) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

std::optional<uint64_t> RandomNetworkSeed(const std::string& spec) {
  if (spec.rfind("random:", 0) != 0) return std::nullopt;
  const std::string digits = spec.substr(7);
  if (digits.empty() || digits.size() > 18 ||
      digits.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  return std::stoull(digits);
}

}  // namespace stylefleet
