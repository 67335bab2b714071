// apps/cli.cpp — the CLI11 binding of a command's declarations (see cli.h).
#include "apps/cli.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "core/error.h"

namespace dfx::app {
using train::OptionInfo;
using train::OptionType;

namespace {

const char* metavar(OptionType t) {
  switch (t) {
    case OptionType::Int: return "N";
    case OptionType::Float: return "X";
    case OptionType::String: return "S";
    case OptionType::Bool: return "[true|false]";
  }
  return "";
}

const char* expectation(OptionType t) {
  switch (t) {
    case OptionType::Int: return "an integer";
    case OptionType::Float: return "a number";
    case OptionType::String: return "a string";
    case OptionType::Bool: return "true or false";
  }
  return "";
}

const OptionInfo* find(const CommandLine& c, const std::string& key) {
  for (const auto& i : *c.options)
    if (i.key == key) return &i;
  return nullptr;
}

}  // namespace

bool parse_command_line(const CommandLine& c, const Args& args) {
  const std::string prefix = "dfx " + c.command + ": ";
  CLI::App app(c.summary, "dfx " + c.command);
  app.allow_extras();
  app.set_help_flag("-h,--help", "print this help and exit");
  app.get_formatter()->column_width(34);
  app.footer("JSON keys (--config, config.json, the checkpoints' config) are these names with _ "
             "for -; flags override the file.");
  std::vector<std::pair<std::string, std::string>> flags;  // (key, value) as given
  for (const OptionInfo& i : *c.options) {
    std::string help = i.help;
    if (!i.choices.empty()) {
      help += " (";
      for (size_t k = 0; k < i.choices.size(); ++k) help += (k ? "|" : "") + i.choices[k];
      help += ")";
    }
    if (!i.default_text.empty()) help += " [" + i.default_text + "]";
    const bool is_bool = i.type == OptionType::Bool;
    CLI::Option* o = app.add_option(
        train::flag_of(i.key),
        [&flags, key = i.key, is_bool](const CLI::results_t& r) {
          std::string v = r.empty() ? "" : r.back();
          if (is_bool && v.empty()) v = "true";  // a bare Bool flag
          flags.emplace_back(key, v);
          return true;
        },
        help);
    o->type_name(metavar(i.type));
    o->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    if (is_bool) o->expected(0, 1);
  }
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      std::fputs(app.help().c_str(), stdout);
      return false;
    }
  }
  // A flag that needs a value followed by another flag is an error, not a value.
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0 || a.find('=') != std::string::npos) continue;
    const OptionInfo* info = find(c, train::key_of(a));
    if (!info || info->type == OptionType::Bool) continue;
    DFX_CHECK(i + 1 < args.size(), prefix, a, " needs a value");
    DFX_CHECK(args[i + 1].rfind("--", 0) != 0, prefix, a, " needs a value (", expectation(info->type),
              "), but the next argument is the option ", args[i + 1]);
    ++i;
  }
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them last first
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    DFX_FAIL(prefix, e.what(), " (see dfx ", c.command, " --help)");
  }
  for (const std::string& a : app.remaining()) {
    DFX_CHECK(a.rfind("--", 0) == 0 && a.size() > 2, prefix, "unexpected argument '", a,
              "'; options look like --key value (see dfx ", c.command, " --help)");
    c.set(train::key_of(a.substr(0, a.find('='))), "", "the command line");  // throws: unknown
  }
  for (const auto& [k, v] : flags) {
    if (k != "config") continue;
    std::ifstream in(v);
    DFX_CHECK(in.good(), prefix, "cannot read config file '", v, "'");
    nlohmann::json j;
    try {
      in >> j;
    } catch (const std::exception& e) {
      DFX_FAIL(prefix, "config file '", v, "' is not valid JSON: ", e.what());
    }
    DFX_CHECK(j.is_object(), prefix, "config file '", v, "' must hold a JSON object "
              "({\"key\": value, ...}), got a", j.is_array() ? "n array" : " single value");
    j.erase("config");
    // A run's own config.json also records how it ran ("ranks", "backend"): not options.
    for (const char* k : {"ranks", "backend"})
      if (!find(c, k)) j.erase(k);
    c.apply_json(j, "config file '" + v + "'");
    c.set("config", v, "the command line");
  }
  for (const auto& [k, v] : flags)
    if (k != "config") c.set(k, v, "the command line");
  return true;
}

}  // namespace dfx::app
