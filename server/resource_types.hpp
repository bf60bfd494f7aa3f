#pragma once
// The API's resource types, one factory per type (one file each).

#include "server/resource_type.hpp"

#include <functional>
#include <memory>

namespace paddock::server {

// Prefixes of API ids, one per type: ids are prefix + row id.
namespace id_prefix {
inline constexpr const char* account = "1a";
inline constexpr const char* project = "1p";
inline constexpr const char* project_member = "1m";
inline constexpr const char* api_key = "1k";
inline constexpr const char* registration_token = "1t";
inline constexpr const char* host = "1h";
inline constexpr const char* container = "1c";
inline constexpr const char* image = "1i";
}  // namespace id_prefix

std::unique_ptr<ResourceType> make_account_type();
std::unique_ptr<ResourceType> make_project_type(std::vector<std::string> project_collections);
std::unique_ptr<ResourceType> make_project_member_type();
std::unique_ptr<ResourceType> make_api_key_type();
// `created` is called after a token is stored so the worker can activate it.
std::unique_ptr<ResourceType> make_registration_token_type(std::function<void()> created);

std::unique_ptr<ResourceType> make_host_type();
// What removing a host does besides deleting its row (directly or with its
// project): its credential is remembered, so its agent hears that the host
// was removed rather than a bare 401, and, once that has committed, its
// connection and streams end.
void retire_host(db::Connection& c, const RequestContext& ctx, const db::Row& host);
std::unique_ptr<ResourceType> make_container_type();
std::unique_ptr<ResourceType> make_image_type();

}  // namespace paddock::server
