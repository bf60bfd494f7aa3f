#pragma once
// GET /v1/stream (users) and GET /v1/tunnel (agents): WebSockets joined by
// the bearer token's jti (streams.md §3–§5).

#include "server/api.hpp"

namespace paddock::server {

void add_stream_routes(Api& api, ServerContext& server, Metrics& metrics);

}  // namespace paddock::server
