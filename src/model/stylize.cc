#include "model/stylize.h"

#include <algorithm>

#include "model/tiled_forward.h"

namespace stylefleet {

torch::Tensor PadForNetwork(const torch::Tensor& image) {
  const int64_t h = image.size(2), w = image.size(3);
  const int64_t pad_h = std::max<int64_t>(8, (h + 3) / 4 * 4) - h;
  const int64_t pad_w = std::max<int64_t>(8, (w + 3) / 4 * 4) - w;
  if (pad_h == 0 && pad_w == 0) return image;
  torch::nn::functional::PadFuncOptions pad({0, pad_w, 0, pad_h});
  if (h > pad_h && w > pad_w) {
    pad.mode(torch::kReflect);
  } else {
    pad.mode(torch::kReplicate);
  }
  return torch::nn::functional::pad(image, pad);
}

torch::Tensor StylizeTensor(TransformerNet& net, const torch::Tensor& image, int64_t tile) {
  torch::NoGradGuard no_grad;
  const int64_t h = image.size(2), w = image.size(3);
  const torch::Tensor padded = PadForNetwork(image);
  const torch::Tensor out = (tile <= 0 || (h <= tile && w <= tile))
                                ? net->forward(padded)
                                : ForwardInTiles(net, padded, tile);
  return out.slice(2, 0, h).slice(3, 0, w).clamp(0, 255);
}

}  // namespace stylefleet
