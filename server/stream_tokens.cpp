#include "server/stream_tokens.hpp"

#include "common/crypto.hpp"
#include "common/jwt.hpp"
#include "common/time_util.hpp"
#include "server/config.hpp"
#include "server/server_context.hpp"
#include "server/transaction.hpp"

#include <charconv>

namespace paddock::server {

using nlohmann::json;

std::vector<TypeDef> stream_schema_types() {
  TypeDef logs;
  logs.id = "containerLogsInput";
  logs.fields = {
      field("follow", FieldType::boolean).creatable().def(true),
      field("tail", FieldType::json_).creatable().def(100),
      field("since", FieldType::json_).null().creatable(),
      field("until", FieldType::json_).null().creatable(),
      field("timestamps", FieldType::boolean).creatable().def(false),
      field("stdout", FieldType::boolean).creatable().def(true),
      field("stderr", FieldType::boolean).creatable().def(true),
  };
  TypeDef exec;
  exec.id = "containerExecInput";
  exec.fields = {
      field("command", FieldType::array, "string").req().creatable(),
      field("tty", FieldType::boolean).creatable().def(true),
      field("attachStdin", FieldType::boolean).creatable().def(true),
      field("env", FieldType::array, "string").null().creatable(),
      field("user", FieldType::string).null().creatable().length(0, 255),
      field("workingDir", FieldType::string).null().creatable().length(0, 4096),
  };
  TypeDef stats;
  stats.id = "containerStatsInput";
  stats.fields = {field("stream", FieldType::boolean).creatable().def(true)};
  TypeDef access;
  access.id = "hostAccess";
  access.fields = {field("url", FieldType::string), field("token", FieldType::password)};
  return {logs, exec, stats, access};
}

namespace {

// RFC 3339 or epoch seconds (number or numeric string) → epoch seconds.
std::optional<std::int64_t> parse_time(const json& v) {
  if (v.is_number_integer()) return v.get<std::int64_t>();
  if (!v.is_string()) return std::nullopt;
  const auto& s = v.get_ref<const std::string&>();
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec == std::errc() && end == s.data() + s.size()) return n;
  if (auto ms = time_util::parse_rfc3339(s)) return *ms / 1000;
  return std::nullopt;
}

}  // namespace

ApiResult<json> stream_params(const std::string& op, const json& input) {
  json params = input;
  if (op == "logs") {
    const json& tail = input["tail"];
    if (tail == "all") {
      params["tail"] = "all";
    } else if (tail.is_number_integer() && tail.get<std::int64_t>() >= 0) {
      params["tail"] = std::to_string(tail.get<std::int64_t>());
    } else if (tail.is_string() && !tail.get<std::string>().empty() &&
               tail.get<std::string>().find_first_not_of("0123456789") == std::string::npos &&
               tail.get<std::string>().size() < 12) {
      params["tail"] = tail;
    } else {
      return ApiError::invalid("InvalidOption", "tail", "tail is a number of lines or \"all\"");
    }
    for (const char* name : {"since", "until"}) {
      if (!input.contains(name) || input[name].is_null()) continue;
      auto t = parse_time(input[name]);
      if (!t || *t < 0) return ApiError::invalid("InvalidType", name, std::string(name) + " is RFC 3339 or epoch seconds");
      params[name] = *t;
    }
    if (!input["stdout"].get<bool>() && !input["stderr"].get<bool>()) {
      return ApiError::invalid("InvalidOption", "stdout", "at least one of stdout and stderr");
    }
  } else if (op == "exec") {
    if (input["command"].empty()) return ApiError::invalid("MissingRequired", "command", "command is empty");
    if (input.contains("env") && input["env"].is_array()) {
      for (const auto& e : input["env"]) {
        if (e.get<std::string>().find('=') == std::string::npos) {
          return ApiError::invalid("InvalidOption", "env", "env entries are K=V");
        }
      }
    }
  }
  return params;
}

json issue_stream_token(const RequestContext& ctx, std::int64_t host_id, const std::string& op,
                        const std::string& container, const json& params) {
  const auto now = time_util::now_s();
  json claims = {{"iss", ctx.base_url},
                 {"aud", "1h" + std::to_string(host_id)},
                 {"sub", ctx.caller->access_key},
                 {"iat", now},
                 {"exp", now + ctx.server->config->stream_token_ttl},
                 {"jti", crypto::random_token(16)},
                 {"op", op},
                 {"params", params}};
  if (!container.empty()) claims["container"] = container;
  auto token = ctx.server->keys->sign(claims);
  if (!token) throw ApiAbort(ApiError::internal());
  std::string url = ctx.base_url;
  url.replace(0, url.find("://"), url.rfind("https", 0) == 0 ? "wss" : "ws");
  return {{"type", "hostAccess"}, {"url", url + "/v1/stream"}, {"token", *token}};
}

}  // namespace paddock::server
