#include "server/auth.hpp"

#include "common/crypto.hpp"

namespace paddock::server {

std::string_view role_name(Role role) {
  switch (role) {
    case Role::owner: return "owner";
    case Role::member: return "member";
    case Role::readonly: return "readonly";
    case Role::none: break;
  }
  return "none";
}

std::optional<Role> parse_role(std::string_view name) {
  if (name == "owner") return Role::owner;
  if (name == "member") return Role::member;
  if (name == "readonly") return Role::readonly;
  return std::nullopt;
}

Role Caller::role_in(std::int64_t project_id) const {
  if (admin) return Role::owner;
  if (key_project_id) return *key_project_id == project_id ? Role::member : Role::none;
  auto it = memberships.find(project_id);
  return it == memberships.end() ? Role::none : it->second;
}

std::optional<std::pair<std::string, std::string>> parse_basic_auth(std::string_view header) {
  constexpr std::string_view prefix = "Basic ";
  if (header.size() <= prefix.size() || header.size() > 1024) return std::nullopt;
  if (!std::equal(prefix.begin(), prefix.end(), header.begin(),
                  [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) ==
                                              std::tolower(static_cast<unsigned char>(b)); })) {
    return std::nullopt;
  }
  auto decoded = crypto::base64_decode(header.substr(prefix.size()));
  if (!decoded) return std::nullopt;
  auto colon = decoded->find(':');
  if (colon == std::string::npos) return std::nullopt;
  return std::make_pair(decoded->substr(0, colon), decoded->substr(colon + 1));
}

namespace {
// The caller behind a key row: its state, expiry, account or project, roles.
ApiResult<Caller> caller_of_row(db::Connection& c, const db::Row& key, std::string_view access_key,
                                std::int64_t now_ms);
}  // namespace

ApiResult<Caller> authenticate(db::Connection& c, std::string_view access_key, std::string_view secret,
                               std::int64_t now_ms) {
  // Hash even when the key is unknown, so timing does not tell which half failed.
  static const std::string kDummySalt = crypto::random_token(16);
  db::Row key;
  if (access_key.size() <= 128) {
    key = c.query_one(
        "SELECT k.id, k.accountId, k.projectId, k.secretSalt, k.secretHash, k.expiresAt, k.state, "
        "a.kind AS accountKind, a.state AS accountState "
        "FROM api_keys k LEFT JOIN accounts a ON a.id = k.accountId WHERE k.publicValue = ?",
        {std::string(access_key)});
  }
  const std::string salt = key.is_null() ? kDummySalt : key["secretSalt"].get<std::string>();
  const std::string presented = crypto::hash_secret(salt, secret);
  const std::string stored = key.is_null() ? std::string(64, '0') : key["secretHash"].get<std::string>();
  const bool secret_ok = crypto::constant_time_equals(presented, stored);
  if (key.is_null() || !secret_ok) return ApiError::unauthorized();
  return caller_of_row(c, key, access_key, now_ms);
}

ApiResult<Caller> caller_of_key(db::Connection& c, std::string_view access_key, std::int64_t now_ms) {
  if (access_key.size() > 128) return ApiError::unauthorized();
  db::Row key = c.query_one(
      "SELECT k.id, k.accountId, k.projectId, k.expiresAt, k.state, a.kind AS accountKind, a.state AS accountState "
      "FROM api_keys k LEFT JOIN accounts a ON a.id = k.accountId WHERE k.publicValue = ?",
      {std::string(access_key)});
  if (key.is_null()) return ApiError::unauthorized();
  return caller_of_row(c, key, access_key, now_ms);
}

namespace {

ApiResult<Caller> caller_of_row(db::Connection& c, const db::Row& key, std::string_view access_key,
                                std::int64_t now_ms) {
  if (key["state"] != "active") return ApiError::unauthorized();
  if (key["expiresAt"].is_number() && key["expiresAt"].get<std::int64_t>() <= now_ms) {
    return ApiError::unauthorized();
  }

  Caller caller;
  caller.key_id = key["id"].get<std::int64_t>();
  caller.access_key = std::string(access_key);
  if (key["projectId"].is_number()) {
    caller.key_project_id = key["projectId"].get<std::int64_t>();
    auto project = c.query_one("SELECT state FROM projects WHERE id = ?", {*caller.key_project_id});
    if (project.is_null() || project["state"] != "active") return ApiError::unauthorized();
    return caller;
  }
  if (key["accountState"] != "active") return ApiError::unauthorized();
  caller.account_id = key["accountId"].get<std::int64_t>();
  caller.admin = key["accountKind"] == "admin";
  for (const auto& row : c.query("SELECT m.projectId, m.role FROM project_members m JOIN projects p ON "
                                 "p.id = m.projectId WHERE m.accountId = ? AND p.state = 'active'",
                                 {*caller.account_id})) {
    if (auto role = parse_role(row["role"].get<std::string>())) {
      caller.memberships[row["projectId"].get<std::int64_t>()] = *role;
    }
  }
  return caller;
}

}  // namespace

}  // namespace paddock::server
