#include "server/host_facts.hpp"

#include "common/time_util.hpp"
#include "server/validation.hpp"

#include <cctype>
#include <cmath>
#include <set>

namespace paddock::server {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxText = 255;
constexpr std::size_t kMaxCommand = 4096;
constexpr std::size_t kMaxEntries = 256;

bool text(const json& v, std::size_t max) {
  return v.is_string() && v.get_ref<const std::string&>().size() <= max && is_clean_text(v.get_ref<const std::string&>());
}

bool count(const json& v) { return v.is_number_integer() && v.get<std::int64_t>() >= 0; }

bool string_map(const json& v) {
  if (!v.is_object() || v.size() > kMaxEntries) return false;
  for (const auto& [k, val] : v.items()) {
    if (k.size() > kMaxText || !is_clean_text(k) || !text(val, 4096)) return false;
  }
  return true;
}

bool string_array(const json& v, std::size_t max_items) {
  if (!v.is_array() || v.size() > max_items) return false;
  for (const auto& item : v) {
    if (!text(item, kMaxText)) return false;
  }
  return true;
}

// Copies `name` from `in` to `out` if `ok` accepts it; a present but bad
// value fails the whole report.
template <class Check>
bool copy(const json& in, json& out, const char* name, Check ok) {
  auto it = in.find(name);
  if (it == in.end() || it->is_null()) return true;
  if (!ok(*it)) return false;
  out[name] = *it;
  return true;
}

std::optional<std::int64_t> docker_time(const json& v) {
  if (v.is_number_integer()) return v.get<std::int64_t>() * 1000;  // Docker lists use epoch seconds
  if (v.is_string()) return time_util::parse_rfc3339(v.get<std::string>());
  return std::nullopt;
}

}  // namespace

bool is_docker_id(const json& v) {
  if (!v.is_string()) return false;
  const auto& s = v.get_ref<const std::string&>();
  if (s.size() != 64 && !(s.size() == 71 && s.rfind("sha256:", 0) == 0)) return false;
  for (std::size_t i = s.size() - 64; i < s.size(); ++i) {
    if (!std::isxdigit(static_cast<unsigned char>(s[i])) || std::isupper(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

std::optional<json> host_report(const json& in) {
  if (!in.is_object()) return std::nullopt;
  json out = json::object();
  auto short_text = [](const json& v) { return text(v, kMaxText); };
  for (const char* name : {"hostname", "agentVersion", "dockerVersion", "dockerApiVersion", "os", "kernel", "arch",
                           "agentIp"}) {
    if (!copy(in, out, name, short_text)) return std::nullopt;
  }
  for (const char* name : {"cpuCount", "memoryTotal", "memoryUsed", "diskTotal", "diskUsed"}) {
    if (!copy(in, out, name, count)) return std::nullopt;
  }
  if (!copy(in, out, "cpuPercent", [](const json& v) {
        return v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() >= 0;
      })) {
    return std::nullopt;
  }
  if (!copy(in, out, "dockerState", [](const json& v) { return v == "ok" || v == "unreachable"; })) return std::nullopt;
  if (!copy(in, out, "labels", string_map)) return std::nullopt;
  if (!copy(in, out, "ipAddresses", [](const json& v) { return string_array(v, kMaxEntries); })) return std::nullopt;
  if (!copy(in, out, "machineId", [](const json& v) { return text(v, 128) && !v.get_ref<const std::string&>().empty(); })) {
    return std::nullopt;
  }
  return out;
}

ApiResult<json> registration_facts(const json& body) {
  if (!body.is_object()) return ApiError::bad_body("the registration body must be a JSON object");
  for (const char* required : {"hostname", "machineId"}) {
    if (!body.contains(required) || !body[required].is_string() || body[required].get<std::string>().empty()) {
      return ApiError::invalid("MissingRequired", required, std::string(required) + " is required");
    }
  }
  auto facts = host_report(body);
  if (!facts) return ApiError::invalid("InvalidType", "", "malformed host facts");
  return *facts;
}

std::optional<json> container_report(const json& in) {
  if (!in.is_object() || !is_docker_id(in.value("dockerId", json()))) return std::nullopt;
  json out = {{"dockerId", in["dockerId"]}};
  static const std::set<std::string> kStates = {"created", "running", "paused", "restarting",
                                                "removing", "exited", "dead"};
  auto state = in.value("state", json());
  if (!state.is_string() || !kStates.count(state.get<std::string>())) return std::nullopt;
  out["state"] = state;
  auto short_text = [](const json& v) { return text(v, kMaxText); };
  if (!copy(in, out, "name", short_text) || !copy(in, out, "image", [](const json& v) { return text(v, 1024); }) ||
      !copy(in, out, "command", [](const json& v) { return text(v, kMaxCommand); }) ||
      !copy(in, out, "status", short_text) || !copy(in, out, "labels", string_map)) {
    return std::nullopt;
  }
  if (auto it = in.find("ports"); it != in.end() && !it->is_null()) {
    if (!it->is_array() || it->size() > 4096 || it->dump().size() > 256 * 1024) return std::nullopt;
    out["ports"] = it->dump();
  }
  if (out.contains("labels")) out["labels"] = out["labels"].dump();
  auto created = docker_time(in.value("created", json()));
  out["created"] = created.value_or(time_util::now_ms());
  return out;
}

std::optional<json> image_report(const json& in) {
  if (!in.is_object() || !is_docker_id(in.value("dockerId", json()))) return std::nullopt;
  json out = {{"dockerId", in["dockerId"]}};
  if (!copy(in, out, "tags", [](const json& v) { return string_array(v, kMaxEntries); }) ||
      !copy(in, out, "size", count)) {
    return std::nullopt;
  }
  if (out.contains("tags")) out["tags"] = out["tags"].dump();
  auto created = docker_time(in.value("created", json()));
  out["created"] = created.value_or(time_util::now_ms());
  return out;
}

void apply_host_facts(db::Connection& c, std::int64_t id, const json& facts) {
  std::string sets;
  std::vector<db::Value> params;
  for (const auto& [key, value] : facts.items()) {
    if (key == "machineId") continue;
    const std::string column = key == "hostname" ? "name" : key;
    if (!sets.empty()) sets += ", ";
    sets += "\"" + column + "\" = ?";
    if (value.is_number_integer()) {
      params.emplace_back(value.get<std::int64_t>());
    } else if (value.is_number()) {
      params.emplace_back(value.get<double>());
    } else if (value.is_string()) {
      params.emplace_back(value.get<std::string>());
    } else {
      params.emplace_back(value.dump());
    }
  }
  if (sets.empty()) return;
  params.emplace_back(id);
  c.exec("UPDATE hosts SET " + sets + " WHERE id = ?", params);
}

}  // namespace paddock::server
