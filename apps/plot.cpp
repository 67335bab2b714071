// apps/plot.cpp — rasterises field panels and line plots into an RGB canvas and writes it with
// libpng's simplified API. Everything is drawn by hand (rects, Bresenham lines, a 5x7 font) so the
// figures look identical on every machine and need nothing beyond libpng.
#include "apps/plot.h"

#include <png.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"

namespace dfx::app {
namespace {

// ---- canvas ----------------------------------------------------------------------------------

struct Rgb {
  uint8_t r, g, b;
};

constexpr Rgb kWhite{255, 255, 255};
constexpr Rgb kBlack{0, 0, 0};
constexpr Rgb kText{20, 20, 20};
constexpr Rgb kFrame{60, 60, 60};
constexpr Rgb kGrid{228, 228, 228};
constexpr Rgb kMinorGrid{243, 243, 243};
// Mid grey: neither colormap passes near it (viridis is never unsaturated, the diverging map's
// centre is near-white), so a NaN/Inf cell cannot be mistaken for data.
constexpr Rgb kNanGrey{128, 128, 128};

// Bounds every image we are asked to allocate (3 bytes per pixel: ~200 MB at the limit), so a
// huge explicit scale fails with a message instead of exhausting memory.
constexpr int64_t kMaxPixels = int64_t{1} << 26;

struct Canvas {
  int width, height;
  std::vector<uint8_t> px;  // RGB, row-major, top row first (what PNG wants)

  Canvas(int w, int h, Rgb bg) : width(w), height(h), px(size_t(w) * size_t(h) * 3) {
    for (size_t i = 0; i < px.size(); i += 3) {
      px[i] = bg.r;
      px[i + 1] = bg.g;
      px[i + 2] = bg.b;
    }
  }

  // Writes outside the canvas are dropped, so callers can draw near edges without clipping.
  void set(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    uint8_t* p = &px[(size_t(y) * size_t(width) + size_t(x)) * 3];
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
  }

  void fill(int x, int y, int w, int h, Rgb c) {
    for (int j = std::max(0, y); j < std::min(height, y + h); ++j)
      for (int i = std::max(0, x); i < std::min(width, x + w); ++i) set(i, j, c);
  }

  // A 1-px outline just OUTSIDE the rect, so the rect's own pixels stay pure data.
  void frame_around(int x, int y, int w, int h, Rgb c) {
    fill(x - 1, y - 1, w + 2, 1, c);
    fill(x - 1, y + h, w + 2, 1, c);
    fill(x - 1, y - 1, 1, h + 2, c);
    fill(x + w, y - 1, 1, h + 2, c);
  }

  // Bresenham, stamping a thick x thick square per step.
  void line(int x0, int y0, int x1, int y1, Rgb c, int thick) {
    const int dx = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    const int dy = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    const int lo = -(thick - 1) / 2;
    for (;;) {
      fill(x0 + lo, y0 + lo, thick, thick, c);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x0 += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y0 += sy;
      }
    }
  }
};

// ---- 5x7 font ------------------------------------------------------------------------------
// Printable ASCII 32..126, one byte per column, bit 0 = top row (the classic HD44780-style set),
// except g j p q y, which use bit 7 as a descender row below the baseline so they read as
// lower case ("pred" otherwise looks like "Pred").

constexpr uint8_t kFont[95][5] = {
    {0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x5F, 0x00, 0x00},  // space !
    {0x00, 0x07, 0x00, 0x07, 0x00}, {0x14, 0x7F, 0x14, 0x7F, 0x14},  // " #
    {0x24, 0x2A, 0x7F, 0x2A, 0x12}, {0x23, 0x13, 0x08, 0x64, 0x62},  // $ %
    {0x36, 0x49, 0x55, 0x22, 0x50}, {0x00, 0x05, 0x03, 0x00, 0x00},  // & '
    {0x00, 0x1C, 0x22, 0x41, 0x00}, {0x00, 0x41, 0x22, 0x1C, 0x00},  // ( )
    {0x14, 0x08, 0x3E, 0x08, 0x14}, {0x08, 0x08, 0x3E, 0x08, 0x08},  // * +
    {0x00, 0x50, 0x30, 0x00, 0x00}, {0x08, 0x08, 0x08, 0x08, 0x08},  // , -
    {0x00, 0x60, 0x60, 0x00, 0x00}, {0x20, 0x10, 0x08, 0x04, 0x02},  // . /
    {0x3E, 0x51, 0x49, 0x45, 0x3E}, {0x00, 0x42, 0x7F, 0x40, 0x00},  // 0 1
    {0x42, 0x61, 0x51, 0x49, 0x46}, {0x21, 0x41, 0x45, 0x4B, 0x31},  // 2 3
    {0x18, 0x14, 0x12, 0x7F, 0x10}, {0x27, 0x45, 0x45, 0x45, 0x39},  // 4 5
    {0x3C, 0x4A, 0x49, 0x49, 0x30}, {0x01, 0x71, 0x09, 0x05, 0x03},  // 6 7
    {0x36, 0x49, 0x49, 0x49, 0x36}, {0x06, 0x49, 0x49, 0x29, 0x1E},  // 8 9
    {0x00, 0x36, 0x36, 0x00, 0x00}, {0x00, 0x56, 0x36, 0x00, 0x00},  // : ;
    {0x08, 0x14, 0x22, 0x41, 0x00}, {0x14, 0x14, 0x14, 0x14, 0x14},  // < =
    {0x00, 0x41, 0x22, 0x14, 0x08}, {0x02, 0x01, 0x51, 0x09, 0x06},  // > ?
    {0x32, 0x49, 0x79, 0x41, 0x3E}, {0x7E, 0x11, 0x11, 0x11, 0x7E},  // @ A
    {0x7F, 0x49, 0x49, 0x49, 0x36}, {0x3E, 0x41, 0x41, 0x41, 0x22},  // B C
    {0x7F, 0x41, 0x41, 0x22, 0x1C}, {0x7F, 0x49, 0x49, 0x49, 0x41},  // D E
    {0x7F, 0x09, 0x09, 0x09, 0x01}, {0x3E, 0x41, 0x49, 0x49, 0x7A},  // F G
    {0x7F, 0x08, 0x08, 0x08, 0x7F}, {0x00, 0x41, 0x7F, 0x41, 0x00},  // H I
    {0x20, 0x40, 0x41, 0x3F, 0x01}, {0x7F, 0x08, 0x14, 0x22, 0x41},  // J K
    {0x7F, 0x40, 0x40, 0x40, 0x40}, {0x7F, 0x02, 0x0C, 0x02, 0x7F},  // L M
    {0x7F, 0x04, 0x08, 0x10, 0x7F}, {0x3E, 0x41, 0x41, 0x41, 0x3E},  // N O
    {0x7F, 0x09, 0x09, 0x09, 0x06}, {0x3E, 0x41, 0x51, 0x21, 0x5E},  // P Q
    {0x7F, 0x09, 0x19, 0x29, 0x46}, {0x46, 0x49, 0x49, 0x49, 0x31},  // R S
    {0x01, 0x01, 0x7F, 0x01, 0x01}, {0x3F, 0x40, 0x40, 0x40, 0x3F},  // T U
    {0x1F, 0x20, 0x40, 0x20, 0x1F}, {0x3F, 0x40, 0x38, 0x40, 0x3F},  // V W
    {0x63, 0x14, 0x08, 0x14, 0x63}, {0x07, 0x08, 0x70, 0x08, 0x07},  // X Y
    {0x61, 0x51, 0x49, 0x45, 0x43}, {0x00, 0x7F, 0x41, 0x41, 0x00},  // Z [
    {0x02, 0x04, 0x08, 0x10, 0x20}, {0x00, 0x41, 0x41, 0x7F, 0x00},  // \ ]
    {0x04, 0x02, 0x01, 0x02, 0x04}, {0x40, 0x40, 0x40, 0x40, 0x40},  // ^ _
    {0x00, 0x01, 0x02, 0x04, 0x00}, {0x20, 0x54, 0x54, 0x54, 0x78},  // ` a
    {0x7F, 0x48, 0x44, 0x44, 0x38}, {0x38, 0x44, 0x44, 0x44, 0x20},  // b c
    {0x38, 0x44, 0x44, 0x48, 0x7F}, {0x38, 0x54, 0x54, 0x54, 0x18},  // d e
    {0x08, 0x7E, 0x09, 0x01, 0x02}, {0x18, 0xA4, 0xA4, 0xA4, 0x7C},  // f g
    {0x7F, 0x08, 0x04, 0x04, 0x78}, {0x00, 0x44, 0x7D, 0x40, 0x00},  // h i
    {0x40, 0x80, 0x84, 0x7D, 0x00}, {0x7F, 0x10, 0x28, 0x44, 0x00},  // j k
    {0x00, 0x41, 0x7F, 0x40, 0x00}, {0x7C, 0x04, 0x18, 0x04, 0x78},  // l m
    {0x7C, 0x08, 0x04, 0x04, 0x78}, {0x38, 0x44, 0x44, 0x44, 0x38},  // n o
    {0xFC, 0x24, 0x24, 0x24, 0x18}, {0x18, 0x24, 0x24, 0x24, 0xFC},  // p q
    {0x7C, 0x08, 0x04, 0x04, 0x08}, {0x48, 0x54, 0x54, 0x54, 0x20},  // r s
    {0x04, 0x3F, 0x44, 0x40, 0x20}, {0x3C, 0x40, 0x40, 0x20, 0x7C},  // t u
    {0x1C, 0x20, 0x40, 0x20, 0x1C}, {0x3C, 0x40, 0x30, 0x40, 0x3C},  // v w
    {0x44, 0x28, 0x10, 0x28, 0x44}, {0x1C, 0xA0, 0xA0, 0xA0, 0x7C},  // x y
    {0x44, 0x64, 0x54, 0x4C, 0x44}, {0x00, 0x08, 0x36, 0x41, 0x00},  // z {
    {0x00, 0x00, 0x7F, 0x00, 0x00}, {0x00, 0x41, 0x36, 0x08, 0x00},  // | }
    {0x08, 0x04, 0x08, 0x10, 0x08},                                  // ~
};

constexpr int kTextScale = 2;                // every label is drawn at 2x: 10x14 px glyphs
constexpr int kTextH = 7 * kTextScale;       // glyph height in pixels (descenders hang 1 row lower)
constexpr int kAdvance = 6 * kTextScale;     // glyph width plus one blank column

int text_width(const std::string& s, int scale = kTextScale) {
  return s.empty() ? 0 : int(s.size()) * 6 * scale - scale;
}

// (x, y) is the top-left of the first glyph. Characters outside printable ASCII draw as '?'.
void draw_text(Canvas& c, int x, int y, const std::string& s, Rgb color, int scale = kTextScale) {
  for (size_t k = 0; k < s.size(); ++k) {
    int ch = static_cast<unsigned char>(s[k]);
    if (ch < 32 || ch > 126) ch = '?';
    const uint8_t* glyph = kFont[ch - 32];
    const int gx = x + int(k) * 6 * scale;
    for (int col = 0; col < 5; ++col)
      for (int row = 0; row < 8; ++row)
        if (glyph[col] >> row & 1) c.fill(gx + col * scale, y + row * scale, scale, scale, color);
  }
}

// A title that fits max_w: at 2x if possible, else at 1x, else cut with "..".
struct FittedText {
  std::string text;
  int scale;
};
FittedText fit_text(const std::string& s, int max_w) {
  if (text_width(s, kTextScale) <= max_w) return {s, kTextScale};
  if (text_width(s, 1) <= max_w) return {s, 1};
  const int n = std::max(0, (max_w + 1) / 6 - 2);
  return {s.substr(0, size_t(n)) + "..", 1};
}

// ---- colormaps -----------------------------------------------------------------------------

// matplotlib's viridis sampled at 9 evenly spaced points; linear interpolation between them stays
// within a few levels of the real map, which is all a diagnostic figure needs.
constexpr Rgb kViridis[] = {{68, 1, 84},    {71, 45, 123},  {59, 82, 139},
                            {44, 114, 142}, {33, 145, 140}, {40, 174, 128},
                            {94, 201, 98},  {173, 220, 48}, {253, 231, 37}};
// ColorBrewer RdBu (9 classes) reversed: blue for negative, near-white at 0, red for positive.
constexpr Rgb kDiverging[] = {{33, 102, 172},  {67, 147, 195}, {146, 197, 222},
                              {209, 229, 240}, {247, 247, 247}, {253, 219, 199},
                              {244, 165, 130}, {214, 96, 77},   {178, 24, 43}};

template <size_t N>
Rgb interpolate(const Rgb (&table)[N], double u) {
  u = (u >= 0 ? std::min(u, 1.0) : 0.0) * double(N - 1);  // NaN (from an overflowed range) -> 0
  const size_t i = std::min(size_t(u), N - 2);
  const double f = u - double(i);
  auto mix = [f](uint8_t a, uint8_t b) { return uint8_t(std::lround(a + (b - a) * f)); };
  return {mix(table[i].r, table[i + 1].r), mix(table[i].g, table[i + 1].g),
          mix(table[i].b, table[i + 1].b)};
}

Rgb colormap(Colormap cmap, double u) {
  return cmap == Colormap::Diverging ? interpolate(kDiverging, u) : interpolate(kViridis, u);
}

// ---- PNG output ----------------------------------------------------------------------------

// Writes to path + ".tmp", fsyncs and renames, so a reader (or a crash) never sees half a file.
void write_png_atomic(const std::string& path, const Canvas& img, const char* op) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  DFX_CHECK(f != nullptr, op, ": cannot create '", tmp, "' (for '", path,
            "'): ", std::strerror(errno));
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = png_uint_32(img.width);
  image.height = png_uint_32(img.height);
  image.format = PNG_FORMAT_RGB;
  std::string err;
  if (!png_image_write_to_stdio(&image, f, 0, img.px.data(), 0, nullptr)) {
    err = std::string("libpng: ") + image.message;
    png_image_free(&image);
  } else if (std::fflush(f) != 0 || fsync(fileno(f)) != 0) {
    err = std::strerror(errno);
  }
  if (std::fclose(f) != 0 && err.empty()) err = std::strerror(errno);
  if (!err.empty()) {
    std::remove(tmp.c_str());
    DFX_FAIL(op, ": writing '", tmp, "' (for '", path, "') failed: ", err);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int rerr = errno;
    std::remove(tmp.c_str());
    DFX_FAIL(op, ": cannot rename '", tmp, "' to '", path, "': ", std::strerror(rerr));
  }
}

// ---- field panels --------------------------------------------------------------------------

constexpr int kMargin = 16;
constexpr int kPanelGap = 36;
constexpr int kTitleGap = 14;   // title -> field; room for descenders and the top bar label
constexpr int kBarGap = 12;     // field -> colour bar
constexpr int kBarWidth = 18;
constexpr int kTickLen = 4;
constexpr int kLabelGap = 4;
// Room for the widest label format_number makes ("-1.23e-03", 9 glyphs), so the layout does not
// depend on the data and panels of the same shape always line up.
constexpr int kLabelWidth = 9 * kAdvance - kTextScale;
constexpr int kMinBarHeight = 64;  // keeps three labels legible next to a very flat field
constexpr int kAutoMinPx = 200;    // scale 0 enlarges small fields to at least this many px
constexpr int kAutoMaxCells = 512; // and block-averages larger ones down to at most this
constexpr int kMaxSide = 16384;

int panel_width(int field_w) {
  return field_w + kBarGap + kBarWidth + kTickLen + kLabelGap + kLabelWidth;
}

FieldPanelsLayout layout_or_throw(const std::vector<FieldPanel>& panels, int scale,
                                  const std::string& ctx) {
  DFX_CHECK(!panels.empty(), ctx, ": no panels to draw");
  DFX_CHECK(scale >= 0, ctx, ": scale must be >= 0 (0 = automatic), got ", scale);
  FieldPanelsLayout lay;
  const int field_top = kMargin + kTextH + kTitleGap;
  int x = kMargin;
  int max_h = 0;
  for (size_t i = 0; i < panels.size(); ++i) {
    const Tensor& t = panels[i].field;
    const std::string which = "panel " + std::to_string(i) + " ('" + panels[i].title + "')";
    DFX_CHECK(t.defined(), ctx, ": ", which, " has an undefined field tensor");
    DFX_CHECK(t.dim() == 2, ctx, ": ", which, " field must be 2-d [H, W], got ", t.describe());
    DFX_CHECK(t.size(0) > 0 && t.size(1) > 0, ctx, ": ", which, " field is empty: ",
              t.describe());
    const int64_t h = t.size(0), w = t.size(1);
    int64_t stride = 1, cell = scale;
    if (scale == 0) {
      stride = (std::max(h, w) + kAutoMaxCells - 1) / kAutoMaxCells;
      const int64_t hd = (h + stride - 1) / stride, wd = (w + stride - 1) / stride;
      cell = std::max<int64_t>(1, (kAutoMinPx + std::max(hd, wd) - 1) / std::max(hd, wd));
    }
    const int64_t fh = (h + stride - 1) / stride * cell, fw = (w + stride - 1) / stride * cell;
    DFX_CHECK(fh <= kMaxSide && fw <= kMaxSide, ctx, ": ", which, " field ", t.describe(),
              " at scale ", cell, " would be ", fh, "x", fw, " px (limit ", kMaxSide,
              " per side); use a smaller scale or 0 for automatic");
    lay.fields.push_back({x, field_top, int(fw), int(fh)});
    lay.bars.push_back({x + int(fw) + kBarGap, field_top, kBarWidth,
                        std::max(int(fh), kMinBarHeight)});
    lay.cell_px.push_back(int(cell));
    lay.stride.push_back(int(stride));
    max_h = std::max({max_h, int(fh), kMinBarHeight});
    x += panel_width(int(fw)) + kPanelGap;
  }
  const int64_t width = int64_t(x) - kPanelGap + kMargin;
  const int64_t height = int64_t(field_top) + max_h + kMargin;
  DFX_CHECK(width * height <= kMaxPixels, ctx, ": the figure would be ", width, "x", height,
            " px, over the limit of ", kMaxPixels, " pixels; use a smaller scale");
  lay.width = int(width);
  lay.height = int(height);
  return lay;
}

// The field's values as drawn: row-major [hd, wd] after block-averaging by `stride`. A block
// holding any NaN/Inf becomes NaN so a blow-up is never averaged away.
std::vector<double> drawn_values(const Tensor& t, int64_t stride, int64_t& hd, int64_t& wd) {
  const int64_t h = t.size(0), w = t.size(1);
  std::vector<double> v = t.to_vector();
  hd = (h + stride - 1) / stride;
  wd = (w + stride - 1) / stride;
  if (stride == 1) return v;
  std::vector<double> out(size_t(hd * wd));
  for (int64_t r = 0; r < hd; ++r)
    for (int64_t c = 0; c < wd; ++c) {
      double sum = 0;
      int64_t n = 0;
      for (int64_t i = r * stride; i < std::min(h, (r + 1) * stride); ++i)
        for (int64_t j = c * stride; j < std::min(w, (c + 1) * stride); ++j, ++n)
          sum += v[size_t(i * w + j)];
      out[size_t(r * wd + c)] = sum / double(n);  // non-finite propagates through the sum
    }
  return out;
}

// Tick label centred vertically on y, kept inside the canvas.
void draw_label(Canvas& c, int x, int y, const std::string& s) {
  const int top = std::clamp(y - kTextH / 2, 0, c.height - kTextH);
  draw_text(c, x, top, s, kText);
}

}  // namespace

std::string format_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == 0) return "0";
  char buf[48];
  // Round to 3 significant digits first, then read the exponent from the rounded value, so
  // 9.996 becomes "10.0" rather than "10.00".
  std::snprintf(buf, sizeof buf, "%.2e", v);
  const int e = std::atoi(std::strchr(buf, 'e') + 1);
  if (e >= -2 && e < 3) std::snprintf(buf, sizeof buf, "%.*f", 2 - e, v);
  return buf;
}

FieldPanelsLayout field_panels_layout(const std::vector<FieldPanel>& panels, int scale) {
  return layout_or_throw(panels, scale, "field_panels_layout");
}

void write_field_panels(const std::string& path, const std::vector<FieldPanel>& panels,
                        int scale) {
  const std::string ctx = "write_field_panels('" + path + "')";
  const FieldPanelsLayout lay = layout_or_throw(panels, scale, ctx);
  Canvas img(lay.width, lay.height, kWhite);

  for (size_t p = 0; p < panels.size(); ++p) {
    const FieldPanel& panel = panels[p];
    const PixelRect& fr = lay.fields[p];
    const PixelRect& br = lay.bars[p];
    int64_t hd = 0, wd = 0;
    std::vector<double> v;
    try {
      v = drawn_values(panel.field, lay.stride[p], hd, wd);
    } catch (const Error& e) {  // e.g. a dtype to_vector cannot read: say which file and panel
      DFX_FAIL(ctx, ": cannot read panel ", p, " ('", panel.title, "'): ", e.what());
    }

    // Colour range over the finite values only; a field that is all NaN still draws (all grey).
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (double x : v)
      if (std::isfinite(x)) {
        lo = std::min(lo, x);
        hi = std::max(hi, x);
      }
    const bool any_finite = lo <= hi;
    if (!any_finite) lo = hi = std::nan("");
    if (any_finite && panel.symmetric) {
      const double m = std::max(std::abs(lo), std::abs(hi));
      lo = -m;
      hi = m;
    }
    // A constant field maps to the middle of the colormap rather than dividing by zero.
    auto to_unit = [&](double x) { return hi > lo ? (x - lo) / (hi - lo) : 0.5; };

    // Row 0 at the bottom: pixel row py shows field row hd-1 - py/cell.
    const int cell = lay.cell_px[p];
    for (int py = 0; py < fr.height; ++py) {
      const int64_t r = hd - 1 - py / cell;
      for (int px = 0; px < fr.width; ++px) {
        const double x = v[size_t(r * wd + px / cell)];
        img.set(fr.x + px, fr.y + py,
                std::isfinite(x) ? colormap(panel.cmap, to_unit(x)) : kNanGrey);
      }
    }
    img.frame_around(fr.x, fr.y, fr.width, fr.height, kFrame);

    // Colour bar, max at the top, with labelled ticks at max, middle and min.
    for (int py = 0; py < br.height; ++py) {
      const double u = br.height > 1 ? 1.0 - double(py) / double(br.height - 1) : 0.5;
      img.fill(br.x, br.y + py, br.width, 1, colormap(panel.cmap, u));
    }
    img.frame_around(br.x, br.y, br.width, br.height, kFrame);
    const int tick_x = br.x + br.width;
    const int label_x = tick_x + kTickLen + kLabelGap;
    const int y_top = br.y, y_bot = br.y + br.height - 1, y_mid = (y_top + y_bot) / 2;
    for (int y : {y_top, y_mid, y_bot}) img.fill(tick_x, y, kTickLen, 1, kFrame);
    draw_label(img, label_x, y_top, format_number(hi));
    draw_label(img, label_x, y_bot, format_number(lo));
    const double mid = panel.symmetric && any_finite ? 0.0 : (lo + hi) / 2;
    draw_label(img, label_x, y_mid, format_number(mid));

    // Title: centred over the field when it fits there, else starting at the field's left edge
    // and allowed to run over the colour bar's width.
    const FittedText title = fit_text(panel.title, panel_width(fr.width));
    const int tw = text_width(title.text, title.scale);
    const int tx = tw <= fr.width ? fr.x + (fr.width - tw) / 2 : fr.x;
    const int ty = kMargin + (kTextH - 7 * title.scale);
    draw_text(img, tx, ty, title.text, kText, title.scale);
  }
  write_png_atomic(path, img, "write_field_panels");
}

// ---- line plot -----------------------------------------------------------------------------

namespace {

// matplotlib's tab10: distinct on white and for the common colour-vision deficiencies.
constexpr Rgb kSeriesColors[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40},
                                 {148, 103, 189}, {140, 86, 75}, {227, 119, 194},
                                 {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};

constexpr int kPlotW = 800, kPlotH = 500;

// Tick labels drop format_number's trailing zeros ("0.5", "1e-03") and show integers whole,
// since ticks sit on round values where the padding only adds noise.
std::string format_tick(double v) {
  if (v == std::round(v) && std::abs(v) < 1e6) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v == 0 ? 0.0 : v);
    return buf;
  }
  std::string s = format_number(v);
  const size_t epos = s.find('e');
  std::string mant = s.substr(0, epos), tail = epos == std::string::npos ? "" : s.substr(epos);
  if (mant.find('.') != std::string::npos) {
    while (mant.back() == '0') mant.pop_back();
    if (mant.back() == '.') mant.pop_back();
  }
  return mant + tail;
}

// An axis in drawing space (log10 of the data for a log axis): its range and tick positions.
struct Axis {
  double lo, hi;
  std::vector<double> ticks;  // labelled
  std::vector<double> minor;  // grid only
  bool log;
};

// Like matplotlib, the range is the data's padded by 4% on each side, so a curve never runs
// along the frame; ticks are whatever round values fall inside.
constexpr double kPad = 0.04;

// A round step (1, 2 or 5 times a power of ten) giving about `want` intervals over the span.
double nice_step(double span, double want) {
  const double raw = span / want;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

// Multiples of `step` within [lo, hi], with rounding noise at zero removed.
std::vector<double> multiples(double lo, double hi, double step) {
  std::vector<double> out;
  if (!(step > 0) || !std::isfinite(step)) return out;
  const double eps = step * 1e-9;
  const double k0 = std::ceil((lo - eps) / step);
  // Counted, not stepped by k += 1: at k ~ 1e16 that addition no longer changes k.
  for (int i = 0; i < 64; ++i) {
    const double t = (k0 + i) * step;
    if (t > hi + eps) break;
    out.push_back(std::abs(t) < eps ? 0.0 : t);  // no "-1.11e-17" label at zero
  }
  return out;
}

Axis linear_axis(double mn, double mx) {
  if (mx <= mn) {
    const double pad = mn != 0 ? std::abs(mn) * 0.1 : 1.0;
    mn -= pad;
    mx += pad;
  }
  const double pad = (mx - mn) * kPad;
  Axis a{mn - pad, mx + pad, {}, {}, false};
  a.ticks = multiples(a.lo, a.hi, nice_step(mx - mn, 5));
  return a;
}

// Labelled ticks by how many decades the data spans: every k-th decade when many (with 2..9 as
// minor lines when k = 1), 1-2-5 within each decade when two or three, and plain round values
// (as on a linear axis) when less than one, so a short curve still gets labels.
Axis log_axis(double mn, double mx) {
  double lo = std::log10(mn), hi = std::log10(mx);
  if (hi - lo < 0.2) {  // nearly constant: show a fifth of a decade around it
    const double c = (lo + hi) / 2;
    lo = c - 0.1;
    hi = c + 0.1;
  }
  const double pad = (hi - lo) * kPad;
  Axis a{lo - pad, hi + pad, {}, {}, true};
  const double span = hi - lo;
  auto inside = [&](double t) { return t >= a.lo - 1e-9 && t <= a.hi + 1e-9; };
  if (span < 1) {
    const double vlo = std::pow(10, a.lo), vhi = std::pow(10, a.hi);
    for (double v : multiples(vlo, vhi, nice_step(vhi - vlo, 4)))
      if (v > 0) a.ticks.push_back(std::log10(v));
    return a;
  }
  const int k = std::max(1, int(std::ceil(span / 8)));
  for (double d = std::floor(a.lo); d <= std::ceil(a.hi); d += 1) {
    if (int64_t(d) % k == 0 && inside(d)) a.ticks.push_back(d);
    if (k > 1) continue;
    for (int m = 2; m <= 9; ++m) {
      const double t = d + std::log10(double(m));
      if (!inside(t)) continue;
      if (span < 3 && (m == 2 || m == 5))
        a.ticks.push_back(t);
      else
        a.minor.push_back(t);
    }
  }
  std::sort(a.ticks.begin(), a.ticks.end());
  return a;
}

std::string axis_label(const Axis& a, double t) { return format_tick(a.log ? std::pow(10, t) : t); }

}  // namespace

void write_line_plot(const std::string& path, const std::vector<Series>& series,
                     const std::string& title, bool log_y) {
  const std::string ctx = "write_line_plot('" + path + "')";
  DFX_CHECK(!series.empty(), ctx, ": no series to plot");
  auto usable = [log_y](double x, double y) {
    return std::isfinite(x) && std::isfinite(y) && (!log_y || y > 0);
  };
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
  for (size_t s = 0; s < series.size(); ++s) {
    const Series& sr = series[s];
    DFX_CHECK(sr.x.size() == sr.y.size(), ctx, ": series ", s, " ('", sr.label, "') has ",
              sr.x.size(), " x values but ", sr.y.size(), " y values");
    for (size_t i = 0; i < sr.x.size(); ++i)
      if (usable(sr.x[i], sr.y[i])) {
        xmin = std::min(xmin, sr.x[i]);
        xmax = std::max(xmax, sr.x[i]);
        ymin = std::min(ymin, sr.y[i]);
        ymax = std::max(ymax, sr.y[i]);
      }
  }
  DFX_CHECK(xmin <= xmax, ctx, ": nothing to plot: no point has finite x and y",
            log_y ? " with y > 0 (log_y)" : "");

  const Axis ax = linear_axis(xmin, xmax);
  const Axis ay = log_y ? log_axis(ymin, ymax) : linear_axis(ymin, ymax);
  DFX_CHECK(std::isfinite(ax.hi - ax.lo) && std::isfinite(ay.hi - ay.lo), ctx,
            ": the data's range overflows a double (x in [", xmin, ", ", xmax, "], y in [", ymin,
            ", ", ymax, "])");

  // Plot area: the left margin fits the widest y label, the rest is fixed.
  int ylabel_w = 0;
  for (double t : ay.ticks) ylabel_w = std::max(ylabel_w, text_width(axis_label(ay, t)));
  const int left = kMargin + ylabel_w + 10, right = kPlotW - 28;
  const int top = kMargin + kTextH + 14, bottom = kPlotH - (kMargin + kTextH + 10);
  const int pw = right - left, ph = bottom - top;
  // tick_py takes drawing-space values (log10 on a log axis), to_py data values.
  auto to_px = [&](double x) {
    return left + int(std::lround((x - ax.lo) / (ax.hi - ax.lo) * pw));
  };
  auto tick_py = [&](double t) {
    return bottom - int(std::lround((t - ay.lo) / (ay.hi - ay.lo) * ph));
  };
  auto to_py = [&](double y) { return tick_py(ay.log ? std::log10(y) : y); };

  Canvas img(kPlotW, kPlotH, kWhite);
  for (double t : ay.minor) img.fill(left, tick_py(t), pw, 1, kMinorGrid);
  for (double t : ay.ticks) img.fill(left, tick_py(t), pw, 1, kGrid);
  for (double t : ax.ticks) img.fill(to_px(t), top, 1, ph, kGrid);

  for (size_t s = 0; s < series.size(); ++s) {
    const Series& sr = series[s];
    const Rgb color = kSeriesColors[s % std::size(kSeriesColors)];
    const size_t n = sr.x.size();
    // Connect consecutive usable points; a skipped value breaks the line, and a point with no
    // usable neighbour is drawn as a dot so it does not vanish.
    for (size_t i = 0; i < n; ++i) {
      if (!usable(sr.x[i], sr.y[i])) continue;
      const int x0 = to_px(sr.x[i]), y0 = to_py(sr.y[i]);
      const bool next = i + 1 < n && usable(sr.x[i + 1], sr.y[i + 1]);
      const bool prev = i > 0 && usable(sr.x[i - 1], sr.y[i - 1]);
      if (next) img.line(x0, y0, to_px(sr.x[i + 1]), to_py(sr.y[i + 1]), color, 2);
      if (!next && !prev) img.fill(x0 - 2, y0 - 2, 5, 5, color);
    }
  }

  // Axes box and ticks, drawn over the data so lines touching the edge stay framed.
  img.frame_around(left, top, pw + 1, ph + 1, kFrame);
  for (double t : ax.ticks) {
    const int x = to_px(t);
    img.fill(x, bottom + 1, 1, 5, kFrame);
    const std::string s = axis_label(ax, t);
    draw_text(img, std::clamp(x - text_width(s) / 2, 0, kPlotW - text_width(s)), bottom + 9, s,
              kText);
  }
  for (double t : ay.ticks) {
    const int y = tick_py(t);
    img.fill(left - 6, y, 5, 1, kFrame);
    const std::string s = axis_label(ay, t);
    draw_label(img, left - 9 - text_width(s), y, s);
  }

  // Legend on white (so grid lines do not cut labels), in whichever corner of the plot area
  // covers the fewest curve pixels; ties keep the usual top-right.
  std::vector<size_t> entries;
  int label_w = 0;
  for (size_t s = 0; s < series.size(); ++s)
    if (!series[s].label.empty()) {
      entries.push_back(s);
      label_w = std::max(label_w, text_width(series[s].label));
    }
  constexpr int kRow = kTextH + 8, kSwatch = 24;
  // Only as many entries as fit in the plot area's height; the colours still cycle past them.
  entries.resize(std::min(entries.size(), size_t(std::max(0, (ph - 16 - 6) / kRow))));
  if (!entries.empty()) {
    const int lw = std::min(8 + kSwatch + 8 + label_w + 8, pw - 8);
    const int lh = 6 + int(entries.size()) * kRow;
    auto covered = [&](int x0, int y0) {
      int n = 0;
      for (int y = y0; y < y0 + lh; ++y)
        for (int x = x0; x < x0 + lw; ++x) {
          const uint8_t* p = &img.px[(size_t(y) * size_t(img.width) + size_t(x)) * 3];
          const bool background = (p[0] == p[1] && p[1] == p[2]) &&
                                  (p[0] == kWhite.r || p[0] == kGrid.r || p[0] == kMinorGrid.r);
          n += !background;
        }
      return n;
    };
    const int xs[2] = {right - 8 - lw, left + 8}, ys[2] = {top + 8, bottom - 8 - lh};
    int lx = xs[0], ly = ys[0], best = covered(lx, ly);
    for (int cy : ys)
      for (int cx : xs)
        if (const int n = covered(cx, cy); n < best) {
          best = n;
          lx = cx;
          ly = cy;
        }
    img.fill(lx, ly, lw, lh, kWhite);
    img.frame_around(lx, ly, lw, lh, {170, 170, 170});
    for (size_t k = 0; k < entries.size(); ++k) {
      const int row_y = ly + 6 + int(k) * kRow;
      const Rgb color = kSeriesColors[entries[k] % std::size(kSeriesColors)];
      img.fill(lx + 8, row_y + kTextH / 2 - 1, kSwatch, 3, color);
      const FittedText lab = fit_text(series[entries[k]].label, lw - (8 + kSwatch + 8 + 8));
      draw_text(img, lx + 8 + kSwatch + 8, row_y + (kTextH - 7 * lab.scale) / 2, lab.text,
                kText, lab.scale);
    }
  }

  const FittedText t = fit_text(title, kPlotW - 2 * kMargin);
  draw_text(img, (kPlotW - text_width(t.text, t.scale)) / 2, kMargin, t.text, kText, t.scale);
  write_png_atomic(path, img, "write_line_plot");
}

}  // namespace dfx::app
