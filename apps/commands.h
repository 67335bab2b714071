// apps/commands.h — the subcommands of the `dfx` command line; each returns the exit status.
#pragma once
#include <string>
#include <vector>

namespace dfx::app {

using Args = std::vector<std::string>;

int cmd_info(const Args& args);
int cmd_demo(const Args& args);
int cmd_train(const Args& args);
int cmd_eval(const Args& args);
int cmd_solve(const Args& args);
int cmd_bench(const Args& args);

}  // namespace dfx::app
