#pragma once
// Logging through spdlog: one line per event to stderr, level set at start-up.

#include <spdlog/spdlog.h>

#include <string_view>

namespace paddock::log {

// Sets the process-wide level from "trace|debug|info|warn|error|off".
// Returns false for an unknown level name.
bool set_level(std::string_view level);

}  // namespace paddock::log
