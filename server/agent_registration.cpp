#include "server/agent_endpoints.hpp"

#include "common/crypto.hpp"
#include "common/jwt.hpp"
#include "common/time_util.hpp"
#include "server/host_facts.hpp"
#include "server/transaction.hpp"
#include "server/validation.hpp"

#include <spdlog/spdlog.h>

namespace paddock::server {

namespace http = boost::beast::http;
using nlohmann::json;

namespace {

// The token behind a registration URL if it may still register a host; an
// unknown, expired, used-up or inactive token is simply not found.
db::Row usable_token(db::Connection& c, const std::string& token) {
  if (token.empty() || token.size() > 128) return nullptr;
  const std::string hash = crypto::sha256_hex(token);
  auto row = c.query_one("SELECT * FROM registration_tokens WHERE tokenHash = ?", {hash});
  if (row.is_null() || row["state"] != "active") return nullptr;
  // Found by its hash through an index; confirm in constant time anyway.
  if (!crypto::constant_time_equals(row["tokenHash"].get<std::string>(), hash)) return nullptr;
  if (row["expiresAt"].is_number() && row["expiresAt"].get<std::int64_t>() <= time_util::now_ms()) return nullptr;
  if (row["maxUses"].is_number() && row["uses"].get<std::int64_t>() >= row["maxUses"].get<std::int64_t>()) {
    return nullptr;
  }
  return row;
}

struct Credential {
  std::string access, secret, salt, hash;
};

Credential new_credential() {
  Credential c;
  c.access = "agent-" + crypto::random_token(12);
  c.secret = crypto::random_token(32);
  c.salt = crypto::random_token(16);
  c.hash = crypto::hash_secret(c.salt, c.secret);
  return c;
}

HttpResponse get_registration(Api& api, ServerContext& server, HttpRequest& req, const std::string& token,
                              const std::string& base) {
  const std::string schemas = base + "/v1/schemas";
  auto row = server.db->read([&](db::Connection& c) { return usable_token(c, token); });
  if (!row) return api.error(req, ApiError::internal(), schemas);
  if (row->is_null()) return api.error(req, ApiError::not_found(), schemas);
  json body = {{"type", "registration"},
               {"serverUrl", base},
               {"registrationUrl", base + "/v1/scripts/" + token},
               {"caChecksum", server.ca_checksum.empty() ? json() : json(server.ca_checksum)}};
  return api.respond(req, 200, body, schemas);
}

// Shows on the host that another machine presented its identity.
void mark_conflict(Api& api, ServerContext& server, std::int64_t host_id, const std::string& peer_address) {
  const std::string note = "another machine (" + peer_address + ") registered with this host's machine id at " +
                           time_util::format_rfc3339(time_util::now_ms()) + " and was refused";
  auto marked = server.db->write([&](db::Connection& c) {
    c.exec("UPDATE hosts SET conflict = ? WHERE id = ?", {note, host_id});
    return c.query_one("SELECT * FROM hosts WHERE id = ?", {host_id});
  });
  if (marked && !marked->is_null()) api.publish(*api.type("host"), *marked);
  spdlog::warn("refused a registration with the machine id of connected host {} from {}", host_id, peer_address);
}

HttpResponse post_registration(Api& api, ServerContext& server, const AgentHub& agents, HttpRequest& req,
                               const std::string& token, const std::string& base, const std::string& peer_address) {
  const std::string schemas = base + "/v1/schemas";
  auto body = parse_json_body(req.body());
  if (!body) return api.error(req, body.error(), schemas);
  auto facts = registration_facts(*body);
  if (!facts) return api.error(req, facts.error(), schemas);

  // Looked up on a reader first: guesses at tokens take no write lock.
  auto known = server.db->read([&](db::Connection& c) { return !usable_token(c, token).is_null(); });
  if (!known) return api.error(req, ApiError::internal(), schemas);
  if (!*known) return api.error(req, ApiError::not_found(), schemas);

  const Credential credential = new_credential();
  db::Row token_row;
  std::int64_t conflicting_host = 0;
  auto host = write_tx(*server.db, [&](db::Connection& c) -> db::Row {
    token_row = usable_token(c, token);
    if (token_row.is_null()) throw ApiAbort(ApiError::not_found());
    const auto project = token_row["projectId"].get<std::int64_t>();
    const auto now = time_util::now_ms();
    c.exec("UPDATE registration_tokens SET uses = uses + 1 WHERE id = ?", {db::from_json(token_row["id"])});
    token_row = c.query_one("SELECT * FROM registration_tokens WHERE id = ?", {db::from_json(token_row["id"])});

    // The same machine registering again (its state was lost, or the command
    // re-run) gets its host back with a new credential: never a second host.
    auto existing = c.query_one("SELECT id, state FROM hosts WHERE projectId = ? AND machineId = ?",
                                {project, (*facts)["machineId"].get<std::string>()});
    if (!existing.is_null() && existing["state"] == "inactive") {
      throw ApiAbort({403, "HostDeactivated",
                      "this machine's host is deactivated: activate or remove it before registering again", {}});
    }
    std::int64_t id;
    if (!existing.is_null()) {
      id = existing["id"].get<std::int64_t>();
      // Its agent is connected right now: this is another machine with the
      // same machine id (a clone), or a second agent on this one. Either way
      // taking the host over would silently merge two machines.
      if (agents.connected(id)) {
        conflicting_host = id;
        throw ApiAbort({409, "HostConflict",
                        "a machine with this machine id is connected as host " + api.type("host")->def().id_prefix +
                            std::to_string(id) +
                            "; a cloned machine needs a machine id of its own (/etc/machine-id, or the "
                            "machine-id file in the agent's state directory), and on the same machine the running "
                            "paddock-agent must stop first",
                        {}});
      }
      c.exec("UPDATE hosts SET credentialKey = ?, credentialSalt = ?, credentialHash = ?, registrationTokenId = ? "
             "WHERE id = ?",
             {credential.access, credential.salt, credential.hash, db::from_json(token_row["id"]), id});
    } else {
      c.exec("INSERT INTO hosts (uuid, name, projectId, state, created, machineId, credentialKey, credentialSalt, "
             "credentialHash, registrationTokenId) VALUES (?, ?, ?, 'registering', ?, ?, ?, ?, ?, ?)",
             {crypto::hex_encode(crypto::random_bytes(16)), (*facts)["hostname"].get<std::string>(), project, now,
              (*facts)["machineId"].get<std::string>(), credential.access, credential.salt, credential.hash,
              db::from_json(token_row["id"])});
      id = c.last_insert_id();
    }
    apply_host_facts(c, id, *facts);
    return c.query_one("SELECT * FROM hosts WHERE id = ?", {id});
  });
  if (!host) {
    if (conflicting_host != 0) mark_conflict(api, server, conflicting_host, peer_address);
    return api.error(req, host.error(), schemas);
  }
  api.publish(*api.type("registrationToken"), token_row);
  api.publish(*api.type("host"), *host);
  spdlog::info("host {} registered ({})", host->value("name", ""), api.type("host")->id_of(*host));
  json answer = {{"type", "agentRegistration"},
                 {"hostId", api.type("host")->id_of(*host)},
                 {"hostUuid", (*host)["uuid"]},
                 {"credential", {{"accessKey", credential.access}, {"secretKey", credential.secret}}},
                 {"serverUrl", base},
                 {"jwks", server.keys->public_keys().to_jwks()}};
  return api.respond(req, 201, answer, schemas);
}

}  // namespace

void add_registration_route(Api& api, ServerContext& server, const AgentHub& agents) {
  ExtraRoute scripts;
  scripts.handle = [&api, &server, &agents](HttpRequest& req, const Peer& peer, const std::vector<std::string>& rest,
                                   const std::string& base) {
    if (rest.size() != 1) return api.error(req, ApiError::not_found(), base + "/v1/schemas");
    if (req.method() == http::verb::get) return get_registration(api, server, req, rest[0], base);
    if (req.method() == http::verb::post) return post_registration(api, server, agents, req, rest[0], base, peer.address);
    return api.error(req, ApiError::method_not_allowed(), base + "/v1/schemas");
  };
  api.add_route("scripts", std::move(scripts));
}

}  // namespace paddock::server
