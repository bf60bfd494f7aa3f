#pragma once
// The commands of `paddock`, one function each; app.cpp maps the command
// line onto them. Each returns the process exit code and prints its own
// one-line error ("error: ...") on failure.

#include "cli/api_client.hpp"
#include "common/result.hpp"

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace paddock::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// What a command runs with.
struct Session {
  ApiClient& api;
  std::ostream& out;
  std::ostream& err;

  bool json_output() const { return api.config().output == OutputFormat::json; }
  // Prints "error: <line>" and returns kExitFailure.
  int fail(std::string_view line) const;
  int fail(const ApiError& error) const { return fail(error.describe()); }
};

struct ContainersOptions {
  std::string host;                 // only this host's (id or name)
  std::vector<std::string> states;  // only these states (any of)
};

struct TokenCreateOptions {
  std::optional<std::int64_t> ttl;       // seconds
  std::optional<std::int64_t> max_uses;
  std::string name;
  bool wait = false;
  double timeout_s = 120;  // with wait
};

struct LogsOptions {
  std::string container;
  std::string host;
  bool follow = false;
  std::string tail;   // "" (the server's default), "all" or a count
  std::string since;  // RFC 3339, epoch seconds, or a duration ago ("10m")
  std::string until;
  bool timestamps = false;
};

struct ExecOptions {
  std::string container;
  std::string host;
  bool interactive = false;
  bool tty = false;
  std::vector<std::string> command;
};

struct StatsOptions {
  std::vector<std::string> containers;  // none: every running container
  std::string host;
  bool no_stream = false;
};

int hosts_list(Session& s);
// `action` is "activate" or "deactivate".
int hosts_action(Session& s, std::string_view action, const std::string& host);
int hosts_remove(Session& s, const std::string& host);

int containers_list(Session& s, const ContainersOptions& options);

int tokens_create(Session& s, const TokenCreateOptions& options);
int tokens_list(Session& s);

int logs(Session& s, const LogsOptions& options);
int exec(Session& s, const ExecOptions& options);
int stats(Session& s, const StatsOptions& options);

// --since/--until: RFC 3339 stays text, digits are epoch seconds, and a
// duration ("90s", "10m", "1h30m", "2d") means that long before `now_s`.
Result<nlohmann::json> parse_log_time(std::string_view text, std::int64_t now_s);
// --tail: "all" or a count.
Result<nlohmann::json> parse_tail(std::string_view text);

}  // namespace paddock::cli
