// apps/options.h — one table of options per subcommand, filled from an optional JSON config file
// (--config FILE, same keys) and then from flags, which override the file. Unknown keys and
// flags, malformed values and missing values are errors that name the offender and list what
// is accepted. `--checkpoint-every 5` and the JSON key "checkpoint_every" are the same option.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/commands.h"

namespace dfx::app {

struct OptionSpec {
  enum class Type { Int, Float, String, Bool };
  std::string key;     // JSON spelling (underscores)
  Type type;
  std::string value;   // default, as text ("" = unset for strings)
  std::string help;
  std::vector<std::string> choices = {};  // allowed values for strings (empty: any)
};

class Options {
 public:
  Options(std::string command, std::string summary, std::vector<OptionSpec> specs);

  // Returns false when --help was asked (the help text is printed).
  bool parse(const Args& args);

  int64_t i(const std::string& key) const;
  double f(const std::string& key) const;
  const std::string& s(const std::string& key) const;
  bool b(const std::string& key) const;
  bool given(const std::string& key) const;
  bool known(const std::string& key) const;  // an option of this command  // set by the file or a flag, not a default
  void set(const std::string& key, const std::string& value);

  nlohmann::json to_json() const;  // every option, resolved, typed
  // Applies a JSON object's keys (config file or a checkpoint's stored config) as if given.
  void apply_json(const nlohmann::json& j, const std::string& source);
  std::string help() const;

 private:
  const OptionSpec& spec(const std::string& key, const std::string& source) const;
  void assign(const std::string& key, const std::string& value, const std::string& source);

  std::string command_, summary_;
  std::vector<OptionSpec> specs_;
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> given_;
};

}  // namespace dfx::app
