#pragma once
// GET /v1/cacerts: the CA agents pin, no credentials needed.

#include "server/api.hpp"

namespace paddock::server {

void add_system_routes(Api& api, ServerContext& server);

}  // namespace paddock::server
