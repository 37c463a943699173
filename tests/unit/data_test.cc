// The image pipeline on generated images: decoding, resize/crop, epoch order,
// sharding, the loader's determinism and its handling of broken files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "common/error.h"
#include "data/batch_loader.h"
#include "data/dataset.h"
#include "data/image.h"
#include "test_paths.h"
#include "test_util.h"

namespace stylefleet {
namespace {
namespace fs = std::filesystem;
using testing::MakeTestImage;
using testing::TempDir;
using testing::WriteFile;
using testing::WriteTestImages;

TEST(ImageTest, PngRoundTripIsExact) {
  TempDir dir;
  const RgbImage image = MakeTestImage(37, 21, 3);
  SaveImageFile(image, dir / "a.png");
  const RgbImage back = LoadImageFile(dir / "a.png");
  EXPECT_EQ(back.width, 37);
  EXPECT_EQ(back.height, 21);
  EXPECT_EQ(back.pixels, image.pixels);
}

// An RGBA PNG of 8-bit pixels encoded here (zlib stored blocks, no
// compression), so that the decoder is checked on bytes no project code wrote.
std::string RgbaPng(int width, int height, const std::vector<uint8_t>& rgba) {
  auto be32 = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
  };
  auto chunk = [&](const std::string& type, const std::string& data) {
    uint32_t crc = 0xffffffffu;
    for (const unsigned char byte : type + data) {
      crc ^= byte;
      for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return be32(static_cast<uint32_t>(data.size())) + type + data + be32(~crc);
  };
  std::string rows;  // each row: filter 0 (none), then its pixels
  for (int y = 0; y < height; ++y) {
    rows += '\0';
    rows.append(reinterpret_cast<const char*>(rgba.data()) + size_t{4} * width * y, 4 * width);
  }
  EXPECT_LT(rows.size(), 65536u) << "one stored block";
  uint32_t a = 1, b = 0;  // Adler-32
  for (const unsigned char byte : rows) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  const uint16_t n = static_cast<uint16_t>(rows.size());
  const std::string zlib = std::string("\x78\x01\x01", 3) + static_cast<char>(n & 0xff) +
                           static_cast<char>(n >> 8) + static_cast<char>(~n & 0xff) +
                           static_cast<char>((~n >> 8) & 0xff) + rows + be32((b << 16) | a);
  const std::string header = be32(width) + be32(height) + std::string("\x08\x06\0\0\0", 5);
  return std::string("\x89PNG\r\n\x1a\n", 8) + chunk("IHDR", header) + chunk("IDAT", zlib) +
         chunk("IEND", "");
}

// A translucent pixel decodes to the colour stored in the file, whatever its
// alpha (0 included), with the alpha beside it: not composited over black or
// white, not premultiplied (the rule in image.h). The PNG writer keeps both too.
TEST(ImageTest, TranslucentPngPixelsKeepTheirStoredColourAndAlpha) {
  TempDir dir;
  const std::vector<uint8_t> alphas = {0, 1, 64, 128, 200, 254, 255};
  const int width = static_cast<int>(alphas.size()), height = 2;
  std::vector<uint8_t> rgba;
  RgbImage expected;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      // Colours away from 0 and 255, different in every pixel and channel, so
      // that mixing with black or white changes each of them.
      const uint8_t rgb[3] = {static_cast<uint8_t>(200 - 20 * x - 3 * y),
                              static_cast<uint8_t>(30 + 25 * x + 7 * y),
                              static_cast<uint8_t>(90 + 11 * x - 40 * y)};
      const uint8_t alpha = alphas[y == 0 ? x : width - 1 - x];
      rgba.insert(rgba.end(), {rgb[0], rgb[1], rgb[2], alpha});
      expected.pixels.insert(expected.pixels.end(), rgb, rgb + 3);
      expected.alpha.push_back(alpha);
    }
  }
  WriteFile(dir / "translucent.png", RgbaPng(width, height, rgba));
  const RgbImage image = LoadImageFile(dir / "translucent.png");
  ASSERT_EQ(image.width, width);
  ASSERT_EQ(image.height, height);
  ASSERT_EQ(image.pixels.size(), expected.pixels.size());
  ASSERT_EQ(image.alpha, expected.alpha);
  for (size_t p = 0; p < expected.alpha.size(); ++p) {
    for (size_t c = 0; c < 3; ++c) {
      EXPECT_EQ(int{image.pixels[3 * p + c]}, int{expected.pixels[3 * p + c]})
          << "pixel " << p << " (alpha " << int{expected.alpha[p]} << ") channel " << c;
    }
  }
  SaveImageFile(image, dir / "again.png");
  const RgbImage again = LoadImageFile(dir / "again.png");
  EXPECT_EQ(again.pixels, expected.pixels);
  EXPECT_EQ(again.alpha, expected.alpha);
}

TEST(ImageTest, JpegDecodesCloseToTheOriginal) {
  TempDir dir;
  const RgbImage image = MakeTestImage(64, 48, 1);
  SaveImageFile(image, dir / "a.jpg");
  const RgbImage back = LoadImageFile(dir / "a.jpg");
  ASSERT_EQ(back.width, 64);
  ASSERT_EQ(back.height, 48);
  double error = 0;
  for (size_t i = 0; i < image.pixels.size(); ++i)
    error += std::abs(image.pixels[i] - back.pixels[i]);
  EXPECT_LT(error / image.pixels.size(), 12.0);
}

TEST(ImageTest, JpegScaledDecodeKeepsShortSideAboveTarget) {
  TempDir dir;
  SaveImageFile(MakeTestImage(800, 600, 0), dir / "big.jpg");
  DecodeOptions options;
  options.min_short_side = 256;
  const RgbImage image = LoadImageFile(dir / "big.jpg", options);
  // 1/2 gives 400x300; 3/8 would give 300x225 (< 256).
  EXPECT_EQ(image.width, 400);
  EXPECT_EQ(image.height, 300);
}

TEST(ImageTest, ContentDecidesTheDecoderNotTheExtension) {
  TempDir dir;
  SaveImageFile(MakeTestImage(16, 16, 0), dir / "a.png");
  fs::rename(dir / "a.png", dir / "a.jpg");
  EXPECT_EQ(LoadImageFile(dir / "a.jpg").width, 16);
}

TEST(ImageTest, BrokenFilesThrowDataErrorNamingTheFile) {
  TempDir dir;
  WriteFile(dir / "empty.jpg", "");
  WriteFile(dir / "text.png", "this is not an image");
  SaveImageFile(MakeTestImage(64, 64, 0), dir / "whole.jpg");
  std::ifstream in(dir / "whole.jpg", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  WriteFile(dir / "truncated.jpg", bytes.substr(0, bytes.size() / 2));
  for (const char* name : {"empty.jpg", "text.png", "truncated.jpg", "missing.png"}) {
    try {
      LoadImageFile(dir / name);
      ADD_FAILURE() << name << " decoded";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
}

TEST(ImageTest, PixelLimitRefusesBeforeDecoding) {
  TempDir dir;
  SaveImageFile(MakeTestImage(200, 100, 0), dir / "a.png");
  DecodeOptions options;
  options.max_pixels = 19999;
  try {
    LoadImageFile(dir / "a.png", options);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("200x100, over the limit of 19999 pixels "
                                         "(data.max_image_pixels)"),
              std::string::npos)
        << e.what();
  }
  // stylize names its own option.
  options.limit_setting = "stylize --max-image-pixels";
  EXPECT_THROW(
      try { LoadImageFile(dir / "a.png", options); } catch (const DataError& e) {
        EXPECT_NE(std::string(e.what()).find("(stylize --max-image-pixels)"), std::string::npos);
        throw;
      },
      DataError);
}

TEST(ImageTest, ResizeCenterCropTakesTheMiddleSquare) {
  // Left third red, middle third green, right third blue: the centre crop of a
  // 3:1 image is the green third.
  RgbImage image;
  image.width = 300;
  image.height = 100;
  image.pixels.resize(300 * 100 * 3);
  for (int y = 0; y < 100; ++y)
    for (int x = 0; x < 300; ++x) image.pixels[(y * 300 + x) * 3 + x / 100] = 255;
  const RgbImage crop = ResizeCenterCrop(image, 64);
  ASSERT_EQ(crop.width, 64);
  ASSERT_EQ(crop.height, 64);
  const uint8_t* centre = &crop.pixels[(32 * 64 + 32) * 3];
  EXPECT_EQ(centre[0], 0);
  EXPECT_EQ(centre[1], 255);
  EXPECT_EQ(centre[2], 0);
  // The same on its side (1:3, thirds from top to bottom): the middle third again.
  RgbImage tall;
  tall.width = 100;
  tall.height = 300;
  tall.pixels.resize(100 * 300 * 3);
  for (int y = 0; y < 300; ++y)
    for (int x = 0; x < 100; ++x) tall.pixels[(y * 100 + x) * 3 + y / 100] = 255;
  const RgbImage tall_crop = ResizeCenterCrop(tall, 64);
  ASSERT_EQ(tall_crop.width, 64);
  ASSERT_EQ(tall_crop.height, 64);
  const uint8_t* tall_centre = &tall_crop.pixels[(32 * 64 + 32) * 3];
  EXPECT_EQ(tall_centre[0], 0);
  EXPECT_EQ(tall_centre[1], 255);
  EXPECT_EQ(tall_centre[2], 0);
}

// Noise over a gradient: every pixel differs from its neighbours, so any
// smoothing shows.
RgbImage NoisyImage(int width, int height, unsigned seed) {
  RgbImage image = MakeTestImage(width, height, static_cast<int>(seed));
  std::mt19937 random(seed);
  for (auto& v : image.pixels) v = static_cast<uint8_t>((v + random() % 96) % 256);
  return image;
}

TEST(ImageTest, ResizeToTheSameSizeIsTheIdentity) {
  const RgbImage square = NoisyImage(256, 256, 1);
  auto changed = [&](const RgbImage& out) {
    size_t n = 0;
    for (size_t i = 0; i < out.pixels.size(); ++i) n += out.pixels[i] != square.pixels[i];
    return n;
  };
  EXPECT_EQ(changed(ResizeCenterCrop(square, 256)), 0u) << "bytes changed by a same-size crop";
  EXPECT_EQ(changed(Resize(square, 256, 256)), 0u) << "bytes changed by a same-size resize";
  // A landscape image whose height is the target is only cropped.
  const RgbImage wide = NoisyImage(300, 64, 2);
  const RgbImage crop = ResizeCenterCrop(wide, 64);
  for (int y = 0; y < 64; ++y) {
    for (int x = 0; x < 64 * 3; ++x) {
      ASSERT_EQ(crop.pixels[(y * 64) * 3 + x], wide.pixels[(y * 300 + 118) * 3 + x])
          << "row " << y << " byte " << x;
    }
  }
}

// Downscales, upscales and mixed scales against PIL's antialiased bilinear
// (Image.BILINEAR), the filter configs/README.md names: within 1 level.
TEST(ImageTest, ResizeMatchesPilBilinearWithinOneLevel) {
  TempDir dir;
  SaveImageFile(NoisyImage(97, 61, 3), dir / "in.png");
  const std::vector<std::pair<int, int>> sizes = {
      {40, 25}, {13, 9}, {150, 100}, {120, 30}, {97, 200}};
  std::string script = "from PIL import Image\nim = Image.open('" + (dir / "in.png") + "')\n";
  for (const auto& [w, h] : sizes) {
    const std::string name = std::to_string(w) + "x" + std::to_string(h);
    script += "im.resize((" + std::to_string(w) + ", " + std::to_string(h) +
              "), Image.BILINEAR).save('" + (dir / name + ".png") + "')\n";
  }
  // The centre crop of a 97x61 image: 61x61 from x = 18.
  script += "im.crop((18, 0, 79, 61)).resize((32, 32), Image.BILINEAR).save('" +
            (dir / "crop.png") + "')\n";
  WriteFile(dir / "pil.py", script);
  ASSERT_EQ(std::system(("/usr/bin/python3 " + (dir / "pil.py")).c_str()), 0);
  const RgbImage input = LoadImageFile(dir / "in.png");
  auto compare = [](const RgbImage& mine, const RgbImage& pil, const std::string& what) {
    ASSERT_EQ(mine.width, pil.width) << what;
    ASSERT_EQ(mine.height, pil.height) << what;
    int worst = 0;
    double sum = 0;
    for (size_t i = 0; i < mine.pixels.size(); ++i) {
      const int d = std::abs(mine.pixels[i] - pil.pixels[i]);
      worst = std::max(worst, d);
      sum += d;
    }
    EXPECT_LE(worst, 1) << what << ": mean difference " << sum / mine.pixels.size();
  };
  for (const auto& [w, h] : sizes) {
    const std::string name = std::to_string(w) + "x" + std::to_string(h);
    compare(Resize(input, w, h), LoadImageFile(dir / name + ".png"), name);
  }
  compare(ResizeCenterCrop(input, 32), LoadImageFile(dir / "crop.png"), "centre crop 32");
}

// JPEGs written by PIL for EXIF orientations 1..8 (plus 6 in a big-endian EXIF
// block): each stores the upright picture turned the way a camera would, and
// must decode upright again, as PIL's ImageOps.exif_transpose shows it.
TEST(ImageTest, JpegExifOrientationIsApplied) {
  TempDir dir;
  WriteFile(dir / "make.py", R"(import struct, sys
from PIL import Image, ImageOps
out = sys.argv[1]
T = Image.Transpose
upright = Image.new('RGB', (48, 32))
for x in range(48):  # four quadrants of distinct colours, and a gradient
    for y in range(32):
        q = (x >= 24) + 2 * (y >= 16)
        upright.putpixel((x, y), [(220, 30, 30), (30, 220, 30), (30, 30, 220), (220, 220, 30)][q])
upright.save(out + '/upright.png')
# Stored = upright turned by the inverse of what the orientation asks for display.
store = {1: None, 2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM, 5: T.TRANSPOSE,
         6: T.ROTATE_90, 7: T.TRANSVERSE, 8: T.ROTATE_270}
for o, op in store.items():
    stored = upright if op is None else upright.transpose(op)
    exif = Image.Exif()
    exif[0x0112] = o
    stored.save(f'{out}/o{o}.jpg', quality=95, exif=exif.tobytes())
    shown = ImageOps.exif_transpose(Image.open(f'{out}/o{o}.jpg'))
    assert shown.size == upright.size, (o, shown.size)  # PIL agrees the files are right
big = b'Exif\x00\x00MM\x00*' + struct.pack('>IHHHII', 8, 1, 0x0112, 3, 1, 6 << 16) + struct.pack('>I', 0)
upright.transpose(T.ROTATE_90).save(out + '/o6_big_endian.jpg', quality=95, exif=big)
)");
  ASSERT_EQ(std::system(("/usr/bin/python3 " + (dir / "make.py") + " " + dir.path()).c_str()), 0);
  const RgbImage upright = LoadImageFile(dir / "upright.png");
  for (const char* name : {"o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8", "o6_big_endian"}) {
    const RgbImage image = LoadImageFile(dir / (std::string(name) + ".jpg"));
    ASSERT_EQ(image.width, 48) << name;
    ASSERT_EQ(image.height, 32) << name;
    double error = 0;
    for (size_t i = 0; i < image.pixels.size(); ++i) {
      error += std::abs(image.pixels[i] - upright.pixels[i]);
    }
    // JPEG noise is a few levels; a wrong turn puts other quadrants' colours (190 apart) here.
    EXPECT_LT(error / image.pixels.size(), 6.0) << name;
  }
}

TEST(ImageTest, PlanarFloatRoundTrip) {
  const RgbImage image = MakeTestImage(5, 3, 2);
  std::vector<float> planar(5 * 3 * 3);
  ToPlanarFloat(image, planar.data());
  EXPECT_EQ(planar[0], image.pixels[0]);
  EXPECT_EQ(planar[15], image.pixels[1]);  // green plane starts after 15 red values
  EXPECT_EQ(FromPlanarFloat(planar.data(), 5, 3).pixels, image.pixels);
}

TEST(DatasetTest, ListsImagesRecursivelyAndSorted) {
  TempDir dir;
  WriteTestImages(dir / "b", 2, 8, 8);
  WriteTestImages(dir / "a", 1, 8, 8);
  WriteFile(dir / "notes.txt", "x");
  const auto files = ListImageFiles(dir.path());
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0], dir / "a/0000.jpg");
  EXPECT_EQ(files[1], dir / "b/0000.jpg");
  EXPECT_EQ(files[2], dir / "b/0001.png");
}

// A folder of links to photo folders is read through them (a trial's content
// folder of one link held "no images"); a link back to an ancestor neither
// loops nor lists a photo twice.
TEST(DatasetTest, LinkedFoldersAreFollowedOnce) {
  TempDir elsewhere, dir;
  WriteTestImages(elsewhere / "coco", 2, 8, 8);
  fs::create_directory_symlink(elsewhere / "coco", dir / "coco");
  fs::create_directory_symlink(dir.path(), dir / "loop");
  const auto files = ListImageFiles(dir.path());
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0], dir / "coco/0000.jpg");
  EXPECT_EQ(files[1], dir / "coco/0001.png");
}

TEST(DatasetTest, EmptyOrMissingFolderIsAnError) {
  TempDir dir;
  EXPECT_THROW(ListImageFiles(dir.path()), DataError);
  EXPECT_THROW(ListImageFiles(dir / "missing"), DataError);
}

TEST(DatasetTest, EpochOrderIsAPermutationThatDependsOnSeedAndEpoch) {
  const auto a = EpochOrder(100, 7, 0);
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 100; ++i) EXPECT_EQ(sorted[static_cast<size_t>(i)], i);
  EXPECT_EQ(a, EpochOrder(100, 7, 0));
  EXPECT_NE(a, EpochOrder(100, 7, 1));
  EXPECT_NE(a, EpochOrder(100, 8, 0));
}

TEST(DatasetTest, ShardsAreDisjointEqualAndStrided) {
  const auto order = EpochOrder(11, 1, 0);
  const auto s0 = ShardOf(order, 0, 2);
  const auto s1 = ShardOf(order, 1, 2);
  ASSERT_EQ(s0.size(), 5u);
  ASSERT_EQ(s1.size(), 5u);
  for (size_t k = 0; k < 5; ++k) {
    EXPECT_EQ(s0[k], order[2 * k]);
    EXPECT_EQ(s1[k], order[2 * k + 1]);
  }
}

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override { WriteTestImages(dir_ / "photos", 10, 80, 60); }
  std::vector<std::string> Files() { return ListImageFiles(dir_ / "photos"); }
  TempDir dir_;
};

TEST_F(LoaderTest, BatchesHaveShapeRangeAndEpochPositions) {
  LoaderOptions options;
  options.image_size = 32;
  options.batch_size = 3;
  BatchLoader loader(Files(), options);
  EXPECT_EQ(loader.batches_per_epoch(), 3);
  for (int i = 0; i < 4; ++i) {
    const Batch batch = loader.Next();
    EXPECT_EQ(batch.count, 3);
    EXPECT_EQ(batch.size, 32);
    ASSERT_EQ(batch.pixels.size(), 3u * 3 * 32 * 32);
    EXPECT_EQ(batch.epoch, i / 3);
    EXPECT_EQ(batch.batch_in_epoch, i % 3);
    const auto [lo, hi] = std::minmax_element(batch.pixels.begin(), batch.pixels.end());
    EXPECT_GE(*lo, 0.0f);
    EXPECT_LE(*hi, 255.0f);
    EXPECT_GT(*hi - *lo, 100.0f);
  }
}

TEST_F(LoaderTest, SameSeedSameBatchesWhateverTheThreadCount) {
  LoaderOptions options;
  options.image_size = 32;
  options.batch_size = 2;
  options.threads = 1;
  BatchLoader one(Files(), options);
  options.threads = 4;
  options.prefetch_batches = 1;
  BatchLoader four(Files(), options);
  for (int i = 0; i < 7; ++i) {
    const Batch a = one.Next(), b = four.Next();
    EXPECT_EQ(a.paths, b.paths);
    EXPECT_EQ(a.pixels, b.pixels);
  }
  options.seed = 43;
  BatchLoader other(Files(), options);
  BatchLoader again(Files(), LoaderOptions{32, 2, 1, 4, 100000000, 42, 0, 1});
  EXPECT_NE(other.Next().paths, again.Next().paths);
}

TEST_F(LoaderTest, StartsAtAGivenPosition) {
  LoaderOptions options;
  options.image_size = 32;
  options.batch_size = 2;
  BatchLoader full(Files(), options);
  for (int i = 0; i < 6; ++i) full.Next();  // 5 batches per epoch: now at epoch 1 batch 1
  BatchLoader resumed(Files(), options, LoaderPosition{1, 1});
  const Batch a = full.Next(), b = resumed.Next();
  EXPECT_EQ(a.paths, b.paths);
  EXPECT_EQ(b.epoch, 1);
  EXPECT_EQ(b.batch_in_epoch, 1);
}

TEST_F(LoaderTest, TwoShardsTogetherReadWhatOneProcessReads) {
  LoaderOptions options;
  options.image_size = 32;
  options.batch_size = 4;
  BatchLoader single(Files(), options);
  options.batch_size = 2;
  options.world = 2;
  options.rank = 0;
  BatchLoader r0(Files(), options);
  options.rank = 1;
  BatchLoader r1(Files(), options);
  for (int step = 0; step < 5; ++step) {
    const Batch s = single.Next(), a = r0.Next(), b = r1.Next();
    std::multiset<std::string> joint(a.paths.begin(), a.paths.end());
    joint.insert(b.paths.begin(), b.paths.end());
    EXPECT_EQ(joint, std::multiset<std::string>(s.paths.begin(), s.paths.end())) << step;
  }
}

TEST_F(LoaderTest, BrokenFilesAreSkippedOnceCountedAndReplaced) {
  WriteFile(dir_ / "photos/0003.png", "broken");
  WriteFile(dir_ / "photos/0004.jpg", "");
  LoaderOptions options;
  options.image_size = 32;
  options.batch_size = 5;
  BatchLoader loader(Files(), options);
  std::set<std::string> seen;
  for (int i = 0; i < 6; ++i) {  // three epochs
    const Batch batch = loader.Next();
    EXPECT_EQ(batch.count, 5);
    seen.insert(batch.paths.begin(), batch.paths.end());
  }
  EXPECT_EQ(loader.skipped_files(), 2);
  EXPECT_EQ(seen.count(dir_ / "photos/0003.png"), 0u);
  EXPECT_EQ(seen.count(dir_ / "photos/0004.jpg"), 0u);
  EXPECT_EQ(seen.size(), 8u);
}

// Real-world odd files: the unusual but valid ones are used, the broken ones
// (bomb, truncated, empty, corrupt, not an image) are skipped and counted once.
// A PNG that declares 100000 x 100000 pixels is refused by the pixel limit,
// named as such (it used to be "not a supported image (unknown image type)").
TEST(OddImagesTest, AHugeDeclaredPngIsRefusedByThePixelLimit) {
  TempDir dir;
  std::string png("\x89PNG\r\n\x1a\n", 8);
  const unsigned char ihdr[] = {0, 0,    0,    13, 'I', 'H', 'D', 'R', 0, 1, 0x86, 0xA0, 0,
                                1, 0x86, 0xA0, 8,  2,   0,   0,   0,   0, 0, 0,    0};
  png.append(reinterpret_cast<const char*>(ihdr), sizeof(ihdr));
  WriteFile(dir / "huge.png", png);
  try {
    LoadImageFile(dir / "huge.png");
    FAIL() << "decoded";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("image is 100000x100000, over the limit of"),
              std::string::npos)
        << e.what();
  }
}

TEST(OddImagesTest, UnusualFormatsDecodeAndBrokenFilesAreSkipped) {
  TempDir dir;
  const std::string make = "/usr/bin/python3 " + std::string(STYLEFLEET_SOURCE_DIR) +
                           "/tests/reference/make_odd_images.py " + dir.path();
  ASSERT_EQ(std::system(make.c_str()), 0);
  int decoded = 0, refused = 0;
  DecodeOptions options;
  options.max_pixels = 100000000;
  for (const auto& path : ListImageFiles(dir.path())) {
    const bool expected_ok = fs::path(path).filename().string().rfind("ok_", 0) == 0;
    try {
      const RgbImage image = LoadImageFile(path, options);
      EXPECT_TRUE(expected_ok) << path << " decoded";
      EXPECT_EQ(image.pixels.size(), static_cast<size_t>(image.width) * image.height * 3);
      ++decoded;
    } catch (const DataError& e) {
      EXPECT_FALSE(expected_ok) << path << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      ++refused;
    }
  }
  EXPECT_EQ(decoded, 7);
  EXPECT_EQ(refused, 5);
  // CMYK comes out as the same picture as its RGB source (Adobe inverted CMYK handled).
  const RgbImage cmyk = LoadImageFile(dir / "ok_cmyk.jpg");
  const RgbImage rgba = LoadImageFile(dir / "ok_rgba.png");
  double difference = 0;
  for (size_t i = 0; i < cmyk.pixels.size(); ++i)
    difference += std::abs(cmyk.pixels[i] - rgba.pixels[i]);
  EXPECT_LT(difference / cmyk.pixels.size(), 10.0);

  LoaderOptions loader_options;
  loader_options.image_size = 32;
  loader_options.batch_size = 4;
  BatchLoader loader(ListImageFiles(dir.path()), loader_options);
  for (int i = 0; i < 9; ++i) {  // three epochs of 3 batches
    const Batch batch = loader.Next();
    for (const auto& path : batch.paths) {
      EXPECT_NE(fs::path(path).filename().string().rfind("ok_", 0), std::string::npos) << path;
    }
  }
  // The five broken files, and the 1x1 image: it decodes, but its training
  // crop is one uniform colour, which the loader refuses (zero variance).
  EXPECT_EQ(loader.skipped_files(), 6);
}

TEST_F(LoaderTest, SetSmallerThanOneBatchIsAnError) {
  LoaderOptions options;
  options.batch_size = 6;
  options.world = 2;
  EXPECT_THROW(BatchLoader(Files(), options), DataError);
}

TEST_F(LoaderTest, SetWithNoDecodableImageIsAnError) {
  TempDir bad;
  for (int i = 0; i < 4; ++i) WriteFile(bad / ("x" + std::to_string(i) + ".jpg"), "junk");
  LoaderOptions options;
  options.image_size = 32;
  options.batch_size = 2;
  BatchLoader loader(ListImageFiles(bad.path()), options);
  EXPECT_THROW(loader.Next(), DataError);
  // Files that decode but are one colour are not called undecodable (a trial
  // was told "could be decoded" of photos that had decoded).
  TempDir flat;
  RgbImage grey = testing::MakeTestImage(40, 40, 1);
  std::fill(grey.pixels.begin(), grey.pixels.end(), 128);
  for (int i = 0; i < 2; ++i) SaveImageFile(grey, flat / ("g" + std::to_string(i) + ".png"));
  BatchLoader flat_loader(ListImageFiles(flat.path()), options);
  try {
    flat_loader.Next();
    ADD_FAILURE() << "trained on one-colour images";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("(2 files) can be trained on: each one failed to decode, "
                                         "is smaller than the training size, or is one uniform "
                                         "colour"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace stylefleet
