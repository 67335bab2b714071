// apps/cli.h — a subcommand's options on the command line: the declarations of train/options.h
// (plus --config FILE) bound to CLI11, so the flags, their --help and the JSON keys all come from
// one list. The config file is applied first, then the flags, which override it. Unknown flags
// and keys, malformed values and missing values are errors that name the offender, suggest the
// nearest valid name and list what is accepted. `--checkpoint-every 5` and the JSON key
// "checkpoint_every" are the same option; `--sync-bn false` and a bare `--output-precondition`
// set Bool options.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "train/options.h"

namespace dfx::app {

// The declarations of one command, with --config: errors spelled "dfx <command>: --flag ...".
template <class S>
train::Schema<S> command_schema(const std::string& command, std::vector<train::Option<S>> options) {
  options.push_back({"config", &S::config, "JSON file with any of these keys (flags override it)",
                     train::ResumePolicy::PerInvocation});
  return train::Schema<S>(std::move(options), {"dfx " + command + ": ", true});
}

// What the binding needs of a schema and the struct it fills (see parse_options).
struct CommandLine {
  std::string command, summary;
  const std::vector<train::OptionInfo>* options;
  std::function<void(const std::string& key, const std::string& value, const std::string& source)> set;
  std::function<void(const nlohmann::json& j, const std::string& source)> apply_json;
};
// Returns false when --help was asked (the help text is printed).
bool parse_command_line(const CommandLine& c, const Args& args);

// Fills `out` from --config FILE and then the flags; false when --help was asked.
template <class S>
bool parse_options(const train::Schema<S>& schema, const std::string& command,
                   const std::string& summary, const Args& args, S& out) {
  CommandLine c{command, summary, &schema.infos(),
                [&](const std::string& k, const std::string& v, const std::string& src) { schema.set(out, k, v, src); },
                [&](const nlohmann::json& j, const std::string& src) { schema.apply_json(out, j, src); }};
  return parse_command_line(c, args);
}

}  // namespace dfx::app
