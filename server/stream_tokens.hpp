#pragma once
// Stream bearer tokens (streams.md §2): the `logs`, `execute` and `stats`
// actions answer a `hostAccess` with a short-lived, one-time JWT bound to
// host, container, operation and caller.

#include "server/resource_type.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace paddock::server {

// Input types of the stream actions, and hostAccess, for the schemas.
std::vector<TypeDef> stream_schema_types();

// Checks an action's (already type-validated) input and returns the params
// claim: tail as "all" or a count, since/until as epoch seconds.
ApiResult<nlohmann::json> stream_params(const std::string& op, const nlohmann::json& input);

// Signs a token and returns the hostAccess answer. `op` is logs, exec,
// stats or hoststats; `container` is the Docker id (empty for hoststats).
nlohmann::json issue_stream_token(const RequestContext& ctx, std::int64_t host_id, const std::string& op,
                                  const std::string& container, const nlohmann::json& params);

}  // namespace paddock::server
