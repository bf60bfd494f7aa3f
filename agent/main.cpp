// paddock-agent: thin on purpose; everything else is in the paddock_agent library.

#include "agent/agent.hpp"
#include "agent/options.hpp"
#include "common/log.hpp"

#include <csignal>
#include <exception>
#include <iostream>
#include <variant>

int main(int argc, char** argv) {
  // A peer that goes away mid-write must be an error, not a signal.
  std::signal(SIGPIPE, SIG_IGN);
  auto parsed = paddock::agent::parse_options(argc, argv, std::cout, std::cerr);
  if (auto* code = std::get_if<int>(&parsed)) return *code;
  auto& options = std::get<paddock::agent::Options>(parsed);
  paddock::log::set_level(paddock::agent::effective_log_level(options));
  try {
    return paddock::agent::run_agent(options).code;
  } catch (const std::exception& e) {
    spdlog::critical("unexpected failure: {}", e.what());
    return paddock::agent::kExitFailure;
  }
}
