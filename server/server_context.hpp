#pragma once
// The services request handlers and resource types share. Owned by the
// Server (server.cpp); every member outlives every request.

#include "server/config.hpp"
#include "server/database.hpp"
#include "server/events.hpp"

#include <string>

namespace paddock::jwt { class KeyRing; }

namespace paddock::server {

class AgentHub;
class SocketQuota;
class StreamBroker;

class ServerContext {
 public:
  const Config* config = nullptr;
  db::Database* db = nullptr;
  EventBus* events = nullptr;
  jwt::KeyRing* keys = nullptr;
  AgentHub* agents = nullptr;
  StreamBroker* streams = nullptr;
  SocketQuota* sockets = nullptr;
  std::string secrets_key;  // 32 bytes: seals registration tokens at rest
  std::string ca_pem;       // what GET /v1/cacerts serves (empty: operator's certificate)
  std::string ca_checksum;  // sha256 hex of ca_pem, put in agent commands; empty without own CA
};

}  // namespace paddock::server
