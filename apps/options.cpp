// apps/options.cpp — flag and JSON parsing for the subcommands (see options.h).
#include "apps/options.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace dfx::app {
namespace {

std::string flag_of(const std::string& key) {
  std::string f = key;
  for (char& c : f)
    if (c == '_') c = '-';
  return "--" + f;
}

std::string key_of(const std::string& flag) {
  std::string k = flag.substr(2);
  for (char& c : k)
    if (c == '-') c = '_';
  return k;
}

const char* type_name(OptionSpec::Type t) {
  switch (t) {
    case OptionSpec::Type::Int: return "n integer";
    case OptionSpec::Type::Float: return " number";
    case OptionSpec::Type::String: return " string";
    case OptionSpec::Type::Bool: return " true/false value";
  }
  return "?";
}

}  // namespace

Options::Options(std::string command, std::string summary, std::vector<OptionSpec> specs)
    : command_(std::move(command)), summary_(std::move(summary)), specs_(std::move(specs)) {
  specs_.push_back({"config", OptionSpec::Type::String, "", "JSON file with any of these keys (flags override it)"});
  for (const auto& s : specs_) {
    values_[s.key] = s.value;
    given_[s.key] = false;
  }
}

bool Options::known(const std::string& key) const {
  for (const auto& s : specs_)
    if (s.key == key) return true;
  return false;
}

const OptionSpec& Options::spec(const std::string& key, const std::string& source) const {
  for (const auto& s : specs_)
    if (s.key == key) return s;
  std::string known;
  for (const auto& s : specs_) known += (known.empty() ? "" : ", ") + s.key;
  DFX_FAIL("dfx ", command_, ": unknown option '", key, "' in ", source, "; expected one of: ", known);
}

void Options::assign(const std::string& key, const std::string& value, const std::string& source) {
  const OptionSpec& sp = spec(key, source);
  auto bad = [&] {
    DFX_FAIL("dfx ", command_, ": ", flag_of(key), " (", source, ") expects a", type_name(sp.type),
             ", got '", value, "'");
  };
  try {
    size_t used = 0;
    switch (sp.type) {
      case OptionSpec::Type::Int:
        std::stoll(value, &used);
        if (used != value.size()) bad();
        break;
      case OptionSpec::Type::Float: {
        const double x = std::stod(value, &used);
        if (used != value.size()) bad();
        // No option means anything by inf or nan.
        DFX_CHECK(std::isfinite(x), "dfx ", command_, ": ", flag_of(key), " (", source,
                  ") expects a finite number, got '", value, "'");
        break;
      }
      case OptionSpec::Type::Bool:
        if (value != "true" && value != "false" && value != "1" && value != "0") bad();
        break;
      case OptionSpec::Type::String:
        if (!sp.choices.empty()) {
          bool ok = false;
          std::string list;
          for (const auto& c : sp.choices) {
            ok = ok || c == value;
            list += (list.empty() ? "" : "|") + c;
          }
          DFX_CHECK(ok, "dfx ", command_, ": ", flag_of(key), " (", source, ") must be one of ",
                    list, ", got '", value, "'");
        }
        break;
    }
  } catch (const std::invalid_argument&) {
    bad();
  } catch (const std::out_of_range&) {
    bad();
  }
  values_[key] = (sp.type == OptionSpec::Type::Bool) ? ((value == "true" || value == "1") ? "true" : "false") : value;
  given_[key] = true;
}

void Options::apply_json(const nlohmann::json& j, const std::string& source) {
  DFX_CHECK(j.is_object(), "dfx ", command_, ": ", source, " must hold a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const auto& v = it.value();
    std::string text;
    if (v.is_string()) text = v.get<std::string>();
    else if (v.is_boolean()) text = v.get<bool>() ? "true" : "false";
    else if (v.is_number_integer()) text = std::to_string(v.get<int64_t>());
    else if (v.is_number()) {
      std::ostringstream os;
      os.precision(17);
      os << v.get<double>();
      text = os.str();
    } else if (v.is_null()) {
      continue;
    } else {
      DFX_FAIL("dfx ", command_, ": key '", it.key(), "' in ", source, " must be a string, number or boolean");
    }
    assign(it.key(), text, source);
  }
}

bool Options::parse(const Args& args) {
  // First pass: help and the config file, so flags can override the file.
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      std::fputs(help().c_str(), stdout);
      return false;
    }
  }
  std::vector<std::pair<std::string, std::string>> flags;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    DFX_CHECK(a.rfind("--", 0) == 0 && a.size() > 2, "dfx ", command_, ": unexpected argument '", a,
              "'; options look like --key value (see dfx ", command_, " --help)");
    std::string key, value;
    auto eq = a.find('=');
    if (eq != std::string::npos) {
      key = key_of(a.substr(0, eq));
      value = a.substr(eq + 1);
    } else {
      key = key_of(a);
      const OptionSpec& sp = spec(key, "the command line");
      if (sp.type == OptionSpec::Type::Bool && (i + 1 >= args.size() || args[i + 1].rfind("--", 0) == 0)) {
        value = "true";
      } else {
        DFX_CHECK(i + 1 < args.size(), "dfx ", command_, ": ", a, " needs a value");
        DFX_CHECK(args[i + 1].rfind("--", 0) != 0, "dfx ", command_, ": ", a, " needs a value (a",
                  type_name(sp.type), "), but the next argument is the option ", args[i + 1]);
        value = args[++i];
      }
    }
    flags.emplace_back(key, value);
  }
  for (const auto& [k, v] : flags) {
    if (k != "config") continue;
    std::ifstream in(v);
    DFX_CHECK(in.good(), "dfx ", command_, ": cannot read config file '", v, "'");
    nlohmann::json j;
    try {
      in >> j;
    } catch (const std::exception& e) {
      DFX_FAIL("dfx ", command_, ": config file '", v, "' is not valid JSON: ", e.what());
    }
    DFX_CHECK(j.is_object(), "dfx ", command_, ": config file '", v, "' must hold a JSON object "
              "({\"key\": value, ...}), got a", j.is_array() ? "n array" : " single value");
    j.erase("config");
    // A run's own config.json also records how it ran ("ranks", "backend"): not options.
    for (const char* k : {"ranks", "backend"})
      if (!known(k)) j.erase(k);
    apply_json(j, "config file '" + v + "'");
    assign("config", v, "the command line");
  }
  for (const auto& [k, v] : flags)
    if (k != "config") assign(k, v, "the command line");
  return true;
}

int64_t Options::i(const std::string& key) const { return std::stoll(values_.at(spec(key, "code").key)); }
double Options::f(const std::string& key) const { return std::stod(values_.at(spec(key, "code").key)); }
const std::string& Options::s(const std::string& key) const { return values_.at(spec(key, "code").key); }
bool Options::b(const std::string& key) const { return values_.at(spec(key, "code").key) == "true"; }
bool Options::given(const std::string& key) const { return given_.at(spec(key, "code").key); }
void Options::set(const std::string& key, const std::string& value) { assign(key, value, "code"); }

nlohmann::json Options::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& sp : specs_) {
    const std::string& v = values_.at(sp.key);
    switch (sp.type) {
      case OptionSpec::Type::Int: j[sp.key] = std::stoll(v); break;
      case OptionSpec::Type::Float: j[sp.key] = std::stod(v); break;
      case OptionSpec::Type::Bool: j[sp.key] = v == "true"; break;
      case OptionSpec::Type::String:
        if (v.empty()) j[sp.key] = nullptr;
        else j[sp.key] = v;
        break;
    }
  }
  return j;
}

std::string Options::help() const {
  std::ostringstream os;
  os << "usage: dfx " << command_ << " [options]\n  " << summary_ << "\n\noptions (JSON keys use _ for -):\n";
  for (const auto& sp : specs_) {
    const char* metavar = sp.type == OptionSpec::Type::Int ? " N" : sp.type == OptionSpec::Type::Float ? " X" : sp.type == OptionSpec::Type::String ? " S" : "";
    std::string left = flag_of(sp.key) + metavar;
    os << "  " << left;
    for (size_t k = left.size(); k < 26; ++k) os << ' ';
    os << sp.help;
    if (!sp.choices.empty()) {
      os << " (";
      for (size_t c = 0; c < sp.choices.size(); ++c) os << (c ? "|" : "") << sp.choices[c];
      os << ")";
    }
    if (!sp.value.empty()) os << " [" << sp.value << "]";
    os << "\n";
  }
  return os.str();
}

}  // namespace dfx::app
