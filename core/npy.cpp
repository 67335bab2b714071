// core/npy.cpp — .npy reader and atomic writer. The header is a Python dict literal; a small
// parser accepts exactly the keys NumPy writes (descr, fortran_order, shape) and names what it
// found otherwise. Data are raw little-endian bytes, so the host must be little-endian.
#include "core/npy.h"

#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace dfx {

static_assert(std::endian::native == std::endian::little, "npy I/O assumes a little-endian host");

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr const char* kExpectedDtypes = "'<f4', '<f8', '<i8' or '|b1'";

struct Header {
  std::string descr;
  bool fortran_order = false;
  Shape shape;
};

// Recursive-descent parser for the header dict; every failure names the file and the offset.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

  Header parse() {
    Header h;
    bool have_descr = false, have_order = false, have_shape = false;
    skip_ws();
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') break;
      std::string key = parse_string();
      skip_ws();
      expect(':');
      skip_ws();
      if (key == "descr") {
        h.descr = parse_string();
        have_descr = true;
      } else if (key == "fortran_order") {
        h.fortran_order = parse_bool();
        have_order = true;
      } else if (key == "shape") {
        h.shape = parse_shape();
        have_shape = true;
      } else {
        fail("unknown key '" + key + "'");
      }
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != '}') fail("expected ',' or '}'");
    }
    ++pos_;
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected text after '}'");
    if (!have_descr || !have_order || !have_shape)
      fail("missing key (expected 'descr', 'fortran_order' and 'shape')");
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    DFX_FAIL("load_npy: '", path_, "': malformed header: ", what, " at offset ", pos_,
             " of header \"", s_, "\"; expected a dict like {'descr': '<f4', "
             "'fortran_order': False, 'shape': (2, 3), }");
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t')) ++pos_;
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string parse_string() {
    char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    size_t end = s_.find(q, pos_ + 1);
    if (end == std::string::npos) fail("unterminated string");
    std::string out = s_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    return out;
  }
  bool parse_bool() {
    if (s_.compare(pos_, 4, "True") == 0) {
      pos_ += 4;
      return true;
    }
    if (s_.compare(pos_, 5, "False") == 0) {
      pos_ += 5;
      return false;
    }
    fail("expected True or False");
  }
  Shape parse_shape() {
    Shape shape;
    expect('(');
    while (true) {
      skip_ws();
      if (peek() == ')') break;
      if (peek() < '0' || peek() > '9') fail("expected a non-negative integer in the shape");
      int64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        if (v > (int64_t{1} << 56)) fail("shape dimension too large");
        v = v * 10 + (s_[pos_++] - '0');
      }
      shape.push_back(v);
      skip_ws();
      if (peek() == ',') ++pos_;
      else if (peek() != ')') fail("expected ',' or ')' in the shape");
    }
    ++pos_;
    return shape;
  }

  const std::string& s_;
  const std::string& path_;
  size_t pos_ = 0;
};

DType dtype_from_descr(const std::string& descr, const std::string& path) {
  if (descr == "<f4") return DType::Float32;
  if (descr == "<f8") return DType::Float64;
  if (descr == "<i8") return DType::Int64;
  if (descr == "|b1") return DType::Bool;
  DFX_FAIL("load_npy: '", path, "': unsupported dtype '", descr, "'; expected ", kExpectedDtypes);
}

const char* descr_of(DType t) {
  switch (t) {
    case DType::Float32: return "<f4";
    case DType::Float64: return "<f8";
    case DType::Int64: return "<i8";
    case DType::Bool: return "|b1";
    default: return nullptr;
  }
}

uint32_t read_le(const unsigned char* p, int n) {
  uint32_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

Tensor load_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  DFX_CHECK(in.is_open(), "load_npy: cannot open '", path, "': ", std::strerror(errno),
            "; expected an existing, readable .npy file");
  unsigned char pre[12];
  in.read(reinterpret_cast<char*>(pre), 8);
  DFX_CHECK(in.gcount() == 8 && std::memcmp(pre, kMagic, kMagicLen) == 0, "load_npy: '", path,
            "': bad magic; expected a .npy file starting with \\x93NUMPY");
  const int major = pre[6], minor = pre[7];
  DFX_CHECK((major == 1 || major == 2) && minor == 0, "load_npy: '", path,
            "': unsupported format version ", major, ".", minor, "; expected 1.0 or 2.0");
  const int len_bytes = major == 1 ? 2 : 4;
  in.read(reinterpret_cast<char*>(pre + 8), len_bytes);
  DFX_CHECK(in.gcount() == len_bytes, "load_npy: '", path,
            "': malformed header: file ends inside the header length; expected ", len_bytes,
            " bytes");
  const uint32_t header_len = read_le(pre + 8, len_bytes);
  DFX_CHECK(header_len <= (1u << 20), "load_npy: '", path, "': malformed header: length ",
            header_len, " bytes; expected at most 1 MiB");
  std::string text(header_len, '\0');
  in.read(text.data(), header_len);
  DFX_CHECK(in.gcount() == static_cast<std::streamsize>(header_len), "load_npy: '", path,
            "': malformed header: file ends after ", in.gcount(), " of ", header_len,
            " header bytes");

  Header h = HeaderParser(text, path).parse();
  const DType dtype = dtype_from_descr(h.descr, path);
  DFX_CHECK(!h.fortran_order, "load_npy: '", path,
            "': fortran_order is True; expected C order (save with np.ascontiguousarray)");
  DFX_CHECK(h.shape.size() <= static_cast<size_t>(kMaxDims), "load_npy: '", path, "': shape ",
            h.shape, " has ", h.shape.size(), " dims; expected at most ", kMaxDims);
  int64_t numel = 1;
  for (int64_t s : h.shape) {
    DFX_CHECK(s == 0 || numel <= (int64_t{1} << 56) / s, "load_npy: '", path, "': shape ",
              h.shape, " is too large");
    numel *= s;
  }

  Tensor t = Tensor::empty(h.shape, dtype, Device::cpu());
  const auto need = static_cast<std::streamsize>(t.nbytes());
  in.read(static_cast<char*>(t.raw_data()), need);
  DFX_CHECK(in.gcount() == need, "load_npy: '", path, "': truncated data: ", in.gcount(),
            " bytes after the header; expected ", need, " for ", h.descr, " shape ", h.shape);
  if (dtype == DType::Bool) {
    // Any non-zero byte is true; a C++ bool must hold exactly 0 or 1.
    auto* b = static_cast<unsigned char*>(t.raw_data());
    for (int64_t i = 0; i < numel; ++i) b[i] = b[i] != 0;
  }
  return t;
}

void save_npy(const std::string& path, const Tensor& t) {
  DFX_CHECK(t.defined(), "save_npy: '", path, "': the tensor is undefined");
  const char* descr = descr_of(t.dtype());
  DFX_CHECK(descr != nullptr, "save_npy: '", path, "': dtype ", dtype_name(t.dtype()),
            " cannot be saved; expected float32, float64, int64 or bool");
  Tensor c = t.cpu().contiguous();

  std::ostringstream hs;
  hs << "{'descr': '" << descr << "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < c.shape().size(); ++i) hs << (i ? ", " : "") << c.shape()[i];
  hs << (c.dim() == 1 ? ",), }" : "), }");
  std::string header = hs.str();
  // NumPy pads so that magic + version + length + header is a multiple of 64 and ends in '\n'.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                           static_cast<unsigned char>(header.size() & 0xff),
                           static_cast<unsigned char>(header.size() >> 8)};

  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  DFX_CHECK(f != nullptr, "save_npy: cannot create '", tmp, "' (for '", path, "'): ",
            std::strerror(errno), "; expected a writable directory");
  bool ok = std::fwrite(pre, 1, sizeof(pre), f) == sizeof(pre) &&
            std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
            std::fwrite(c.raw_data(), 1, c.nbytes(), f) == c.nbytes() && std::fflush(f) == 0 &&
            fsync(fileno(f)) == 0;
  const int err = errno;
  ok = std::fclose(f) == 0 && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    DFX_FAIL("save_npy: writing '", tmp, "' (for '", path, "') failed: ", std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int rerr = errno;
    std::remove(tmp.c_str());
    DFX_FAIL("save_npy: cannot rename '", tmp, "' to '", path, "': ", std::strerror(rerr));
  }
}

}  // namespace dfx
