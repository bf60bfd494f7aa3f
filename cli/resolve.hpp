#pragma once
// Naming hosts and containers on the command line the way people do: a
// Paddock id ("1h7", "1c42"), a host's name, or a container's Docker id,
// unique Docker-id prefix or name. Each lookup is one or two filtered list
// requests (name, dockerId_prefix; within a host, on the host's `containers`
// link), never a scan of everything.

#include "cli/api_client.hpp"

#include <string_view>

namespace paddock::cli {

// True for a Paddock id of the type with `prefix` ("1h", "1c"): prefix + digits.
bool is_paddock_id(std::string_view text, std::string_view prefix);

// The host named by `ref` (an id or a unique name). Errors read "no host
// matches 'x'" or "'x' matches 2 hosts (1h1, 1h4); use an id".
ApiResult<json> resolve_host(ApiClient& api, std::string_view ref);

// The container named by `ref`, optionally only among `host_ref`'s. As with
// Docker, an exact Docker id wins over a name, and a name over an id prefix.
// Errors read "no container matches 'x'" or "'web' matches 2 containers on
// hosts h1, h2; use --host or an id".
ApiResult<json> resolve_container(ApiClient& api, std::string_view ref, std::string_view host_ref = {});

// The collection of a host's containers: its `containers` link.
std::string containers_url(const json& host);

// An account key's project for X-API-Project-Id: `ref` is an id or a unique
// project name.
ApiResult<json> resolve_project(ApiClient& api, std::string_view ref);

// Looks up the names of the hosts with these ids in one request; ids the
// caller cannot see map to themselves. Order follows `ids`.
ApiResult<std::vector<std::pair<std::string, std::string>>> host_names(ApiClient& api,
                                                                       const std::vector<std::string>& ids);
// The names of the hosts these containers run on, by host id.
ApiResult<std::map<std::string, std::string>> host_names_of(ApiClient& api, const std::vector<json>& containers);

}  // namespace paddock::cli
