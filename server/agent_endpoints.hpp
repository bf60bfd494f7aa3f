#pragma once
// What agents talk to: registration (POST <registrationUrl>) and the control
// connection (GET /v1/connect). docs/agent-protocol.md is the wire contract.

#include "server/agent_hub.hpp"
#include "server/api.hpp"

namespace paddock::server {

void add_agent_routes(Api& api, ServerContext& server, AgentHub& agents, Metrics& metrics);

// Marks every host `disconnected`: at start-up no agent is connected yet.
Status reset_host_connections(db::Database& db);

}  // namespace paddock::server
