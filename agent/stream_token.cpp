#include "agent/stream_token.hpp"

#include "agent/docker_client.hpp"

#include <algorithm>

namespace paddock::agent {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxTail = 11;  // digits: the server allows fewer than 12
constexpr std::size_t kMaxCommandArgs = 4096;
constexpr std::size_t kMaxEnv = 4096;

Error refused(std::string message) { return Error{Errc::unauthorized, std::move(message)}; }
Error bad_param(const std::string& name) { return Error{Errc::invalid_input, "stream params: bad \"" + name + "\""}; }

// A boolean param: absent or null takes the default.
Result<bool> boolean(const json& params, const char* name, bool def) {
  auto it = params.find(name);
  if (it == params.end() || it->is_null()) return def;
  if (!it->is_boolean()) return bad_param(name);
  return it->get<bool>();
}

Result<std::string> string_param(const json& params, const char* name, std::size_t max) {
  auto it = params.find(name);
  if (it == params.end() || it->is_null()) return std::string();
  if (!it->is_string() || it->get_ref<const std::string&>().size() > max) return bad_param(name);
  return it->get<std::string>();
}

Result<std::vector<std::string>> strings_param(const json& params, const char* name, std::size_t max_items) {
  std::vector<std::string> out;
  auto it = params.find(name);
  if (it == params.end() || it->is_null()) return out;
  if (!it->is_array() || it->size() > max_items) return bad_param(name);
  for (const auto& v : *it) {
    if (!v.is_string()) return bad_param(name);
    out.push_back(v.get<std::string>());
  }
  return out;
}

Result<std::optional<std::int64_t>> epoch_param(const json& params, const char* name) {
  auto it = params.find(name);
  if (it == params.end() || it->is_null()) return std::optional<std::int64_t>();
  if (!it->is_number_integer() || it->get<std::int64_t>() < 0) return bad_param(name);
  return std::optional<std::int64_t>(it->get<std::int64_t>());
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

std::string_view stream_op_name(StreamOp op) {
  switch (op) {
    case StreamOp::logs: return "logs";
    case StreamOp::exec: return "exec";
    case StreamOp::stats: return "stats";
    case StreamOp::hoststats: return "hoststats";
  }
  return "?";
}

bool is_full_docker_id(std::string_view id) {
  return id.size() == 64 &&
         std::all_of(id.begin(), id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

Result<StreamRequest> check_stream_token(std::string_view token, const jwt::KeySet& keys, std::string_view host_id,
                                         std::int64_t now, std::int64_t leeway) {
  if (keys.empty()) return refused("no token keys from the server yet");
  auto verified = jwt::verify(token, keys, now, leeway);
  if (!verified) return refused(verified.error().message);
  const json& c = *verified;
  StreamRequest r;
  auto aud = c.find("aud");
  if (aud == c.end() || !aud->is_string()) return refused("the token has no audience");
  if (host_id.empty() || aud->get_ref<const std::string&>() != host_id) return refused("the token is for another host");
  auto jti = c.find("jti");
  if (jti == c.end() || !jti->is_string() || jti->get_ref<const std::string&>().empty() ||
      jti->get_ref<const std::string&>().size() > 256) {
    return refused("the token has no id");
  }
  r.jti = jti->get<std::string>();
  r.exp = c["exp"].get<std::int64_t>();  // verify() checked it is an integer
  auto op = c.find("op");
  if (op == c.end() || !op->is_string()) return refused("the token names no operation");
  const auto& name = op->get_ref<const std::string&>();
  if (name == "logs") {
    r.op = StreamOp::logs;
  } else if (name == "exec") {
    r.op = StreamOp::exec;
  } else if (name == "stats") {
    r.op = StreamOp::stats;
  } else if (name == "hoststats") {
    r.op = StreamOp::hoststats;
  } else {
    return refused("the token names an unknown operation");
  }
  if (r.op != StreamOp::hoststats) {
    auto container = c.find("container");
    if (container == c.end() || !container->is_string() ||
        !is_full_docker_id(container->get_ref<const std::string&>())) {
      return refused("the token names no valid container id");
    }
    r.container = container->get<std::string>();
  }
  auto params = c.find("params");
  if (params != c.end() && !params->is_null()) {
    if (!params->is_object()) return refused("the token's params are not an object");
    r.params = *params;
  }
  return r;
}

Result<LogsParams> logs_params(const json& params) {
  LogsParams p;
  if (!params.is_object()) return bad_param("params");
  auto follow = boolean(params, "follow", p.follow);
  auto timestamps = boolean(params, "timestamps", p.timestamps);
  auto out = boolean(params, "stdout", p.stdout_);
  auto err = boolean(params, "stderr", p.stderr_);
  for (const auto* r : {&follow, &timestamps, &out, &err}) {
    if (!*r) return r->error();
  }
  p.follow = *follow;
  p.timestamps = *timestamps;
  p.stdout_ = *out;
  p.stderr_ = *err;
  if (auto it = params.find("tail"); it != params.end() && !it->is_null()) {
    if (it->is_number_integer() && it->get<std::int64_t>() >= 0) {
      p.tail = std::to_string(it->get<std::int64_t>());
    } else if (it->is_string() && (*it == "all" || (all_digits(it->get_ref<const std::string&>()) &&
                                                    it->get_ref<const std::string&>().size() <= kMaxTail))) {
      p.tail = it->get<std::string>();
    } else {
      return bad_param("tail");
    }
  }
  auto since = epoch_param(params, "since");
  if (!since) return since.error();
  auto until = epoch_param(params, "until");
  if (!until) return until.error();
  p.since = *since;
  p.until = *until;
  return p;
}

std::string logs_target(std::string_view container, const LogsParams& p) {
  auto flag = [](bool b) { return b ? "1" : "0"; };
  std::string t = "/containers/" + url_encode(container) + "/logs?follow=" + flag(p.follow) +
                  "&tail=" + url_encode(p.tail) + "&timestamps=" + flag(p.timestamps) + "&stdout=" + flag(p.stdout_) +
                  "&stderr=" + flag(p.stderr_);
  if (p.since) t += "&since=" + std::to_string(*p.since);
  if (p.until) t += "&until=" + std::to_string(*p.until);
  return t;
}

Result<ExecParams> exec_params(const json& params) {
  ExecParams p;
  if (!params.is_object()) return bad_param("params");
  auto command = strings_param(params, "command", kMaxCommandArgs);
  if (!command) return command.error();
  if (command->empty()) return bad_param("command");
  p.command = std::move(*command);
  auto tty = boolean(params, "tty", p.tty);
  if (!tty) return tty.error();
  p.tty = *tty;
  auto stdin_ = boolean(params, "attachStdin", p.attach_stdin);
  if (!stdin_) return stdin_.error();
  p.attach_stdin = *stdin_;
  auto env = strings_param(params, "env", kMaxEnv);
  if (!env) return env.error();
  for (const auto& e : *env) {
    if (e.find('=') == std::string::npos) return bad_param("env");
  }
  p.env = std::move(*env);
  auto user = string_param(params, "user", 255);
  if (!user) return user.error();
  p.user = std::move(*user);
  auto dir = string_param(params, "workingDir", 4096);
  if (!dir) return dir.error();
  p.working_dir = std::move(*dir);
  return p;
}

json exec_create_body(const ExecParams& p) {
  json body = {{"AttachStdin", p.attach_stdin}, {"AttachStdout", true}, {"AttachStderr", true},
               {"Tty", p.tty},                  {"Cmd", p.command}};
  if (!p.env.empty()) body["Env"] = p.env;
  if (!p.user.empty()) body["User"] = p.user;
  if (!p.working_dir.empty()) body["WorkingDir"] = p.working_dir;
  return body;
}

Result<StatsParams> stats_params(const json& params) {
  StatsParams p;
  if (!params.is_object()) return bad_param("params");
  auto stream = boolean(params, "stream", p.stream);
  if (!stream) return stream.error();
  p.stream = *stream;
  return p;
}

bool JtiCache::insert(const std::string& jti, std::int64_t exp, std::int64_t now) {
  if (now >= next_purge_) {
    std::erase_if(seen_, [now](const auto& entry) { return entry.second < now; });
    next_purge_ = now + 10;
  }
  auto [it, inserted] = seen_.try_emplace(jti, exp);
  if (inserted) return true;
  if (it->second < now) {  // expired long ago: only a stale entry
    it->second = exp;
    return true;
  }
  return false;
}

}  // namespace paddock::agent
