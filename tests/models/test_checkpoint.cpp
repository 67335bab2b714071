// tests/models/test_checkpoint.cpp — safetensors: a bitwise round trip of every dtype and of a
// U-Net's state, the file layout byte by byte, atomic writes, and every refusal (missing,
// unexpected, mis-shaped names listed together; truncated files; malformed headers and offsets).
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/copy.h"
#include "core/rng.h"
#include "models/checkpoint.h"
#include "models/unet.h"
#include "tests/models/model_test_util.h"

using namespace dfx;
using namespace dfx::nn;
namespace fs = std::filesystem;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), bytes.size());
}

// A safetensors file from a header text and a data blob.
std::string st_bytes(const std::string& header, const std::string& data) {
  uint64_t n = header.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);
  return out + header + data;
}

UNet small_unet(uint64_t seed) {
  UNetOptions o;
  o.depth = 2;
  o.width = 4;
  o.seed = seed;
  return UNet(o);
}

}  // namespace

TEST_SUITE("models") {

TEST_CASE("checkpoint: every dtype round-trips bitwise, with metadata and file layout") {
  testing::ScratchDir dir("ckpt");
  Named<Tensor> in = {
      {"f32", randn({3, 4}, 1)},
      {"f64", randn({2, 2, 2}, 2, 0, 0, DType::Float64)},
      {"i64", from_vector<int64_t>({-5, 0, 1LL << 40}, {3})},
      {"flag", from_vector<bool>({true, false, true}, {3}, Device::cpu())},
      {"scalar", full({}, 7.0, DType::Int64)},
      {"empty", zeros({0, 3})},
      {"strided", randn({4, 6}, 3).transpose(0, 1)},  // written contiguous
  };
  const std::string path = dir.file("t.safetensors");
  save_safetensors(path, in, {{"epoch", "3"}, {"note", "héllo"}});
  Metadata meta;
  Named<Tensor> out = load_safetensors(path, &meta);
  REQUIRE(out.size() == in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    INFO(in[i].first);
    CHECK(out[i].first == in[i].first);  // file order = the order given
    CHECK(testing::bitwise_equal(out[i].second, in[i].second));
  }
  CHECK(meta == Metadata{{"epoch", "3"}, {"note", "héllo"}});
  CHECK(load_safetensors_map(path).at("i64").get({2}) == static_cast<double>(1LL << 40));

  // Layout: u64 little-endian header length, the header padded to 8 bytes, then the data.
  const std::string bytes = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  CHECK(n % 8 == 0);
  auto header = nlohmann::json::parse(bytes.substr(8, n));
  CHECK(header["f32"]["dtype"] == "F32");
  CHECK(header["f64"]["dtype"] == "F64");
  CHECK(header["i64"]["dtype"] == "I64");
  CHECK(header["flag"]["dtype"] == "BOOL");
  CHECK(header["scalar"]["shape"] == nlohmann::json::array());
  CHECK(header["f32"]["data_offsets"] == nlohmann::json({0, 48}));
  CHECK(header["__metadata__"]["epoch"] == "3");
  std::vector<float> first(12);
  std::memcpy(first.data(), bytes.data() + 8 + n, 48);
  CHECK(first[5] == in[0].second.data<float>()[5]);

  CHECK_THROWS_WITH_AS(save_safetensors(path, {{"a", ones({1})}, {"a", ones({1})}}),
                       doctest::Contains("appears twice"), Error);
  CHECK_THROWS_AS(save_safetensors(path, {{"__metadata__", ones({1})}}), Error);
}

TEST_CASE("checkpoint: a U-Net's parameters and buffers round-trip bitwise") {
  testing::ScratchDir dir("ckpt");
  UNet a = small_unet(1);
  // Non-trivial buffers, as after training.
  for (auto& [name, t] : a.named_buffers()) {
    if (t.dtype() == DType::Int64) fill_(t, 42.0);
    else copy_(t, rand(t.shape(), 9, param_stream(name)));
  }
  const std::string path = dir.file("unet.safetensors");
  save_checkpoint(path, a, {{"step", "100"}});
  UNet b = small_unet(2);
  auto sb = b.state_dict();
  const void* before = sb[0].second.raw_data();
  Metadata meta = load_checkpoint(path, b);
  CHECK(meta.at("step") == "100");
  auto sa = a.state_dict();
  sb = b.state_dict();
  REQUIRE(sa.size() == sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    INFO(sa[i].first);
    CHECK(testing::bitwise_equal(sa[i].second, sb[i].second));
  }
  CHECK(sb[0].second.raw_data() == before);  // loaded in place
  CHECK(b.buffer("encoder.0.norm1.num_batches_tracked").item() == 42);

  // float64 model from a float32 file: converted on load.
  UNet c = small_unet(3);
  c.to(DType::Float64);
  load_checkpoint(path, c);
  CHECK(testing::rel_err(c.parameter("head.weight").data(), a.parameter("head.weight").data()) ==
        0.0);
}

TEST_CASE("checkpoint: missing, unexpected and mis-shaped names are listed in one error") {
  testing::ScratchDir dir("ckpt");
  UNet a = small_unet(1);
  Named<Tensor> state;
  for (auto& [name, t] : a.state_dict()) {
    if (name == "head.bias" || name == "encoder.1.norm2.running_var") continue;  // missing
    if (name == "up.0.weight") state.emplace_back(name, zeros({1, 2, 3}));      // mis-shaped
    else if (name == "encoder.0.norm1.num_batches_tracked")
      state.emplace_back(name, zeros({}));                                   // mis-typed
    else state.emplace_back(name, t);
  }
  state.emplace_back("extra.weight", ones({2}));  // unexpected
  const std::string path = dir.file("bad.safetensors");
  save_safetensors(path, state);

  UNet b = small_unet(2);
  Tensor before = b.parameter("encoder.0.conv1.weight").data().clone();
  std::string msg;
  try {
    load_checkpoint(path, b);
  } catch (const Error& e) {
    msg = e.what();
  }
  INFO(msg);
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find("missing (2): encoder.1.norm2.running_var, head.bias") != std::string::npos);
  CHECK(msg.find("unexpected (1): extra.weight") != std::string::npos);
  CHECK(msg.find("mis-shaped (1): up.0.weight") != std::string::npos);
  CHECK(msg.find("[1, 2, 3]") != std::string::npos);
  CHECK(msg.find("[8, 4, 2, 2]") != std::string::npos);
  CHECK(msg.find("mis-typed (1): encoder.0.norm1.num_batches_tracked") != std::string::npos);
  // Nothing was loaded.
  CHECK(testing::bitwise_equal(b.parameter("encoder.0.conv1.weight").data(), before));

  // Non-strict loading skips missing and unexpected names but never a wrong shape.
  CHECK_THROWS_WITH_AS(load_checkpoint(path, b, false), doctest::Contains("mis-shaped"), Error);
}

TEST_CASE("checkpoint: truncated and corrupt files are refused, naming the file") {
  testing::ScratchDir dir("ckpt");
  const std::string good = dir.file("good.safetensors");
  save_safetensors(good, {{"a", randn({4, 4}, 1)}, {"b", randn({3}, 2)}});
  const std::string bytes = read_bytes(good);
  const std::string path = dir.file("broken.safetensors");
  auto refuse = [&](const std::string& content, const std::string& what) {
    write_bytes(path, content);
    INFO(what);
    std::string msg;
    try {
      load_safetensors(path);
    } catch (const Error& e) {
      msg = e.what();
    }
    INFO(msg);
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find(what) != std::string::npos);
  };
  refuse(bytes.substr(0, bytes.size() - 4), "truncated");  // data cut short
  refuse(bytes.substr(0, 5), "truncated");                 // not even the length
  refuse(bytes.substr(0, 40), "header length");            // cut inside the header
  refuse(bytes + "xxxx", "after the last tensor");
  refuse(st_bytes("{\"a\": {\"dtype\": \"F32\", ", ""), "not valid JSON");
  refuse(st_bytes("[1, 2]", ""), "JSON object");
  refuse(st_bytes(R"({"a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}})", "xx"),
         "unsupported dtype");
  refuse(st_bytes(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", "xxxx"),
         "expected 8");
  refuse(st_bytes(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", "xxxx"),
         "non-integer");
  refuse(st_bytes(R"({"a": {"dtype": "F32", "shape": [1]}})", "xxxx"), "data_offsets");
  refuse(st_bytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                      "b": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}})",
                  "xxxxxx"),
         "overlaps");
  refuse(st_bytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                  "xxxxxxxx"),
         "hole");
  refuse(st_bytes(R"({"__metadata__": {"k": 1}})", ""), "not a string");
  std::string huge(8, '\xff');
  refuse(huge + "{}", "header length");
  CHECK_THROWS_WITH_AS(load_safetensors(dir.file("nope.safetensors")),
                       doctest::Contains("cannot open"), Error);
  // An empty file set is valid: a header and no tensors.
  write_bytes(path, st_bytes("{}      ", ""));
  CHECK(load_safetensors(path).empty());
}

TEST_CASE("checkpoint: writes are atomic and leave no temporary file") {
  testing::ScratchDir dir("ckpt");
  const std::string path = dir.file("model.safetensors");
  UNet a = small_unet(1);
  save_checkpoint(path, a);
  save_checkpoint(path, a);  // overwriting an existing file
  std::vector<std::string> files;
  for (auto& e : fs::directory_iterator(dir.dir)) files.push_back(e.path().filename().string());
  CHECK(files == std::vector<std::string>{"model.safetensors"});
  // A failed write leaves the old file and no temporary behind.
  CHECK_THROWS_WITH_AS(save_safetensors(dir.file("no/such/dir/x.safetensors"), a.state_dict()),
                       doctest::Contains("cannot create"), Error);
  CHECK_THROWS_AS(save_safetensors(path, {{"bad", Tensor::empty({2}, DType::Float16)}}), Error);
  files.clear();
  for (auto& e : fs::directory_iterator(dir.dir)) files.push_back(e.path().filename().string());
  CHECK(files == std::vector<std::string>{"model.safetensors"});
  UNet b = small_unet(2);
  load_checkpoint(path, b);
  CHECK(testing::bitwise_equal(a.parameter("head.weight").data(),
                               b.parameter("head.weight").data()));
}

}  // TEST_SUITE
