#pragma once
// Routes outside the API-key world: GET /v1/cacerts (the CA agents pin) and
// GET /v1/scripts/<token> (a registration URL).

#include "server/api.hpp"

namespace paddock::server {

void add_system_routes(Api& api, ServerContext& server);

}  // namespace paddock::server
