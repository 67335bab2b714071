// tests/train/test_options.cpp — the typed configuration (train/options.h): one declaration per
// option gives JSON apply/dump with the keys of old checkpoints, "given" tracking, checked values
// and unknown keys answered with the nearest valid name.
#include <doctest/doctest.h>

#include "core/error.h"
#include "train/options.h"

using namespace dfx;
using train::TrainOptions;

namespace {
const train::Schema<TrainOptions>& keys_schema() {
  static const train::Schema<TrainOptions> s(train::train_options(), {"", false});
  return s;
}
}  // namespace

TEST_SUITE("train") {

TEST_CASE("options: JSON keys and types as config.json records them; defaults not given") {
  const auto& s = keys_schema();
  TrainOptions o;
  const nlohmann::json d = s.to_json(o);
  CHECK(d.at("res") == 64);
  CHECK(d.at("lr").get<double>() == doctest::Approx(0.001));
  CHECK(d.at("sync_bn") == true);
  CHECK(d.at("milestones").is_null());  // an unset string
  CHECK(d.at("cycle") == "half-v");
  CHECK(d.at("checkpoint_every") == 0);
  CHECK(!d.contains("config"));  // the command line's own
  CHECK(o.given.empty());
  s.apply_json(o, nlohmann::json::parse(R"({"res": 32, "lr": 0.5, "sync_bn": false, "optimizer": "sgd",
                                            "levels": "16,32", "milestones": null, "depth": "3"})"),
               "the configuration");
  CHECK(o.res == 32);
  CHECK(o.lr == 0.5);
  CHECK(!o.sync_bn);
  CHECK(o.optimizer == "sgd");
  CHECK(o.depth == 3);  // a string holding an integer, as before
  CHECK(o.was_given("res"));
  CHECK(!o.was_given("milestones"));  // null: skipped
  CHECK(!o.was_given("width"));
  TrainOptions back;
  s.apply_json(back, s.to_json(o), "a record");  // a record reads back as the same options
  CHECK(s.to_json(back) == s.to_json(o));
}

TEST_CASE("options: bad values name the key, the source and what is expected") {
  const auto& s = keys_schema();
  TrainOptions o;
  CHECK_THROWS_WITH_AS(s.set(o, "res", "sixteen", "the configuration"),
                       doctest::Contains("key 'res' in the configuration must be an integer, got 'sixteen'"), Error);
  CHECK_THROWS_WITH_AS(s.set(o, "lr", "inf", "x"), doctest::Contains("finite number"), Error);
  CHECK_THROWS_WITH_AS(s.set(o, "sync_bn", "maybe", "x"), doctest::Contains("true/false"), Error);
  CHECK_THROWS_WITH_AS(s.set(o, "cycle", "z", "x"), doctest::Contains("must be one of half-v|v|w|f, got 'z'"), Error);
  s.set(o, "overlap", "0", "x");
  CHECK(!o.overlap);
  const train::Schema<TrainOptions> cli(train::train_options(), {"dfx train: ", true});
  CHECK_THROWS_WITH_AS(cli.set(o, "res", "abc", "the command line"),
                       doctest::Contains("dfx train: --res (the command line) expects an integer, got 'abc'"), Error);
}

TEST_CASE("options: an unknown key suggests the nearest valid one") {
  const std::vector<std::string> keys = keys_schema().keys();
  CHECK(train::nearest_key("stpes", keys) == "steps");
  CHECK(train::nearest_key("sync-nb", keys) == "sync_bn");
  CHECK(train::nearest_key("checkpoint_evry", keys) == "checkpoint_every");
  CHECK(train::nearest_key("check-mem", keys) == "check_memory");
  CHECK(train::nearest_key("colour", keys).empty());
  TrainOptions o;
  CHECK_THROWS_WITH_AS(keys_schema().set(o, "bach", "3", "the configuration"),
                       doctest::Contains("unknown key 'bach' in the configuration; did you mean 'batch'?"), Error);
  const train::Schema<TrainOptions> cli(train::train_options(), {"dfx train: ", true});
  CHECK_THROWS_WITH_AS(cli.set(o, "lerning_rate", "3", "the command line"),
                       doctest::Contains("unknown option 'lerning_rate' in the command line; expected one of: problem, res"), Error);
  CHECK_THROWS_WITH_AS(cli.set(o, "eval_sample", "3", "the command line"),
                       doctest::Contains("did you mean --eval-samples?"), Error);
}

TEST_CASE("options: the C API and dfx train share one declaration list") {
  std::set<std::string> seen;
  for (const auto& info : keys_schema().infos()) {
    CHECK_MESSAGE(seen.insert(info.key).second, "key declared twice: ", info.key);
    CHECK_MESSAGE(!info.help.empty(), "key without help: ", info.key);
  }
  CHECK(seen.count("comm"));
  CHECK(seen.count("steps"));
  CHECK(keys_schema().info("out", "x").resume == train::ResumePolicy::PerInvocation);
  CHECK(keys_schema().info("steps", "x").resume == train::ResumePolicy::Overridable);
  CHECK(keys_schema().info("batch", "x").resume == train::ResumePolicy::Fixed);
  // The options become the library's configuration.
  TrainOptions o;
  o.optimizer = "lbfgs";
  o.levels = "8,16";
  o.level_steps = "2";
  o.res = 16;
  train::apply_optimizer_defaults(o);
  CHECK(o.lr == optim::optimizer_info("lbfgs").default_lr);
  const train::TrainConfig c = train::train_config(o);
  CHECK(c.optimizer.name == "lbfgs");
  CHECK(c.schedule.base_lr == o.lr);
  REQUIRE(c.levels.size() == 2);
  CHECK(c.levels[1].res == 16);
  o.lr = 0.25;
  o.given.insert("lr");
  train::apply_optimizer_defaults(o);
  CHECK(o.lr == 0.25);
}

}  // TEST_SUITE
