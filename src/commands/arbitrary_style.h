// An arbitrary-style model's network for one photo, as `stylize` builds it:
// for the tests that compare it with python/stylefleet_torch.py. (Not in
// commands/commands.h, which stays free of LibTorch's headers.)
#pragma once

#include "checkpoint/model_file.h"
#include "commands/commands.h"
#include "data/image.h"
#include "model/transformer_net.h"

namespace stylefleet {

/// The per-style network that `stylize` runs on `photo` with the
/// arbitrary-style model `model`: the norms predicted from
/// `options.style_images` (weighted by `options.blend`, else equally), moved
/// toward the photo's own embedding by `options.strength`; the style images
/// summarized by `options.loss_network`, else the loss network the model
/// names. Throws ConfigError or DataError as `stylize` does.
TransformerNet ArbitraryStyleNetwork(LoadedModel& model, const StylizeOptions& options,
                                     const RgbImage& photo);

}  // namespace stylefleet
