#include "data/image_tensor.h"

#include "common/error.h"

namespace stylefleet {

torch::Tensor ImageToTensor(const RgbImage& image) {
  torch::Tensor t = torch::empty({1, 3, image.height, image.width}, torch::kFloat32);
  ToPlanarFloat(image, t.data_ptr<float>());
  return t;
}

RgbImage TensorToImage(const torch::Tensor& image) {
  const torch::Tensor chw = image.dim() == 4 ? image.squeeze(0) : image;
  SF_CHECK(chw.dim() == 3 && chw.size(0) == 3, "expected one RGB image tensor");
  const torch::Tensor t = chw.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  return FromPlanarFloat(t.data_ptr<float>(), static_cast<int>(t.size(2)),
                         static_cast<int>(t.size(1)));
}

}  // namespace stylefleet
