#pragma once
// paddock-agent from parsed options to its end: load or make the state
// (trust, registration), then run the control connection, the Docker monitor
// and the resource reporter on one thread until SIGTERM/SIGINT or a refusal.

#include "agent/exit_status.hpp"
#include "agent/options.hpp"

namespace paddock::agent {

// Blocks until the agent ends. A refusal is logged as one line (exit 2);
// a clean stop is exit 0.
ExitStatus run_agent(const Options& options);

}  // namespace paddock::agent
