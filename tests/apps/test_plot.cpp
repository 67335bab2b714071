// tests/apps/test_plot.cpp — PNG figures decoded back with libpng: panel geometry, colormap
// direction, NaN grey, row 0 at the bottom, the line plot, every refusal naming the file, and
// the atomic write leaving no ".tmp" behind.
#include <doctest/doctest.h>
#include <png.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "apps/plot.h"

using namespace dfx;
using namespace dfx::app;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test case, removed afterwards.
struct TempDir {
  fs::path dir;
  TempDir() {
    static int count = 0;
    dir = fs::temp_directory_path() /
          ("dfx_test_plot_" + std::to_string(getpid()) + "_" + std::to_string(count++));
    fs::create_directories(dir);
  }
  ~TempDir() { fs::remove_all(dir); }
  std::string file(const std::string& name) const { return (dir / name).string(); }
  bool has_tmp_leftovers() const {
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().string().find(".tmp") != std::string::npos) return true;
    return false;
  }
};

struct Px {
  int r, g, b;
};

struct Decoded {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
  Px at(int x, int y) const {
    const uint8_t* p = &rgb[(size_t(y) * size_t(width) + size_t(x)) * 3];
    return {p[0], p[1], p[2]};
  }
};

// Decodes with libpng's simplified API; fails the test (empty result) when the file is not a PNG.
Decoded read_png(const std::string& path) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  Decoded d;
  if (!png_image_begin_read_from_file(&image, path.c_str())) {
    FAIL_CHECK("cannot read ", path, ": ", image.message);
    return d;
  }
  image.format = PNG_FORMAT_RGB;
  d.width = int(image.width);
  d.height = int(image.height);
  d.rgb.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, d.rgb.data(), 0, nullptr)) {
    FAIL_CHECK("cannot decode ", path, ": ", image.message);
    return {};
  }
  return d;
}

// f[r][c] = r * w + c: increasing along each row and from row to row, so the low end is row 0
// column 0 and the high end the last row's last column.
Tensor ramp(int64_t h, int64_t w) {
  std::vector<float> v(size_t(h * w));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i);
  return from_vector(v, {h, w});
}

// Centre of the drawn block of field cell (r, c), with row 0 drawn at the bottom.
Px cell_pixel(const Decoded& img, const PixelRect& f, int cell, int64_t h, int64_t r, int64_t c) {
  return img.at(f.x + int(c) * cell + cell / 2, f.y + int(h - 1 - r) * cell + cell / 2);
}

double brightness(Px p) { return p.r + p.g + p.b; }

bool is_nan_grey(Px p) { return p.r == 128 && p.g == 128 && p.b == 128; }

std::string error_of(auto&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_SUITE("apps") {

TEST_CASE("format_number keeps three significant digits") {
  CHECK(format_number(0.512) == "0.512");
  CHECK(format_number(1.234e-3) == "1.23e-03");
  CHECK(format_number(51.23) == "51.2");
  CHECK(format_number(512.4) == "512");
  CHECK(format_number(-4.56e5) == "-4.56e+05");
  CHECK(format_number(0.0123) == "0.0123");
  CHECK(format_number(9.996) == "10.0");
  CHECK(format_number(0) == "0");
  CHECK(format_number(std::nan("")) == "nan");
  CHECK(format_number(-std::numeric_limits<double>::infinity()) == "-inf");
}

TEST_CASE("field panels: geometry, colormap direction, NaN grey, row 0 at the bottom") {
  TempDir tmp;
  const int64_t h = 20, w = 30;
  Tensor field = ramp(h, w);
  field.set({2, 3}, std::nan(""));
  // The signed panel: negative in the left half, positive in the right, exactly 0 nowhere.
  std::vector<double> sv(size_t(h * w));
  for (int64_t r = 0; r < h; ++r)
    for (int64_t c = 0; c < w; ++c) sv[size_t(r * w + c)] = double(c) - 14.5;
  const Tensor signed_field = from_vector(sv, {h, w});  // float64 on purpose
  const std::vector<FieldPanel> panels = {
      {"u ramp", field, Colormap::Viridis, false},
      {"error", signed_field, Colormap::Diverging, true},
  };

  const int scale = 8;
  const FieldPanelsLayout lay = field_panels_layout(panels, scale);
  REQUIRE(lay.fields.size() == 2);
  CHECK(lay.fields[0].width == w * scale);
  CHECK(lay.fields[0].height == h * scale);
  CHECK(lay.fields[1].x > lay.fields[0].x + lay.fields[0].width);  // side by side
  CHECK(lay.fields[1].y == lay.fields[0].y);

  const std::string path = tmp.file("panels.png");
  write_field_panels(path, panels, scale);
  const Decoded img = read_png(path);
  REQUIRE(img.width == lay.width);
  REQUIRE(img.height == lay.height);
  CHECK(img.width >= 2 * w * scale);
  CHECK(img.height > h * scale);

  const PixelRect& f = lay.fields[0];
  // Viridis: the low end is dark purple, the high end yellow.
  const Px low = cell_pixel(img, f, scale, h, 0, 0);
  const Px high = cell_pixel(img, f, scale, h, h - 1, w - 1);
  CHECK(low.b > low.g);
  CHECK(low.r < 100);
  CHECK(low.g < 60);
  CHECK(high.r > 200);
  CHECK(high.g > 200);
  CHECK(high.b < 100);
  CHECK(brightness(high) > brightness(low) + 200);

  // Row 0 is at the bottom: the bottom-left pixel of the field rect is the low end (dark), the
  // top-left is the start of the last row (bright).
  const Px bottom_left = img.at(f.x, f.y + f.height - 1);
  const Px top_left = img.at(f.x, f.y);
  CHECK(bottom_left.r == low.r);
  CHECK(bottom_left.g == low.g);
  CHECK(bottom_left.b == low.b);
  CHECK(brightness(top_left) > brightness(bottom_left) + 200);

  // The NaN cell (row 2, column 3) is grey; its neighbours are not.
  CHECK(is_nan_grey(cell_pixel(img, f, scale, h, 2, 3)));
  CHECK_FALSE(is_nan_grey(cell_pixel(img, f, scale, h, 2, 4)));
  CHECK_FALSE(is_nan_grey(cell_pixel(img, f, scale, h, 3, 3)));

  // The colour bar runs from yellow (top, max) to purple (bottom, min).
  const PixelRect& bar = lay.bars[0];
  const Px bar_top = img.at(bar.x + bar.width / 2, bar.y);
  const Px bar_bot = img.at(bar.x + bar.width / 2, bar.y + bar.height - 1);
  CHECK(bar_top.r > 200);
  CHECK(bar_top.g > 200);
  CHECK(bar_bot.b > bar_bot.g);

  // Diverging, symmetric: negative is blue, positive red, near zero close to white.
  const PixelRect& g = lay.fields[1];
  const Px neg = cell_pixel(img, g, scale, h, 5, 0);
  const Px pos = cell_pixel(img, g, scale, h, 5, w - 1);
  const Px near_zero = cell_pixel(img, g, scale, h, 5, 14);
  CHECK(neg.b > neg.r + 50);
  CHECK(pos.r > pos.b + 50);
  CHECK(near_zero.r > 200);
  CHECK(near_zero.g > 200);
  CHECK(near_zero.b > 200);

  CHECK_FALSE(tmp.has_tmp_leftovers());
}

TEST_CASE("field panels: automatic scale enlarges small fields and shrinks large ones") {
  const FieldPanelsLayout small = field_panels_layout({{"s", ramp(16, 16)}});
  CHECK(small.fields[0].width >= 200);
  CHECK(small.fields[0].width == 16 * small.cell_px[0]);
  CHECK(small.stride[0] == 1);

  const FieldPanelsLayout large = field_panels_layout({{"l", zeros({1100, 600})}});
  CHECK(large.stride[0] == 3);
  CHECK(large.fields[0].height <= 512);
  CHECK(large.fields[0].height == 367);  // ceil(1100 / 3)
  CHECK(large.fields[0].width == 200);

  // A large field still draws, and an all-NaN block stays visible after averaging.
  TempDir tmp;
  Tensor big = zeros({1100, 600});
  big.set({0, 0}, std::nan(""));
  write_field_panels(tmp.file("big.png"), {{"big", big}});
  const Decoded img = read_png(tmp.file("big.png"));
  CHECK(img.width == large.width);
  const PixelRect& f = large.fields[0];
  CHECK(is_nan_grey(img.at(f.x, f.y + f.height - 1)));  // block (0, 0) at the bottom-left
  CHECK_FALSE(is_nan_grey(img.at(f.x + 1, f.y + f.height - 1)));
}

TEST_CASE("field panels: constant and all-NaN fields still draw") {
  TempDir tmp;
  const std::vector<FieldPanel> panels = {
      {"const", full({8, 8}, 3.0)},
      {"zero sym", zeros({8, 8}, DType::Float64), Colormap::Diverging, true},
      {"all nan", full({8, 8}, std::nan(""))},
  };
  write_field_panels(tmp.file("odd.png"), panels);
  const Decoded img = read_png(tmp.file("odd.png"));
  const FieldPanelsLayout lay = field_panels_layout(panels);
  REQUIRE(img.width == lay.width);
  const PixelRect& n = lay.fields[2];
  CHECK(is_nan_grey(img.at(n.x + n.width / 2, n.y + n.height / 2)));
}

TEST_CASE("field panels: refusals name the file and the problem") {
  TempDir tmp;
  const std::string path = tmp.file("bad.png");
  std::string msg = error_of([&] { write_field_panels(path, {{"cube", zeros({2, 3, 4})}}); });
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find("2-d") != std::string::npos);
  CHECK(msg.find("[2, 3, 4]") != std::string::npos);

  msg = error_of([&] { write_field_panels(path, {}); });
  CHECK(msg.find("no panels") != std::string::npos);
  msg = error_of([&] { write_field_panels(path, {{"empty", zeros({0, 4})}}); });
  CHECK(msg.find("empty") != std::string::npos);
  msg = error_of([&] { write_field_panels(path, {{"undef", Tensor()}}); });
  CHECK(msg.find("undefined") != std::string::npos);
  msg = error_of([&] { write_field_panels(path, {{"huge", zeros({64, 64})}}, 1000); });
  CHECK(msg.find("limit") != std::string::npos);

  const std::string nowhere = tmp.file("no_such_dir/x.png");
  msg = error_of([&] { write_field_panels(nowhere, {{"ok", ramp(4, 4)}}); });
  CHECK(msg.find(nowhere) != std::string::npos);
  CHECK(msg.find("cannot create") != std::string::npos);

  CHECK_FALSE(fs::exists(path));
  CHECK_FALSE(tmp.has_tmp_leftovers());
}

TEST_CASE("line plot: decodes, draws each series, log axis, refusals") {
  TempDir tmp;
  Series train{"train", {}, {}}, val{"val", {}, {}};
  for (int i = 0; i <= 200; ++i) {
    train.x.push_back(i);
    train.y.push_back(std::exp(-i / 30.0) + 1e-4);
    if (i % 10 == 0) {
      val.x.push_back(i);
      val.y.push_back(i == 50 ? 0.0 : 2 * std::exp(-i / 40.0));  // the 0 is skipped on log_y
    }
  }
  const std::string path = tmp.file("loss.png");
  write_line_plot(path, {train, val}, "loss", true);
  const Decoded img = read_png(path);
  CHECK(img.width > 200);
  CHECK(img.height > 200);
  // Both series colours (tab10 blue and orange) appear.
  int blue = 0, orange = 0;
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      const Px p = img.at(x, y);
      blue += p.r == 31 && p.g == 119 && p.b == 180;
      orange += p.r == 255 && p.g == 127 && p.b == 14;
    }
  CHECK(blue > 100);
  CHECK(orange > 50);

  write_line_plot(tmp.file("lin.png"), {{"", {0, 1, 2}, {-1, 0.5, 3}}}, "linear", false);
  CHECK(read_png(tmp.file("lin.png")).width > 0);
  write_line_plot(tmp.file("one.png"), {{"single", {5}, {5}}}, "one point", false);
  CHECK(read_png(tmp.file("one.png")).width > 0);

  // Ticks on a tiny span far from zero, where stepping a double counter would stall.
  write_line_plot(tmp.file("far.png"), {{"far", {1e22, 1e22 + 1e6}, {1, 2}}}, "far", false);
  CHECK(read_png(tmp.file("far.png")).width > 0);

  std::string msg = error_of([&] { write_line_plot(path, {}, "t", false); });
  CHECK(msg.find(path) != std::string::npos);
  msg = error_of([&] { write_line_plot(path, {{"a", {1, 2}, {1}}}, "t", false); });
  CHECK(msg.find("2 x values but 1 y values") != std::string::npos);
  msg = error_of([&] { write_line_plot(path, {{"a", {}, {}}}, "t", false); });
  CHECK(msg.find("nothing to plot") != std::string::npos);
  msg = error_of([&] { write_line_plot(path, {{"a", {1, 2}, {0, -1}}}, "t", true); });
  CHECK(msg.find("y > 0") != std::string::npos);
  msg = error_of([&] { write_line_plot(path, {{"a", {-1e308, 1e308}, {1, 2}}}, "t", false); });
  CHECK(msg.find("overflows") != std::string::npos);
  const std::string nowhere = tmp.file("no_such_dir/loss.png");
  msg = error_of([&] { write_line_plot(nowhere, {train}, "t", true); });
  CHECK(msg.find(nowhere) != std::string::npos);

  CHECK_FALSE(tmp.has_tmp_leftovers());
}

}  // TEST_SUITE("apps")
