// Names of the VGG-16 loss-network endpoints, shared by the config (which
// validates layer names) and the model (which computes them).
//
// An endpoint is the output of one of the 13 convolution layers after its ReLU,
// as TF-slim's `vgg_16/convN/convN_M` endpoints are. Three spellings name the
// same endpoint: `vgg_16/conv3/conv3_3` (the seed's), `conv3_3` and `relu3_3`.
#pragma once

#include <array>
#include <optional>
#include <string>

namespace stylefleet {

constexpr int kVggConvLayerCount = 13;

/// Canonical names, in network order: conv1_1, conv1_2, conv2_1, ... conv5_3.
const std::array<std::string, kVggConvLayerCount>& VggLayerNames();

/// Index (0..12) of the endpoint named by any accepted spelling, or nullopt.
std::optional<int> VggLayerIndex(const std::string& name);

/// "conv1_1, conv1_2, ..." for error messages.
std::string VggLayerNameList();

}  // namespace stylefleet
