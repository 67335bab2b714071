// tests/core/test_npy.cpp — .npy round trips from non-contiguous sources, a hand-built file read
// byte for byte, every refusal (each naming the file), and the atomic write leaving no temporary.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/copy.h"
#include "core/npy.h"

using namespace dfx;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test case, removed afterwards.
struct TempDir {
  fs::path dir;
  TempDir() {
    static int count = 0;
    dir = fs::temp_directory_path() /
          ("dfx_test_npy_" + std::to_string(getpid()) + "_" + std::to_string(count++));
    fs::create_directories(dir);
  }
  ~TempDir() { fs::remove_all(dir); }
  std::string file(const std::string& name) const { return (dir / name).string(); }
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), bytes.size());
}

// A .npy file of the given version with `dict` as header (padded to 64 bytes) and `data` after.
std::string npy_bytes(const std::string& dict, const std::string& data, int major = 1) {
  const size_t pre = major == 1 ? 10 : 12;
  std::string header = dict;
  header.append((64 - (pre + header.size() + 1) % 64) % 64, ' ');
  header.push_back('\n');
  std::string out = std::string("\x93NUMPY", 6) + char(major) + char(0);
  const size_t len = header.size();
  out += char(len & 0xff);
  out += char((len >> 8) & 0xff);
  if (major != 1) out += std::string(2, '\0');
  return out + header + data;
}

template <class T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// load_npy(path) must throw dfx::Error mentioning the path and `part`.
void check_load_error(const std::string& path, const std::string& part) {
  CAPTURE(part);
  std::string msg;
  try {
    load_npy(path);
  } catch (const Error& e) {
    msg = e.what();
  }
  CAPTURE(msg);
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find(part) != std::string::npos);
}

}  // namespace

TEST_SUITE("core") {

TEST_CASE("core npy: round trip of float32/float64/int64/bool from non-contiguous sources") {
  TempDir tmp;
  Tensor f = arange(0, 24, 1, DType::Float32).view({2, 3, 4}).permute({2, 0, 1});
  f.set({1, 1, 2}, -0.375);
  save_npy(tmp.file("f.npy"), f);
  Tensor lf = load_npy(tmp.file("f.npy"));
  CHECK(lf.dtype() == DType::Float32);
  CHECK(lf.shape() == Shape{4, 2, 3});
  CHECK(lf.is_contiguous());
  CHECK(lf.to_vector() == f.to_vector());
  CHECK(lf.get({1, 1, 2}) == -0.375);

  Tensor d = linspace(-1, 1, 21, DType::Float64).slice(0, 1, 21, 3);  // stride 3
  save_npy(tmp.file("d.npy"), d);
  Tensor ld = load_npy(tmp.file("d.npy"));
  CHECK(ld.dtype() == DType::Float64);
  CHECK(ld.shape() == Shape{7});
  CHECK(ld.to_vector() == d.to_vector());
  CHECK(ld.get({2}) == doctest::Approx(-0.3));

  Tensor i = from_vector<int64_t>({(int64_t{1} << 40) + 3, -7, 0, 9, 12, -1}, {2, 3}).t();
  save_npy(tmp.file("i.npy"), i);
  Tensor li = load_npy(tmp.file("i.npy"));
  CHECK(li.dtype() == DType::Int64);
  CHECK(li.shape() == Shape{3, 2});
  CHECK(li.data<int64_t>()[0] == (int64_t{1} << 40) + 3);
  CHECK(li.data<int64_t>()[1] == 9);
  CHECK(li.data<int64_t>()[5] == -1);

  Tensor b = from_vector<bool>({true, false, true}, {3, 1}, Device::cpu()).expand({3, 2});
  save_npy(tmp.file("b.npy"), b);
  Tensor lb = load_npy(tmp.file("b.npy"));
  CHECK(lb.dtype() == DType::Bool);
  CHECK(lb.to_vector() == std::vector<double>{1, 1, 0, 0, 1, 1});

  save_npy(tmp.file("s.npy"), scalar_tensor(2.5, DType::Float64));
  Tensor ls = load_npy(tmp.file("s.npy"));
  CHECK(ls.dim() == 0);
  CHECK(ls.item() == 2.5);
}

TEST_CASE("core npy: the written file is NumPy's format 1.0 layout") {
  TempDir tmp;
  save_npy(tmp.file("a.npy"), from_vector<float>({1.5f, -2.0f}, {2}));
  std::ifstream in(tmp.file("a.npy"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // 10 bytes of magic, version and length, then the header padded so data start at 128.
  REQUIRE(bytes.size() == 128 + 8);
  CHECK(bytes.compare(0, 8, std::string("\x93NUMPY\x01\x00", 8)) == 0);
  CHECK(static_cast<unsigned char>(bytes[8]) + 256 * static_cast<unsigned char>(bytes[9]) == 118);
  std::string header = bytes.substr(10, 118);
  CHECK(header.rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 0) == 0);
  CHECK(header.back() == '\n');
  float v[2];
  std::memcpy(v, bytes.data() + 128, 8);
  CHECK(v[0] == 1.5f);
  CHECK(v[1] == -2.0f);
}

TEST_CASE("core npy: loads hand-built version 1.0 and 2.0 files") {
  TempDir tmp;
  std::vector<double> vals = {0.5, -1.25, 3.0, 4.75, -5.5, 6.125};
  write_bytes(tmp.file("v1.npy"),
              npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", raw(vals)));
  Tensor a = load_npy(tmp.file("v1.npy"));
  CHECK(a.dtype() == DType::Float64);
  CHECK(a.shape() == Shape{2, 3});
  CHECK(a.get({1, 0}) == 4.75);
  CHECK(a.to_vector() == vals);

  // Version 2.0, keys in another order, double quotes, no trailing comma.
  std::vector<int64_t> ints = {10, -20, 30, 1LL << 50};
  write_bytes(tmp.file("v2.npy"),
              npy_bytes("{\"shape\": (4,1), \"fortran_order\": False, \"descr\": \"<i8\"}",
                        raw(ints), 2));
  Tensor b = load_npy(tmp.file("v2.npy"));
  CHECK(b.dtype() == DType::Int64);
  CHECK(b.shape() == Shape{4, 1});
  CHECK(b.data<int64_t>()[3] == (1LL << 50));
  CHECK(b.data<int64_t>()[1] == -20);

  // Bool bytes other than 0/1 read as true.
  write_bytes(tmp.file("b.npy"), npy_bytes("{'descr': '|b1', 'fortran_order': False, "
                                           "'shape': (3,), }", std::string("\x00\x07\x01", 3)));
  CHECK(load_npy(tmp.file("b.npy")).to_vector() == std::vector<double>{0, 1, 1});

  write_bytes(tmp.file("e.npy"),
              npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5), }", ""));
  CHECK(load_npy(tmp.file("e.npy")).shape() == Shape{0, 5});
}

TEST_CASE("core npy: every refusal is a dfx::Error naming the file") {
  TempDir tmp;
  auto dict = [](const std::string& descr, const std::string& order, const std::string& shape) {
    return "{'descr': '" + descr + "', 'fortran_order': " + order + ", 'shape': " + shape + ", }";
  };
  const std::string six_floats = raw(std::vector<float>{1, 2, 3, 4, 5, 6});

  check_load_error(tmp.file("missing.npy"), "cannot open");
  CHECK_THROWS_AS(load_npy(tmp.file("missing.npy")), Error);

  std::string bad = npy_bytes(dict("<f4", "False", "(6,)"), six_floats);
  bad[5] = 'Z';
  write_bytes(tmp.file("magic.npy"), bad);
  check_load_error(tmp.file("magic.npy"), "magic");
  write_bytes(tmp.file("short.npy"), "\x93NU");
  check_load_error(tmp.file("short.npy"), "magic");

  write_bytes(tmp.file("v3.npy"), npy_bytes(dict("<f4", "False", "(6,)"), six_floats, 3));
  check_load_error(tmp.file("v3.npy"), "version 3.0");

  for (const char* descr : {"<f2", ">f4", "<i4", "<U3"}) {
    write_bytes(tmp.file("dt.npy"), npy_bytes(dict(descr, "False", "(6,)"), six_floats));
    check_load_error(tmp.file("dt.npy"), std::string("unsupported dtype '") + descr + "'");
  }

  write_bytes(tmp.file("fortran.npy"), npy_bytes(dict("<f4", "True", "(2, 3)"), six_floats));
  check_load_error(tmp.file("fortran.npy"), "fortran_order");

  for (const std::string& h :
       {std::string("{'descr': '<f4', 'fortran_order': False, 'shape': (6,)"),
        std::string("not a dict"), std::string("{'descr': '<f4', 'shape': (6,), }"),
        dict("<f4", "False", "(-6,)"), dict("<f4", "Maybe", "(6,)"),
        dict("<f4", "False", "(6 7)"), std::string("{'descr': '<f4', 'fortran_order': False, "
                                                   "'shape': (6,), 'extra': 1}")}) {
    write_bytes(tmp.file("header.npy"), npy_bytes(h, six_floats));
    check_load_error(tmp.file("header.npy"), "malformed header");
  }
  // Header length beyond the end of the file.
  write_bytes(tmp.file("cut.npy"), npy_bytes(dict("<f4", "False", "(6,)"), "").substr(0, 40));
  check_load_error(tmp.file("cut.npy"), "malformed header");

  write_bytes(tmp.file("trunc.npy"),
              npy_bytes(dict("<f4", "False", "(2, 3)"), six_floats.substr(0, 20)));
  check_load_error(tmp.file("trunc.npy"), "truncated data: 20 bytes");

  write_bytes(tmp.file("dims.npy"),
              npy_bytes(dict("<f4", "False", "(1, 1, 1, 1, 1, 1, 1, 1, 6)"), six_floats));
  check_load_error(tmp.file("dims.npy"), "9 dims");
  write_bytes(tmp.file("dims8.npy"),
              npy_bytes(dict("<f4", "False", "(1, 1, 1, 1, 1, 1, 2, 3)"), six_floats));
  CHECK(load_npy(tmp.file("dims8.npy")).get({0, 0, 0, 0, 0, 0, 1, 2}) == 6);
}

TEST_CASE("core npy: atomic write leaves no temporary file and replaces the target") {
  TempDir tmp;
  const std::string path = tmp.file("field.npy");
  save_npy(path, full({3, 3}, 1.25, DType::Float64));
  save_npy(path, arange(0, 5, 1, DType::Int64));
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(tmp.dir)) names.push_back(e.path().filename());
  CHECK(names == std::vector<std::string>{"field.npy"});
  CHECK(load_npy(path).to_vector() == std::vector<double>{0, 1, 2, 3, 4});

  const std::string nowhere = tmp.file("no_such_dir/x.npy");
  std::string msg;
  try {
    save_npy(nowhere, arange(0, 3));
  } catch (const Error& e) {
    msg = e.what();
  }
  CHECK(msg.find(nowhere) != std::string::npos);
  CHECK_THROWS_AS(save_npy(tmp.file("u.npy"), Tensor()), Error);
  CHECK_THROWS_AS(save_npy(tmp.file("h.npy"), Tensor::empty({2}, DType::Float16)), Error);
  names.clear();
  for (const auto& e : fs::directory_iterator(tmp.dir)) names.push_back(e.path().filename());
  CHECK(names == std::vector<std::string>{"field.npy"});
}

}  // TEST_SUITE
