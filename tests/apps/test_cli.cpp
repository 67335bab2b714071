// tests/apps/test_cli.cpp — `dfx train`'s options on the command line (apps/cli.h): flags
// override --config, Bool flags bare or with a value, --key=value, the last of a repeated flag,
// and the errors for a flag without its value, an unknown flag (with a suggestion) and a stray
// argument.
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "apps/cli.h"
#include "core/error.h"

using namespace dfx;
using train::TrainOptions;

namespace {
TrainOptions parse(const app::Args& args) {
  const auto schema = app::command_schema("train", train::train_options());
  TrainOptions o;
  const bool parsed = app::parse_options(schema, "train", "test", args, o);  // may throw
  CHECK(parsed);
  return o;
}
}  // namespace

TEST_SUITE("apps") {

TEST_CASE("cli: flags override the config file; Bool flags bare or with a value") {
  const std::string path = (std::filesystem::temp_directory_path() / "dfx_test_cli.json").string();
  std::ofstream(path) << R"({"res": 32, "batch": 4, "sync_bn": false, "ranks": 3, "backend": "mpi"})";
  TrainOptions o = parse({"--config", path, "--res", "16", "--output-precondition", "--overlap", "false",
                          "--lr=0.5", "--steps", "3", "--steps", "4", "--milestones", "-1"});
  CHECK(o.res == 16);       // the flag
  CHECK(o.batch == 4);      // the file
  CHECK(!o.sync_bn);        // the file's Bool
  CHECK(o.output_precondition);
  CHECK(!o.overlap);
  CHECK(o.lr == 0.5);
  CHECK(o.steps == 4);      // the last one given
  CHECK(o.milestones == "-1");
  CHECK(o.config == path);
  CHECK(o.was_given("batch"));
  CHECK(o.was_given("res"));
  CHECK(!o.was_given("width"));
  std::remove(path.c_str());
}

TEST_CASE("cli: missing values, unknown flags and stray arguments are errors naming them") {
  CHECK_THROWS_WITH_AS(parse({"--steps", "--res", "32"}),
                       doctest::Contains("dfx train: --steps needs a value (an integer), but the next argument is the option --res"), Error);
  CHECK_THROWS_WITH_AS(parse({"--res"}), doctest::Contains("--res needs a value"), Error);
  CHECK_THROWS_WITH_AS(parse({"--bogus", "1"}), doctest::Contains("unknown option 'bogus' in the command line"), Error);
  CHECK_THROWS_WITH_AS(parse({"--chekpoint-every", "1"}), doctest::Contains("did you mean --checkpoint-every?"), Error);
  CHECK_THROWS_WITH_AS(parse({"--res", "16", "stray"}), doctest::Contains("unexpected argument 'stray'"), Error);
  CHECK_THROWS_WITH_AS(parse({"--sync-bn", "maybe"}), doctest::Contains("--sync-bn (the command line) expects a true/false value"), Error);
  CHECK_THROWS_WITH_AS(parse({"--config", "/nonexistent/x.json"}), doctest::Contains("cannot read config file"), Error);
}

}  // TEST_SUITE
