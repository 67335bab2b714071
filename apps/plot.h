// apps/plot.h — PNG figures for training runs: 2-d fields side by side with colour bars
// (solution, reference, error) and line plots (loss curves). Self-contained: libpng plus an
// embedded 5x7 bitmap font, so no plotting stack is needed on a cluster node.
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dfx::app {

enum class Colormap {
  Viridis,    // sequential, dark purple (low) -> yellow (high); for solutions
  Diverging,  // blue (negative) -> white -> red (positive); for errors and signed data
};

struct FieldPanel {
  std::string title;
  Tensor field;  // 2-d [H, W]; any floating dtype (read through to_vector, so any device works)
  Colormap cmap = Colormap::Viridis;
  bool symmetric = false;  // colour range [-m, m] with m = max |finite value|, so 0 is the centre
};

// One PNG with the panels side by side, each with a title above and its own colour bar (min, mid
// and max labelled). Row 0 of a field is drawn at the BOTTOM: fields are PDE solutions whose row
// index is y, increasing upward. NaN/Inf cells are grey. scale > 0 draws each cell as a
// scale x scale block; scale 0 picks one: small fields are enlarged (nearest) to >= 200 px, fields
// larger than 512 are block-averaged down first (a block with a NaN/Inf stays visible as grey).
// The write is atomic (path + ".tmp", fsync, rename); failures throw dfx::Error naming the path.
void write_field_panels(const std::string& path, const std::vector<FieldPanel>& panels,
                        int scale = 0);

struct Series {
  std::string label;  // legend entry; series with an empty label are left out of the legend
  std::vector<double> x, y;
};

// A line plot with axes, ticks, one colour per series and a legend; log_y draws a log10 y axis
// and skips values <= 0 (as it skips NaN/Inf), breaking the line there. Atomic like the above.
void write_line_plot(const std::string& path, const std::vector<Series>& series,
                     const std::string& title, bool log_y);

// ---- exposed for tests and for callers that annotate or crop the figures ----

struct PixelRect {
  int x = 0, y = 0, width = 0, height = 0;  // top-left origin, in image pixels
};

struct FieldPanelsLayout {
  int width = 0, height = 0;     // of the whole image
  std::vector<PixelRect> fields;  // where each panel's field landed
  std::vector<PixelRect> bars;    // each panel's colour bar (top = max of the range)
  std::vector<int> cell_px;       // pixels per drawn cell (after any downsampling)
  std::vector<int> stride;        // cells averaged per drawn cell along each axis (1 = none)
};

// The geometry write_field_panels uses for these panels; validates them the same way.
FieldPanelsLayout field_panels_layout(const std::vector<FieldPanel>& panels, int scale = 0);

// 3 significant digits: "0.512", "51.2", "1.23e-03", "-4.56e+05", "0", "nan", "inf".
std::string format_number(double v);

}  // namespace dfx::app
