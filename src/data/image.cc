#include "data/image.h"

#include <stb/stb_image.h>
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
#include "common/log.h"
#include "common/writable_file.h"

namespace stylefleet {
namespace {

bool IsJpeg(const std::vector<uint8_t>& b) {
  return b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF;
}

void CheckPixels(int64_t width, int64_t height, const std::string& name,
                 const DecodeOptions& options) {
  const int64_t max_pixels = options.max_pixels;
  if (width <= 0 || height <= 0) {
    throw DataError(name + ": image has no pixels (" + std::to_string(width) + "x" +
                    std::to_string(height) + ")");
  }
  if (width * height > max_pixels) {
    throw DataError(name + ": image is " + std::to_string(width) + "x" + std::to_string(height) +
                    ", over the limit of " + std::to_string(max_pixels) + " pixels (" +
                    options.limit_setting + ")");
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
  CheckPixels(width, height, name, options);

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

// The Orientation tag (0x0112) of IFD0 in a TIFF block (EXIF's body); 1, the
// identity, when it is absent or the block is malformed.
int TiffOrientation(const uint8_t* tiff, size_t size) {
  if (size < 8) return 1;
  const bool little = tiff[0] == 'I' && tiff[1] == 'I';
  if (!little && !(tiff[0] == 'M' && tiff[1] == 'M')) return 1;
  auto u16 = [&](size_t at) -> uint32_t {
    return little ? tiff[at] | tiff[at + 1] << 8 : tiff[at] << 8 | tiff[at + 1];
  };
  auto u32 = [&](size_t at) -> uint32_t {
    return little ? u16(at) | u16(at + 2) << 16 : u16(at) << 16 | u16(at + 2);
  };
  if (u16(2) != 42) return 1;
  const size_t ifd = u32(4);
  if (ifd > size - 2) return 1;
  const uint32_t entries = u16(ifd);
  for (uint32_t i = 0; i < entries; ++i) {
    const size_t entry = ifd + 2 + 12 * static_cast<size_t>(i);
    if (entry + 12 > size) break;
    if (u16(entry) != 0x0112) continue;
    const uint32_t type = u16(entry + 2);  // SHORT (3) as written; LONG (4) tolerated
    const uint32_t value = type == 3 ? u16(entry + 8) : type == 4 ? u32(entry + 8) : 1;
    return value >= 1 && value <= 8 ? static_cast<int>(value) : 1;
  }
  return 1;
}

// The EXIF orientation of a JPEG: walks the marker segments before the image
// data to the APP1 "Exif" segment. Cameras store pixels as the sensor saw
// them and record in this tag how to turn them for display.
int JpegExifOrientation(const std::vector<uint8_t>& b) {
  size_t pos = 2;  // after SOI
  while (pos + 4 <= b.size() && b[pos] == 0xFF) {
    const uint8_t marker = b[pos + 1];
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0xDA || marker == 0xD9) break;  // image data or end: no EXIF before it
    const size_t length = static_cast<size_t>(b[pos + 2]) << 8 | b[pos + 3];
    if (length < 2 || pos + 2 + length > b.size()) break;
    const uint8_t* body = b.data() + pos + 4;
    if (marker == 0xE1 && length >= 2 + 6 + 8 && std::memcmp(body, "Exif\0\0", 6) == 0) {
      return TiffOrientation(body + 6, length - 2 - 6);
    }
    pos += 2 + length;
  }
  return 1;
}

// Turns stored pixels upright for EXIF orientation 1..8 (2, 4: mirrored; 3:
// rotated 180; 5, 7: transposed / transversed; 6: turn 90 clockwise; 8: 90
// anticlockwise). Each output pixel (x, y) reads its stored pixel (sx, sy).
RgbImage ApplyExifOrientation(RgbImage in, int orientation) {
  if (orientation <= 1 || orientation > 8) return in;
  const int w = in.width, h = in.height;
  const bool swap = orientation >= 5;
  RgbImage out;
  out.width = swap ? h : w;
  out.height = swap ? w : h;
  out.pixels.resize(in.pixels.size());
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;
      switch (orientation) {
        case 2:
          sx = w - 1 - x;
          break;
        case 3:
          sx = w - 1 - x;
          sy = h - 1 - y;
          break;
        case 4:
          sy = h - 1 - y;
          break;
        case 5:
          sx = y;
          sy = x;
          break;
        case 6:
          sx = y;
          sy = h - 1 - x;
          break;
        case 7:
          sx = w - 1 - y;
          sy = h - 1 - x;
          break;
        case 8:
          sx = w - 1 - y;
          sy = x;
          break;
      }
      std::copy_n(&in.pixels[(static_cast<size_t>(sy) * w + sx) * 3], 3,
                  &out.pixels[(static_cast<size_t>(y) * out.width + x) * 3]);
    }
  }
  return out;
}

RgbImage DecodeWithStb(const std::vector<uint8_t>& bytes, const std::string& name,
                       const DecodeOptions& options) {
  if (bytes.size() > static_cast<size_t>(INT32_MAX)) throw DataError(name + ": file too large");
  const int length = static_cast<int>(bytes.size());
  int width = 0, height = 0, components = 0;
  // stb refuses sides over 2^24 as an "unknown image type": read a PNG's
  // declared size first, so that a decompression bomb is named as one.
  static const uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() >= 24 && std::equal(kPngSignature, kPngSignature + 8, bytes.begin())) {
    auto be32 = [&](size_t at) {
      return (int64_t{bytes[at]} << 24) | (int64_t{bytes[at + 1]} << 16) |
             (int64_t{bytes[at + 2]} << 8) | int64_t{bytes[at + 3]};
    };
    CheckPixels(be32(16), be32(20), name, options);
  }
  if (!stbi_info_from_memory(bytes.data(), length, &width, &height, &components)) {
    throw DataError(name + ": not a supported image (" + stbi_failure_reason() + ")");
  }
  CheckPixels(width, height, name, options);
  // Grey+alpha and RGBA (stb counts a paletted PNG with transparency as RGBA).
  const bool has_alpha = components == 2 || components == 4;
  const int channels = has_alpha ? 4 : 3;
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(bytes.data(), length, &width, &height, &components, channels),
      stbi_image_free);
  if (!pixels) {
    throw DataError(name + ": image does not decode (" + stbi_failure_reason() + ")");
  }
  RgbImage image;
  image.width = width;
  image.height = height;
  const size_t count = static_cast<size_t>(width) * height;
  if (!has_alpha) {
    image.pixels.assign(pixels.get(), pixels.get() + count * 3);
    return image;
  }
  image.pixels.resize(count * 3);
  image.alpha.resize(count);
  for (size_t p = 0; p < count; ++p) {
    std::copy_n(pixels.get() + p * 4, 3, image.pixels.data() + p * 3);
    image.alpha[p] = pixels.get()[p * 4 + 3];
  }
  return image;
}

// The taps of one output pixel along one axis: source indices first..first+n-1.
struct Taps {
  int first = 0;
  std::vector<float> weights;
};

// Antialiased bilinear, the filter of PIL's Image.BILINEAR: a triangle of
// half-width 1 source pixel when enlarging, widened by the scale factor when
// shrinking so that every source pixel contributes (no aliasing). Pixel
// centres sit at i + 0.5; taps that fall outside the image are dropped and the
// rest renormalized. At scale 1 the only tap is the pixel itself (weight 1),
// so an axis that keeps its size is copied exactly.
std::vector<Taps> TriangleTaps(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double widen = std::max(scale, 1.0);
  std::vector<Taps> taps(static_cast<size_t>(out_size));
  for (int i = 0; i < out_size; ++i) {
    const double centre = (i + 0.5) * scale;
    const int first = std::max(0, static_cast<int>(centre - widen + 0.5));
    const int end = std::min(in_size, static_cast<int>(centre + widen + 0.5));
    Taps& t = taps[static_cast<size_t>(i)];
    t.first = first;
    double total = 0;
    std::vector<double> w;
    for (int j = first; j < end; ++j) {
      w.push_back(std::max(0.0, 1.0 - std::abs((j + 0.5 - centre) / widen)));
      total += w.back();
    }
    for (double v : w) t.weights.push_back(static_cast<float>(total > 0 ? v / total : 0));
  }
  return taps;
}

// Resizes the width x height RGB block at `src` (rows `stride` bytes apart):
// rows first into a float buffer, then columns, rounding once at the end.
RgbImage Resample(const uint8_t* src, int width, int height, size_t stride, int out_width,
                  int out_height) {
  RgbImage out;
  out.width = out_width;
  out.height = out_height;
  out.pixels.resize(static_cast<size_t>(out_width) * out_height * 3);
  if (width == out_width && height == out_height) {
    // The identity, bit for bit (a photo already at the training size stays sharp).
    for (int y = 0; y < height; ++y) {
      std::copy_n(src + y * stride, static_cast<size_t>(width) * 3,
                  out.pixels.data() + static_cast<size_t>(y) * width * 3);
    }
    return out;
  }
  const std::vector<Taps> across = TriangleTaps(width, out_width);
  const std::vector<Taps> down = TriangleTaps(height, out_height);
  std::vector<float> rows(static_cast<size_t>(out_width) * height * 3);
  for (int y = 0; y < height; ++y) {
    const uint8_t* line = src + y * stride;
    float* dst = rows.data() + static_cast<size_t>(y) * out_width * 3;
    for (int x = 0; x < out_width; ++x) {
      const Taps& t = across[static_cast<size_t>(x)];
      float acc[3] = {0, 0, 0};
      for (size_t k = 0; k < t.weights.size(); ++k) {
        const uint8_t* p = line + (t.first + k) * 3;
        for (int c = 0; c < 3; ++c) acc[c] += t.weights[k] * p[c];
      }
      for (int c = 0; c < 3; ++c) dst[x * 3 + c] = acc[c];
    }
  }
  const size_t row_floats = static_cast<size_t>(out_width) * 3;
  std::vector<float> acc(row_floats);
  for (int y = 0; y < out_height; ++y) {
    const Taps& t = down[static_cast<size_t>(y)];
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (size_t k = 0; k < t.weights.size(); ++k) {
      const float* row = rows.data() + (t.first + k) * row_floats;
      for (size_t i = 0; i < row_floats; ++i) acc[i] += t.weights[k] * row[i];
    }
    uint8_t* dst = out.pixels.data() + y * row_floats;
    for (size_t i = 0; i < row_floats; ++i) {
      dst[i] = static_cast<uint8_t>(std::lround(std::min(255.0f, std::max(0.0f, acc[i]))));
    }
  }
  return out;
}

}  // namespace

RgbImage DecodeImage(const std::vector<uint8_t>& bytes, const std::string& name,
                     const DecodeOptions& options) {
  if (bytes.empty()) throw DataError(name + ": file is empty");
  // The content decides the decoder, not the extension (a PNG named .jpg is common).
  if (!IsJpeg(bytes)) return DecodeWithStb(bytes, name, options);
  return ApplyExifOrientation(DecodeJpeg(bytes, name, options), JpegExifOrientation(bytes));
}

std::vector<uint8_t> ReadImageFile(const std::string& path, const DecodeOptions& options) {
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
  return bytes;
}

RgbImage LoadImageFile(const std::string& path, const DecodeOptions& options) {
  return DecodeImage(ReadImageFile(path, options), path, options);
}

RgbImage Resize(const RgbImage& image, int width, int height) {
  SF_CHECK(width > 0 && height > 0 && image.width > 0 && image.height > 0, "bad resize target");
  return Resample(image.pixels.data(), image.width, image.height,
                  static_cast<size_t>(image.width) * 3, width, height);
}

RgbImage ResizeCenterCrop(const RgbImage& image, int size) {
  SF_CHECK(size > 0 && image.width > 0 && image.height > 0, "bad crop");
  // Cropping the centre square of the source and then resizing it equals resizing
  // the shorter side and cropping, and filters fewer pixels.
  const int side = std::min(image.width, image.height);
  const int x0 = (image.width - side) / 2;
  const int y0 = (image.height - side) / 2;
  const uint8_t* origin = image.pixels.data() + (static_cast<size_t>(y0) * image.width + x0) * 3;
  return Resample(origin, side, side, static_cast<size_t>(image.width) * 3, size, size);
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

}  // namespace

void SaveImageFile(const RgbImage& image, const std::string& path, int jpeg_quality) {
  namespace fs = std::filesystem;
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  const size_t count = static_cast<size_t>(image.width) * image.height;
  const bool has_alpha = !image.alpha.empty();
  SF_CHECK(image.pixels.size() == count * 3 && (!has_alpha || image.alpha.size() == count),
           "image buffers do not match its size");
  std::string bytes;
  int ok = 0;
  if (ext == ".png" && has_alpha) {
    std::vector<uint8_t> rgba(count * 4);
    for (size_t p = 0; p < count; ++p) {
      std::copy_n(image.pixels.data() + p * 3, 3, rgba.data() + p * 4);
      rgba[p * 4 + 3] = image.alpha[p];
    }
    ok = stbi_write_png_to_func(AppendToString, &bytes, image.width, image.height, 4, rgba.data(),
                                image.width * 4);
  } else if (ext == ".png") {
    ok = stbi_write_png_to_func(AppendToString, &bytes, image.width, image.height, 3,
                                image.pixels.data(), image.width * 3);
  } else if (ext == ".jpg" || ext == ".jpeg") {
    if (has_alpha) {
      SF_LOG(kWarning) << path << ": JPEG has no alpha channel; the transparency of the input "
                       << "is dropped (write PNG to keep it)";
    }
    ok = stbi_write_jpg_to_func(AppendToString, &bytes, image.width, image.height, 3,
                                image.pixels.data(), jpeg_quality);
  } else {
    throw DataError(path + ": output images must end in .png, .jpg or .jpeg");
  }
  if (!ok || bytes.empty()) throw DataError(path + ": cannot encode image");
  // Encoded in memory, then written with every step checked (stb's own file writers ignore
  // write errors: a full disk left a 0-byte image and no message).
  try {
    ReplaceFileDurably(path, bytes);
  } catch (const Error& e) {
    throw DataError(e.what());  // an image that cannot be written is a data problem
  }
}

RgbImage WithChromaOf(const RgbImage& styled, const RgbImage& photo) {
  if (styled.width != photo.width || styled.height != photo.height ||
      styled.pixels.size() != photo.pixels.size()) {
    throw DataError("colour preservation: the stylized image is " + std::to_string(styled.width) +
                    "x" + std::to_string(styled.height) + ", the photo " +
                    std::to_string(photo.width) + "x" + std::to_string(photo.height));
  }
  // Lumas in thousandths of a level, exact in integers: the change is rounded
  // once (half away from zero), so R, G and B move by the same whole number of
  // levels and the chroma stays exactly the photo's (two channels rounded
  // apart would each move it by up to half a level).
  const auto luma_milli = [](const uint8_t* x) { return 299 * x[0] + 587 * x[1] + 114 * x[2]; };
  RgbImage out = styled;
  const uint8_t* s = styled.pixels.data();
  const uint8_t* p = photo.pixels.data();
  for (size_t i = 0; i < out.pixels.size(); i += 3) {
    const int milli = luma_milli(s + i) - luma_milli(p + i);
    const int change = (milli >= 0 ? milli + 500 : milli - 500) / 1000;  // C++ truncates to 0
    for (size_t c = 0; c < 3; ++c) {
      out.pixels[i + c] = static_cast<uint8_t>(std::clamp(p[i + c] + change, 0, 255));
    }
  }
  return out;
}

std::string CanonicalImageFormat(const std::string& format) {
  std::string lower = format;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  if (lower == "png") return "png";
  if (lower == "jpg" || lower == "jpeg") return "jpg";
  return "";
}

}  // namespace stylefleet
