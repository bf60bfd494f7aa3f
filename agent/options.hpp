#pragma once
// paddock-agent's command line (shared/reference/agent.md, "options"): every
// option is also an environment variable, and a flag wins over its variable.

#include "common/result.hpp"

#include <chrono>
#include <filesystem>
#include <iosfwd>
#include <map>
#include <string>
#include <string_view>
#include <variant>

namespace paddock::agent {

struct Options {
  std::string registration_url;  // empty: run from the stored state
  std::filesystem::path state_dir = "/var/lib/paddock";
  std::string ca_checksum;       // lowercase sha256 hex of ca.pem; empty: system trust store
  std::string docker_host;       // DOCKER_HOST; empty: unix:///var/run/docker.sock
  std::map<std::string, std::string> labels;
  std::string agent_ip;          // empty: detected
  std::string hostname;          // empty: the machine's
  std::chrono::milliseconds report_interval{30000};
  std::string log_level = "info";
  bool log_level_given = false;  // by flag or environment
  bool bootstrap = false;        // register, start the long-running container, exit
};

// The level to log at: bootstrap runs print one line of their own, so they
// log only warnings unless asked for more.
inline std::string effective_log_level(const Options& o) {
  return o.bootstrap && !o.log_level_given ? "warn" : o.log_level;
}

// Parses argv and the PADDOCK_* (and DOCKER_HOST) variables. Returns the
// Options, or the exit code to stop with after printing to `out` (--help,
// --version: 0) or one line to `err` (bad usage: 2).
std::variant<Options, int> parse_options(int argc, const char* const* argv, std::ostream& out,
                                         std::ostream& err);

// "30s", "5m", "500ms", "1h" or plain seconds ("30"); 100 ms to 24 h.
Result<std::chrono::milliseconds> parse_interval(std::string_view text);

// "k=v" into `labels`; keys are non-empty, [A-Za-z0-9._/-], at most 128
// characters; values at most 1024 bytes.
Status add_label(std::map<std::string, std::string>& labels, std::string_view item);

// "k=v,k2=v2" (PADDOCK_HOST_LABELS); empty items are skipped.
Status add_labels_list(std::map<std::string, std::string>& labels, std::string_view list);

}  // namespace paddock::agent
