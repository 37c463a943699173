// Image decoding, resizing and encoding on plain buffers (no LibTorch here, so
// this code compiles fast and the loader threads never touch torch).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace stylefleet {

/// 8-bit interleaved RGB pixels, row-major, with the transparency of images
/// that have it. The networks see RGB only: training ignores alpha, and
/// stylize carries the input's alpha over to its PNG output unchanged.
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  ///< width * height * 3 bytes
  /// width * height bytes (255 = opaque), or empty for an image without alpha.
  /// Resize and ResizeCenterCrop drop it.
  std::vector<uint8_t> alpha;
};

struct DecodeOptions {
  /// Refuse images whose header declares more pixels (checked before decoding).
  int64_t max_pixels = 100000000;
  /// When > 0, JPEGs are decoded with the largest DCT downscale (1/2, 1/4, 1/8)
  /// that keeps the shorter side at least this long: up to 8x less work.
  int min_short_side = 0;
  /// What the refusal names as the setting that raises the limit.
  std::string limit_setting = "data.max_image_pixels";
};

/// Decodes a JPEG (TurboJPEG; grayscale and CMYK become RGB) or a PNG, BMP,
/// TGA or GIF (stb_image; 16-bit and paletted PNGs become 8-bit RGB). A JPEG's
/// EXIF orientation is applied: the image comes back as it is displayed (a
/// phone photo stored 320x569 with Orientation 6 decodes as 569x320).
/// Transparency (RGBA, grey + alpha, a palette with tRNS) comes back in
/// `alpha`, and each pixel's RGB is the colour the file stores, whatever its
/// alpha (0 included): never composited over black or white nor premultiplied,
/// so stylize's PNG output puts the same alpha over the network's colours.
/// Throws DataError naming `name` when the bytes are not a supported,
/// complete image or exceed the pixel limit.
RgbImage DecodeImage(const std::vector<uint8_t>& bytes, const std::string& name,
                     const DecodeOptions& options = {});

/// Reads an image file's bytes, refusing a file larger than any image within
/// options.max_pixels could be. Throws DataError with the path.
std::vector<uint8_t> ReadImageFile(const std::string& path, const DecodeOptions& options = {});

/// Reads and decodes a file. Throws DataError with the path.
RgbImage LoadImageFile(const std::string& path, const DecodeOptions& options = {});

/// Resizes the shorter side to `size` and crops the centre square: returns a
/// size x size image. The filter is Resize's; a square image already `size`
/// pixels wide comes back unchanged, bit for bit.
RgbImage ResizeCenterCrop(const RgbImage& image, int size);

/// Resizes to exactly width x height with antialiased bilinear filtering, the
/// filter of PIL's Image.resize(..., Image.BILINEAR): a triangle over the
/// neighbouring pixel centres when enlarging, widened by the scale factor when
/// shrinking. Results equal PIL's within 1 level per channel (PIL rounds to
/// 8 bits between its two passes; this code rounds once). Resizing to the
/// same size is the identity (an interpolating filter at scale 1).
RgbImage Resize(const RgbImage& image, int width, int height);

/// Writes planar float CHW values (0..255) of `image` to `out` (3*H*W floats).
void ToPlanarFloat(const RgbImage& image, float* out);

/// Builds an image from planar float CHW values, clamped to 0..255 and rounded.
RgbImage FromPlanarFloat(const float* planar, int width, int height);

/// Colour preservation (Gatys et al. 2016, "Preserving color in neural
/// artistic style transfer", luminance-only transfer): `styled`'s luma with
/// `photo`'s chroma, in YCbCr (BT.601, full range, as JPEG). Keeping Cb and Cr
/// while Y changes by d adds d to each of R, G and B (the same holds in YIQ),
/// so each pixel is photo + d with d = Y(styled) - Y(photo) rounded to a whole
/// level (half away from zero), the same d in every channel: the chroma is
/// exactly the photo's, except where a channel would leave 0..255 and is
/// clamped. Keeps `styled`'s alpha. Throws DataError when the sizes differ.
RgbImage WithChromaOf(const RgbImage& styled, const RgbImage& photo);

/// Writes PNG or JPEG (chosen by the extension: .png, .jpg/.jpeg) atomically.
/// A PNG keeps `alpha` (RGBA); JPEG has no alpha channel, so there it is
/// dropped with a warning naming the file. Throws DataError on failure.
void SaveImageFile(const RgbImage& image, const std::string& path, int jpeg_quality = 92);

/// The output format named by `format`, case-insensitive: "png", or "jpg" for
/// jpg and jpeg; "" for anything else.
std::string CanonicalImageFormat(const std::string& format);

}  // namespace stylefleet
