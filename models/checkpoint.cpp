// models/checkpoint.cpp — safetensors reader/writer and state_dict loading. The reader trusts
// nothing in the file: the header length, every entry and the offsets are checked against the file
// size before any data is read, and every refusal names the file and what was expected.
#include "models/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/copy.h"

namespace dfx::nn {

static_assert(std::endian::native == std::endian::little,
              "safetensors I/O assumes a little-endian host");

namespace {

using ordered_json = nlohmann::ordered_json;
namespace fs = std::filesystem;

// The reference implementation refuses headers over 100 MB; so do we (a corrupt length would
// otherwise ask for an absurd allocation).
constexpr uint64_t kMaxHeader = 100'000'000;
constexpr const char* kDtypes = "F32, F64, I64 or BOOL";

const char* st_dtype(DType t) {
  switch (t) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::Int64: return "I64";
    case DType::Bool: return "BOOL";
    default: return nullptr;
  }
}

bool dtype_from_st(const std::string& s, DType& out) {
  if (s == "F32") out = DType::Float32;
  else if (s == "F64") out = DType::Float64;
  else if (s == "I64") out = DType::Int64;
  else if (s == "BOOL") out = DType::Bool;
  else return false;
  return true;
}

std::string dir_of(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

// Makes the rename itself durable; best effort (some filesystems refuse fsync on directories).
void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    (void)::fsync(fd);
    ::close(fd);
  }
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

}  // namespace

void save_safetensors(const std::string& path, const Named<Tensor>& tensors,
                      const Metadata& metadata) {
  ordered_json header = ordered_json::object();
  if (!metadata.empty()) {
    ordered_json meta = ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  std::vector<Tensor> data;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    DFX_CHECK(!name.empty() && name != "__metadata__", "save_safetensors: '", path,
              "': invalid tensor name '", name, "'");
    DFX_CHECK(seen.insert(name).second, "save_safetensors: '", path, "': tensor name '", name,
              "' appears twice");
    DFX_CHECK(t.defined(), "save_safetensors: '", path, "': tensor '", name, "' is undefined");
    const char* dt = st_dtype(t.dtype());
    DFX_CHECK(dt != nullptr, "save_safetensors: '", path, "': tensor '", name, "' is ",
              t.describe(), "; expected float32, float64, int64 or bool");
    Tensor c = t.cpu().contiguous();
    header[name] = {{"dtype", dt},
                    {"shape", c.shape()},
                    {"data_offsets", {offset, offset + c.nbytes()}}};
    offset += c.nbytes();
    data.push_back(std::move(c));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // aligns the data to 8 bytes, as the library does
  const uint64_t len = text.size();

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  DFX_CHECK(f != nullptr, "save_safetensors: cannot create '", tmp, "' (for '", path, "'): ",
            std::strerror(errno), "; expected a writable directory");
  bool ok = std::fwrite(&len, 8, 1, f) == 1 && std::fwrite(text.data(), 1, len, f) == len;
  for (size_t i = 0; ok && i < data.size(); ++i)
    ok = std::fwrite(data[i].raw_data(), 1, data[i].nbytes(), f) == data[i].nbytes();
  ok = ok && std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  const int err = errno;
  ok = std::fclose(f) == 0 && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    DFX_FAIL("save_safetensors: writing '", tmp, "' (for '", path, "') failed: ",
             std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int rerr = errno;
    std::remove(tmp.c_str());
    DFX_FAIL("save_safetensors: cannot rename '", tmp, "' to '", path, "': ",
             std::strerror(rerr));
  }
  fsync_dir(dir_of(path));
}

Named<Tensor> load_safetensors(const std::string& path, Metadata* metadata) {
  std::ifstream in(path, std::ios::binary);
  DFX_CHECK(in.is_open(), "load_safetensors: cannot open '", path, "': ", std::strerror(errno),
            "; expected an existing, readable .safetensors file");
  std::error_code ec;
  const uint64_t file_size = fs::file_size(path, ec);
  DFX_CHECK(!ec, "load_safetensors: '", path, "': cannot read its size: ", ec.message());
  DFX_CHECK(file_size >= 8, "load_safetensors: '", path, "': truncated: ", file_size,
            " bytes; expected at least the 8-byte header length");
  uint64_t len = 0;
  in.read(reinterpret_cast<char*>(&len), 8);
  DFX_CHECK(len <= file_size - 8, "load_safetensors: '", path, "': truncated or corrupt: the "
            "header length is ", len, " bytes but only ", file_size - 8, " follow it");
  DFX_CHECK(len <= kMaxHeader, "load_safetensors: '", path, "': corrupt: header length ", len,
            " bytes; expected at most ", kMaxHeader);
  std::string text(len, '\0');
  in.read(text.data(), static_cast<std::streamsize>(len));
  DFX_CHECK(in.gcount() == static_cast<std::streamsize>(len), "load_safetensors: '", path,
            "': truncated inside the header");
  const uint64_t data_size = file_size - 8 - len;

  ordered_json header;
  try {
    header = ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    DFX_FAIL("load_safetensors: '", path, "': bad header: not valid JSON (", e.what(), ")");
  }
  auto bad = [&](const std::string& name, const std::string& what) {
    DFX_FAIL("load_safetensors: '", path, "': bad header: ",
             name.empty() ? std::string() : "entry '" + name + "': ", what);
  };
  if (!header.is_object()) bad("", "expected a JSON object at the top level");

  std::vector<Entry> entries;
  for (const auto& [name, e] : header.items()) {
    if (name == "__metadata__") {
      if (!e.is_object()) bad(name, "expected an object of strings");
      for (const auto& [k, v] : e.items()) {
        if (!v.is_string()) bad(name, "value of '" + k + "' is not a string");
        if (metadata) (*metadata)[k] = v.get<std::string>();
      }
      continue;
    }
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") ||
        !e.contains("data_offsets"))
      bad(name, "expected an object with dtype, shape and data_offsets");
    Entry en;
    en.name = name;
    if (!e["dtype"].is_string() || !dtype_from_st(e["dtype"].get<std::string>(), en.dtype))
      bad(name, "unsupported dtype " + e["dtype"].dump() + "; expected " + kDtypes);
    const auto& shape = e["shape"];
    if (!shape.is_array() || shape.size() > static_cast<size_t>(kMaxDims))
      bad(name, "shape " + shape.dump() + " is not an array of at most 8 dims");
    uint64_t numel = 1;
    for (const auto& s : shape) {
      if (!s.is_number_unsigned()) bad(name, "shape " + shape.dump() + " has a non-integer");
      const uint64_t v = s.get<uint64_t>();
      if (v != 0 && numel > (uint64_t{1} << 56) / v)
        bad(name, "shape " + shape.dump() + " is too large");
      numel *= v;
      en.shape.push_back(static_cast<int64_t>(v));
    }
    const auto& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      bad(name, "data_offsets " + off.dump() + "; expected [begin, end]");
    en.begin = off[0].get<uint64_t>();
    en.end = off[1].get<uint64_t>();
    if (en.end < en.begin || en.end - en.begin != numel * dtype_size(en.dtype))
      bad(name, "data_offsets " + off.dump() + " span " +
                    std::to_string(static_cast<int64_t>(en.end - en.begin)) + " bytes; expected " +
                    std::to_string(numel * dtype_size(en.dtype)) + " for " +
                    e["dtype"].get<std::string>() + " shape " + shape.dump());
    entries.push_back(std::move(en));
  }

  // The data must be covered exactly: no overlap, no hole, nothing past the end.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin < b.begin || (a.begin == b.begin && a.end < b.end);
  });
  uint64_t expect = 0;
  for (const Entry& en : entries) {
    if (en.begin != expect)
      bad(en.name, en.begin < expect ? "its data overlaps the previous tensor's"
                                     : "a hole of " + std::to_string(en.begin - expect) +
                                           " bytes precedes its data");
    expect = en.end;
  }
  DFX_CHECK(expect <= data_size, "load_safetensors: '", path, "': truncated: the header describes ",
            expect, " data bytes but the file holds ", data_size);
  DFX_CHECK(expect == data_size, "load_safetensors: '", path, "': corrupt: ", data_size - expect,
            " bytes after the last tensor's data");

  Named<Tensor> out;
  const uint64_t base = 8 + len;
  for (const Entry& en : entries) {
    Tensor t = Tensor::empty(en.shape, en.dtype, Device::cpu());
    in.seekg(static_cast<std::streamoff>(base + en.begin));
    in.read(static_cast<char*>(t.raw_data()), static_cast<std::streamsize>(en.end - en.begin));
    DFX_CHECK(in.good() || en.end == en.begin, "load_safetensors: '", path,
              "': read failed for tensor '", en.name, "'");
    if (en.dtype == DType::Bool) {
      auto* b = static_cast<unsigned char*>(t.raw_data());
      for (int64_t i = 0; i < t.numel(); ++i) b[i] = b[i] != 0;  // a C++ bool holds 0 or 1
    }
    out.emplace_back(en.name, std::move(t));
  }
  return out;
}

std::map<std::string, Tensor> load_safetensors_map(const std::string& path, Metadata* metadata) {
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : load_safetensors(path, metadata)) out.emplace(name, std::move(t));
  return out;
}

void save_checkpoint(const std::string& path, const Module& module, const Metadata& metadata) {
  save_safetensors(path, module.state_dict(), metadata);
}

void load_state_dict(Module& module, const Named<Tensor>& state, bool strict,
                     const std::string& source) {
  std::map<std::string, const Tensor*> given;
  for (const auto& [name, t] : state) given[name] = &t;
  const Named<Tensor> targets = module.state_dict();
  std::set<std::string> known;
  std::vector<std::string> missing, unexpected, misshaped, mistyped;
  std::vector<std::pair<Tensor, const Tensor*>> copies;
  for (const auto& [name, dst] : targets) {
    known.insert(name);
    auto it = given.find(name);
    if (it == given.end()) {
      if (strict) missing.push_back(name);
      continue;
    }
    const Tensor& src = *it->second;
    std::ostringstream os;
    if (src.shape() != dst.shape()) {
      os << name << " (" << source << " " << src.shape() << ", module " << dst.shape() << ")";
      misshaped.push_back(os.str());
    } else if (src.dtype() != dst.dtype() &&
               !(is_floating(src.dtype()) && is_floating(dst.dtype()))) {
      os << name << " (" << source << " " << src.dtype() << ", module " << dst.dtype() << ")";
      mistyped.push_back(os.str());
    } else {
      copies.emplace_back(dst, &src);
    }
  }
  if (strict)
    for (const auto& [name, t] : state)
      if (!known.count(name)) unexpected.push_back(name);

  if (!missing.empty() || !unexpected.empty() || !misshaped.empty() || !mistyped.empty()) {
    std::ostringstream os;
    os << "load_state_dict: " << source << " does not match " << module.describe() << ":";
    auto list = [&](const char* what, const std::vector<std::string>& names) {
      if (names.empty()) return;
      os << "\n  " << what << " (" << names.size() << "):";
      for (const auto& n : names) os << " " << n << (&n == &names.back() ? "" : ",");
    };
    list("missing", missing);
    list("unexpected", unexpected);
    list("mis-shaped", misshaped);
    list("mis-typed", mistyped);
    throw Error(os.str());
  }
  for (auto& [dst, src] : copies) copy_(dst, *src);
}

Metadata load_checkpoint(const std::string& path, Module& module, bool strict) {
  Metadata meta;
  Named<Tensor> state = load_safetensors(path, &meta);
  load_state_dict(module, state, strict, "'" + path + "'");
  return meta;
}

}  // namespace dfx::nn
