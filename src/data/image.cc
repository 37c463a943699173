#include "data/image.h"

#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
#include <stb/stb_image_write.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "common/error.h"

namespace stylefleet {
namespace {

bool IsJpeg(const std::vector<uint8_t>& b) {
  return b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF;
}

void CheckPixels(int64_t width, int64_t height, const std::string& name, int64_t max_pixels) {
  if (width <= 0 || height <= 0) {
    throw DataError(name + ": image has no pixels (" + std::to_string(width) + "x" +
                    std::to_string(height) + ")");
  }
  if (width * height > max_pixels) {
    throw DataError(name + ": image is " + std::to_string(width) + "x" + std::to_string(height) +
                    ", over the limit of " + std::to_string(max_pixels) +
                    " pixels (data.max_image_pixels)");
  }
}

struct TjHandleCloser {
  void operator()(void* handle) const { tjDestroy(handle); }
};

RgbImage DecodeJpeg(const std::vector<uint8_t>& bytes, const std::string& name,
                    const DecodeOptions& options) {
  std::unique_ptr<void, TjHandleCloser> handle(tjInitDecompress());
  if (!handle) throw DataError(name + ": cannot start the JPEG decoder");
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
  const auto* data = bytes.data();
  const auto size = static_cast<unsigned long>(bytes.size());
  if (tjDecompressHeader3(handle.get(), data, size, &width, &height, &subsampling, &colorspace) !=
      0) {
    throw DataError(name + ": not a readable JPEG (" + tjGetErrorStr2(handle.get()) + ")");
  }
  CheckPixels(width, height, name, options.max_pixels);

  // Largest DCT downscale that keeps the shorter side >= min_short_side.
  int scaled_w = width, scaled_h = height;
  if (options.min_short_side > 0) {
    int count = 0;
    const tjscalingfactor* factors = tjGetScalingFactors(&count);
    for (int i = 0; i < count; ++i) {
      const tjscalingfactor f = factors[i];
      if (f.num > f.denom) continue;  // never upscale here
      const int w = TJSCALED(width, f), h = TJSCALED(height, f);
      if (std::min(w, h) >= options.min_short_side &&
          w * int64_t{h} < scaled_w * int64_t{scaled_h}) {
        scaled_w = w;
        scaled_h = h;
      }
    }
  }
  const bool cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
  const int channels = cmyk ? 4 : 3;
  std::vector<uint8_t> raw(static_cast<size_t>(scaled_w) * scaled_h * channels);
  // Warnings (a truncated file decodes partly) count as failures: a half-grey
  // training image is worse than a skipped one.
  if (tjDecompress2(handle.get(), data, size, raw.data(), scaled_w, 0, scaled_h,
                    cmyk ? TJPF_CMYK : TJPF_RGB, TJFLAG_STOPONWARNING) != 0) {
    throw DataError(name + ": JPEG does not decode (" + tjGetErrorStr2(handle.get()) + ")");
  }
  RgbImage image;
  image.width = scaled_w;
  image.height = scaled_h;
  if (!cmyk) {
    image.pixels = std::move(raw);
    return image;
  }
  // Adobe CMYK JPEGs store inverted values: R = C * K / 255 on the stored bytes.
  image.pixels.resize(static_cast<size_t>(scaled_w) * scaled_h * 3);
  for (size_t p = 0, n = static_cast<size_t>(scaled_w) * scaled_h; p < n; ++p) {
    const int k = raw[p * 4 + 3];
    for (int c = 0; c < 3; ++c) {
      image.pixels[p * 3 + c] = static_cast<uint8_t>((raw[p * 4 + c] * k + 127) / 255);
    }
  }
  return image;
}

RgbImage DecodeWithStb(const std::vector<uint8_t>& bytes, const std::string& name,
                       const DecodeOptions& options) {
  if (bytes.size() > static_cast<size_t>(INT32_MAX)) throw DataError(name + ": file too large");
  const int length = static_cast<int>(bytes.size());
  int width = 0, height = 0, components = 0;
  if (!stbi_info_from_memory(bytes.data(), length, &width, &height, &components)) {
    throw DataError(name + ": not a supported image (" + stbi_failure_reason() + ")");
  }
  CheckPixels(width, height, name, options.max_pixels);
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(bytes.data(), length, &width, &height, &components, 3),
      stbi_image_free);
  if (!pixels) {
    throw DataError(name + ": image does not decode (" + stbi_failure_reason() + ")");
  }
  RgbImage image;
  image.width = width;
  image.height = height;
  image.pixels.assign(pixels.get(), pixels.get() + static_cast<size_t>(width) * height * 3);
  return image;
}

}  // namespace

RgbImage DecodeImage(const std::vector<uint8_t>& bytes, const std::string& name,
                     const DecodeOptions& options) {
  if (bytes.empty()) throw DataError(name + ": file is empty");
  // The content decides the decoder, not the extension (a PNG named .jpg is common).
  return IsJpeg(bytes) ? DecodeJpeg(bytes, name, options) : DecodeWithStb(bytes, name, options);
}

RgbImage LoadImageFile(const std::string& path, const DecodeOptions& options) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw DataError(path + ": cannot open image file");
  const std::streamoff size = in.tellg();
  if (size < 0) throw DataError(path + ": cannot read image file");
  // A compressed file cannot hold more than a few bytes per pixel plus headers.
  if (size > options.max_pixels * 8 + (1 << 20)) {
    throw DataError(path + ": file of " + std::to_string(size) +
                    " bytes is larger than any image within data.max_image_pixels");
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.seekg(0);
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size)) {
    throw DataError(path + ": cannot read image file");
  }
  return DecodeImage(bytes, path, options);
}

RgbImage Resize(const RgbImage& image, int width, int height) {
  SF_CHECK(width > 0 && height > 0, "bad resize target");
  RgbImage out;
  out.width = width;
  out.height = height;
  out.pixels.resize(static_cast<size_t>(width) * height * 3);
  if (!stbir_resize_uint8(image.pixels.data(), image.width, image.height, 0, out.pixels.data(),
                          width, height, 0, 3)) {
    throw DataError("image resize failed");
  }
  return out;
}

RgbImage ResizeCenterCrop(const RgbImage& image, int size) {
  SF_CHECK(size > 0 && image.width > 0 && image.height > 0, "bad crop");
  // Cropping the centre square of the source and then resizing it equals resizing
  // the shorter side and cropping, and filters fewer pixels.
  const int side = std::min(image.width, image.height);
  const int x0 = (image.width - side) / 2;
  const int y0 = (image.height - side) / 2;
  RgbImage out;
  out.width = size;
  out.height = size;
  out.pixels.resize(static_cast<size_t>(size) * size * 3);
  const uint8_t* origin = image.pixels.data() + (static_cast<size_t>(y0) * image.width + x0) * 3;
  if (!stbir_resize_uint8(origin, side, side, image.width * 3, out.pixels.data(), size, size, 0,
                          3)) {
    throw DataError("image resize failed");
  }
  return out;
}

void ToPlanarFloat(const RgbImage& image, float* out) {
  const size_t plane = static_cast<size_t>(image.width) * image.height;
  for (size_t p = 0; p < plane; ++p) {
    out[p] = image.pixels[p * 3];
    out[plane + p] = image.pixels[p * 3 + 1];
    out[2 * plane + p] = image.pixels[p * 3 + 2];
  }
}

RgbImage FromPlanarFloat(const float* planar, int width, int height) {
  RgbImage image;
  image.width = width;
  image.height = height;
  const size_t plane = static_cast<size_t>(width) * height;
  image.pixels.resize(plane * 3);
  for (size_t p = 0; p < plane; ++p) {
    for (int c = 0; c < 3; ++c) {
      float v = planar[c * plane + p];
      v = std::isfinite(v) ? std::min(255.0f, std::max(0.0f, v)) : 0.0f;
      image.pixels[p * 3 + c] = static_cast<uint8_t>(std::lround(v));
    }
  }
  return image;
}

namespace {

// stb's encoders call this with pieces of the file.
void AppendToString(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data),
                                             static_cast<size_t>(size));
}

// Writes `bytes` to `temp`, checking every step (stb's own file writers ignore
// write errors: a full disk left a 0-byte image and no message), then moves it
// to `path`. On failure nothing is left behind and DataError says why.
void WriteFileAtomically(const std::string& bytes, const std::string& temp,
                         const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      const std::string reason = std::strerror(errno);
      out.close();
      fs::remove(temp, ec);
      throw DataError(path + ": cannot write image (" + reason + ")");
    }
  }
  fs::rename(temp, path, ec);
  if (ec) {
    fs::remove(temp, ec);
    throw DataError(path + ": cannot write image (" + ec.message() + ")");
  }
}

}  // namespace

void SaveImageFile(const RgbImage& image, const std::string& path, int jpeg_quality) {
  namespace fs = std::filesystem;
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  std::string bytes;
  int ok = 0;
  if (ext == ".png") {
    ok = stbi_write_png_to_func(AppendToString, &bytes, image.width, image.height, 3,
                                image.pixels.data(), image.width * 3);
  } else if (ext == ".jpg" || ext == ".jpeg") {
    ok = stbi_write_jpg_to_func(AppendToString, &bytes, image.width, image.height, 3,
                                image.pixels.data(), jpeg_quality);
  } else {
    throw DataError(path + ": output images must end in .png, .jpg or .jpeg");
  }
  if (!ok || bytes.empty()) throw DataError(path + ": cannot encode image");
  WriteFileAtomically(bytes, path + ".tmp", path);
}

bool HasImageExtension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".tga" ||
         ext == ".gif";
}

}  // namespace stylefleet
