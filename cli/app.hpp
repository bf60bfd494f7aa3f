#pragma once
// The `paddock` command line: every command and option, parsed with CLI11
// into plain option structs (so tests can check parsing without a server),
// then run against the configured server.

#include "cli/api_client.hpp"
#include "cli/commands.hpp"
#include "cli/config.hpp"

#include <CLI/CLI.hpp>

#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace paddock::cli {

class App {
 public:
  App();

  // Parses `args` (without the program name). Returns an exit code when
  // nothing is left to run (--help, --version: 0; a usage error: 2, with the
  // message on `err`), or nullopt when command() is ready to run.
  std::optional<int> parse(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

  // Runs the parsed command; returns the process exit code.
  int run(std::ostream& out, std::ostream& err, const Getenv& getenv = system_getenv,
          ApiClient::Transport transport = ApiClient::network_transport());

  // The chosen command, e.g. "hosts", "hosts rm", "tokens create", "exec".
  const std::string& command() const { return command_; }

  // What was parsed.
  GlobalFlags global;
  std::string host_ref;  // hosts activate|deactivate|rm HOST
  ContainersOptions containers;
  TokenCreateOptions token;
  LogsOptions logs;
  ExecOptions exec;
  StatsOptions stats;

 private:
  std::optional<int> finish_parse(std::ostream& err);

  CLI::App cli_;
  std::string command_;
  std::function<int(Session&)> run_;
  CLI::App* exec_cmd_ = nullptr;
};

// The whole program: main() is this.
int run_main(int argc, char** argv);

}  // namespace paddock::cli
