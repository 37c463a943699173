// Names of the VGG-16 loss-network endpoints, shared by the config (which
// validates layer names) and the model (which computes them).
//
// An endpoint is the output of one of the 13 convolution layers after its ReLU,
// as TF-slim's `vgg_16/convN/convN_M` endpoints are. Three spellings name the
// same endpoint: `vgg_16/conv3/conv3_3` (the seed's), `conv3_3` and `relu3_3`.
#pragma once

#include <array>
#include <cstdint>
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

/// Output channels of convolution layer `layer` (0..12).
constexpr int64_t VggLayerChannels(int layer) {
  return layer < 2 ? 64 : layer < 4 ? 128 : layer < 7 ? 256 : 512;
}
/// Input channels of convolution layer `layer` (the image's 3 for the first).
constexpr int64_t VggLayerInChannels(int layer) {
  return layer == 0 ? 3 : VggLayerChannels(layer - 1);
}
/// The seed of a `random:SEED` loss-network spec (SEED: 1 to 18 decimal
/// digits); nullopt for any other text, `random:`, `random:-1` and
/// `random:1x` included. Shared by the job reader and the CLI's options.
std::optional<uint64_t> RandomNetworkSeed(const std::string& spec);

/// True when a 2x2 max-pool follows layer `layer` (the end of each block).
constexpr bool VggPoolAfter(int layer) {
  return layer == 1 || layer == 3 || layer == 6 || layer == 9;
}

}  // namespace stylefleet
