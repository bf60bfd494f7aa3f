#pragma once
// The agent's reading of a stream token (streams.md §2 and §4): it verifies
// every token itself, with the server's keys from its state, before anything
// reaches Docker. A token that fails any check opens nothing.

#include "common/jwt.hpp"
#include "common/result.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace paddock::agent {

enum class StreamOp { logs, exec, stats, hoststats };

std::string_view stream_op_name(StreamOp op);

// What a verified token asks for.
struct StreamRequest {
  StreamOp op = StreamOp::logs;
  std::string container;  // 64 lowercase hex; empty for hoststats
  std::string jti;
  std::int64_t exp = 0;
  nlohmann::json params = nlohmann::json::object();
};

// Clock skew between the server's host and this one is tolerated up to this.
inline constexpr std::int64_t kStreamTokenLeeway = 30;

// Verifies `token` against `keys` (signature, exp with `leeway_seconds`) and
// checks the claims: `aud` equal to `host_id`, a `jti`, a known `op`, a
// `container` of exactly 64 lowercase hex digits for every op but hoststats,
// and `params` an object (or absent). Every failure is Errc::unauthorized
// with one short line; the token itself is never part of it.
Result<StreamRequest> check_stream_token(std::string_view token, const jwt::KeySet& keys, std::string_view host_id,
                                         std::int64_t now_epoch_seconds,
                                         std::int64_t leeway_seconds = kStreamTokenLeeway);

// True for a full Docker id: exactly 64 lowercase hex digits.
bool is_full_docker_id(std::string_view id);

// The params of each op, with the defaults of streams.md §1 for anything
// absent. Wrong types are Errc::invalid_input (the server normalizes them,
// so this only happens with a buggy or foreign signer).
struct LogsParams {
  bool follow = true;
  std::string tail = "100";  // "all" or a decimal count
  std::optional<std::int64_t> since;  // epoch seconds
  std::optional<std::int64_t> until;
  bool timestamps = false;
  bool stdout_ = true;
  bool stderr_ = true;
};
Result<LogsParams> logs_params(const nlohmann::json& params);
// "/containers/<id>/logs?follow=1&tail=…" (without the /v1.xx prefix).
// `container` must be a full id; it is url-encoded all the same.
std::string logs_target(std::string_view container, const LogsParams& params);

struct ExecParams {
  std::vector<std::string> command;  // at least one element
  bool tty = true;
  bool attach_stdin = true;
  std::vector<std::string> env;  // K=V
  std::string user;
  std::string working_dir;
};
Result<ExecParams> exec_params(const nlohmann::json& params);
// The body of POST /containers/{id}/exec.
nlohmann::json exec_create_body(const ExecParams& params);

struct StatsParams {
  bool stream = true;
};
Result<StatsParams> stats_params(const nlohmann::json& params);

// Remembers the jtis of tokens that opened a tunnel until they expire, so a
// replayed "open" opens nothing. Not thread-safe.
class JtiCache {
 public:
  // False when `jti` was seen before and has not expired yet (a replay).
  bool insert(const std::string& jti, std::int64_t exp, std::int64_t now_epoch_seconds);
  std::size_t size() const noexcept { return seen_.size(); }

 private:
  std::unordered_map<std::string, std::int64_t> seen_;  // jti → exp
  std::int64_t next_purge_ = 0;
};

}  // namespace paddock::agent
