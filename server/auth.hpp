#pragma once
// Who is calling: API keys (HTTP Basic), their account or project, and the
// roles that decide what they may see and do.

#include "server/api_error.hpp"
#include "server/database.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace paddock::server {

enum class Role { none = 0, readonly = 1, member = 2, owner = 3 };

std::string_view role_name(Role role);
std::optional<Role> parse_role(std::string_view name);

struct Caller {
  std::int64_t key_id = 0;
  std::string access_key;
  std::optional<std::int64_t> account_id;      // account keys
  std::optional<std::int64_t> key_project_id;  // project keys
  bool admin = false;
  std::map<std::int64_t, Role> memberships;    // project id → role (account keys)

  // The caller's role in a project: admins are owners everywhere, a project
  // key is a member of its own project, accounts have their memberships.
  Role role_in(std::int64_t project_id) const;
  bool can_see(std::int64_t project_id) const { return role_in(project_id) >= Role::readonly; }
};

// Decodes "Basic base64(access:secret)". Returns nullopt for anything else.
std::optional<std::pair<std::string, std::string>> parse_basic_auth(std::string_view header);

// Looks the key up and checks the secret in constant time. Every failure is
// the same 401, whichever half was wrong, and whether the key is expired or
// deactivated.
ApiResult<Caller> authenticate(db::Connection& c, std::string_view access_key, std::string_view secret,
                               std::int64_t now_ms);

// The caller behind an access key the server itself vouched for (a signed
// ticket naming it): the same checks as authenticate() but the secret's.
ApiResult<Caller> caller_of_key(db::Connection& c, std::string_view access_key, std::int64_t now_ms);

}  // namespace paddock::server
