#include "server/agent_endpoints.hpp"

#include "common/crypto.hpp"
#include "common/json_limits.hpp"
#include "common/jwt.hpp"
#include "common/time_util.hpp"
#include "server/host_facts.hpp"
#include "server/transaction.hpp"
#include "server/validation.hpp"

#include <spdlog/spdlog.h>

#include <map>

namespace paddock::server {

namespace http = boost::beast::http;
using nlohmann::json;

namespace {

constexpr std::size_t kMaxMessage = 4 * 1024 * 1024;
// A message buffer kept between an agent's messages at most this large.
constexpr std::size_t kKeptReadCapacity = 1024;
// Three missed 5-second pings.
constexpr auto kLiveness = std::chrono::seconds(15);

// Applies one agent's reports to the store and publishes what changed.
class Ingest {
 public:
  Ingest(Api& api, ServerContext& server, std::int64_t host_id, std::int64_t project_id)
      : api_(api), server_(server), host_id_(host_id), project_id_(project_id) {}

  // Returns an error message for a malformed message (the caller closes).
  std::optional<std::string> handle(const json& m) {
    if (!m.is_object() || !m.contains("type") || !m["type"].is_string()) return "message without a type";
    const std::string type = m["type"];
    std::vector<std::pair<const ResourceType*, db::Row>> changes;
    auto done = write_tx(*server_.db, [&](db::Connection& c) -> std::optional<std::string> {
      if (type == "snapshot") return snapshot(c, m, changes);
      if (type == "host") return host(c, m.value("host", json()), changes);
      if (type == "container" || type == "image") return upsert(c, type, m.value(type, json()), changes);
      if (type == "containerRemoved" || type == "imageRemoved") {
        const std::string kind = type == "containerRemoved" ? "container" : "image";
        if (!is_docker_id(m.value("dockerId", json()))) return "malformed " + type;
        remove(c, kind, m["dockerId"].get<std::string>(), changes);
        return std::nullopt;
      }
      return "unknown message type";
    });
    if (!done) {
      spdlog::warn("agent report for host {} not stored: {}", host_id_, done.error().message);
      return std::nullopt;  // a store problem is ours, not the agent's fault
    }
    if (*done) return *done;
    for (const auto& [t, row] : changes) api_.publish(*t, row);
    return std::nullopt;
  }

 private:
  using Changes = std::vector<std::pair<const ResourceType*, db::Row>>;

  std::optional<std::string> host(db::Connection& c, const json& report, Changes& changes) {
    auto facts = host_report(report);
    if (!facts) return "malformed host report";
    facts->erase("machineId");
    apply_host_facts(c, host_id_, *facts);
    c.exec("UPDATE hosts SET lastSeen = ? WHERE id = ?", {time_util::now_ms(), host_id_});
    auto after = c.query_one("SELECT * FROM hosts WHERE id = ?", {host_id_});
    changes.emplace_back(api_.type("host"), after);
    return std::nullopt;
  }

  static std::string table_of(const std::string& kind) { return kind == "container" ? "containers" : "images"; }

  // Inserts or updates one container/image; records it when it changed.
  std::optional<std::string> upsert(db::Connection& c, const std::string& kind, const json& report,
                                    Changes& changes) {
    auto row = kind == "container" ? container_report(report) : image_report(report);
    if (!row) return "malformed " + kind;
    const std::string table = table_of(kind);
    auto existing = c.query_one("SELECT * FROM " + table + " WHERE hostId = ? AND dockerId = ?",
                                {host_id_, (*row)["dockerId"].get<std::string>()});
    std::vector<db::Value> params;
    std::string columns, marks, sets;
    for (const auto& [key, value] : row->items()) {
      if (key == "dockerId") continue;
      const bool same = !existing.is_null() && existing.contains(key) && existing[key] == value;
      db::Value v = value.is_number_integer() ? db::Value(value.get<std::int64_t>())
                    : value.is_string()       ? db::Value(value.get<std::string>())
                                              : db::Value(value.dump());
      if (existing.is_null()) {
        columns += ", \"" + key + "\"";
        marks += ", ?";
        params.push_back(std::move(v));
      } else if (!same) {
        sets += (sets.empty() ? "\"" : ", \"") + key + "\" = ?";
        params.push_back(std::move(v));
      }
    }
    std::int64_t id;
    if (existing.is_null()) {
      std::vector<db::Value> all = {crypto::hex_encode(crypto::random_bytes(16)), project_id_, host_id_,
                                    (*row)["dockerId"].get<std::string>()};
      all.insert(all.end(), params.begin(), params.end());
      c.exec("INSERT INTO " + table + " (uuid, projectId, hostId, dockerId" + columns + ") VALUES (?, ?, ?, ?" +
                 marks + ")",
             all);
      id = c.last_insert_id();
    } else {
      id = existing["id"].get<std::int64_t>();
      if (sets.empty()) return std::nullopt;  // nothing new: no event
      params.emplace_back(id);
      c.exec("UPDATE " + table + " SET " + sets + " WHERE id = ?", params);
    }
    changes.emplace_back(api_.type(kind), c.query_one("SELECT * FROM " + table + " WHERE id = ?", {id}));
    return std::nullopt;
  }

  void remove(db::Connection& c, const std::string& kind, const std::string& docker_id, Changes& changes) {
    const std::string table = table_of(kind);
    auto existing = c.query_one("SELECT * FROM " + table + " WHERE hostId = ? AND dockerId = ?", {host_id_, docker_id});
    if (existing.is_null()) return;
    c.exec("DELETE FROM " + table + " WHERE id = ?", {db::from_json(existing["id"])});
    existing["state"] = "removed";
    changes.emplace_back(api_.type(kind), existing);
  }

  std::optional<std::string> snapshot(db::Connection& c, const json& m, Changes& changes) {
    if (auto e = host(c, m.value("host", json()), changes)) return e;
    for (const std::string kind : {"container", "image"}) {
      const auto list = m.value(kind + "s", json());
      if (!list.is_array() || list.size() > 100000) return "malformed snapshot";
      std::set<std::string> present;
      for (const auto& item : list) {
        if (auto e = upsert(c, kind, item, changes)) return e;
        present.insert(item["dockerId"].get<std::string>());
      }
      // Whatever the snapshot does not mention is gone from the host.
      for (const auto& row : c.query("SELECT dockerId FROM " + table_of(kind) + " WHERE hostId = ?", {host_id_})) {
        const auto id = row["dockerId"].get<std::string>();
        if (!present.count(id)) remove(c, kind, id, changes);
      }
    }
    return std::nullopt;
  }

  Api& api_;
  ServerContext& server_;
  std::int64_t host_id_;
  std::int64_t project_id_;
};

// Runs `sql` on the host and publishes the result. Returns the host's state
// after it: "" if the host is gone, nullopt if the store failed.
std::optional<std::string> set_state(Api& api, ServerContext& server, std::int64_t host_id, const std::string& sql) {
  auto row = server.db->write([&](db::Connection& c) {
    c.exec(sql, {time_util::now_ms(), host_id});
    return c.query_one("SELECT * FROM hosts WHERE id = ?", {host_id});
  });
  if (!row) return std::nullopt;
  if (row->is_null()) return "";
  api.publish(*api.type("host"), *row);
  return (*row)["state"].get<std::string>();
}

Upgrade connect(Api& api, ServerContext& server, AgentHub& agents, Metrics& metrics, HttpRequest& req,
                const Peer& peer, const std::string& base) {
  Upgrade up;
  const std::string schemas = base + "/v1/schemas";
  auto refuse = [&](ApiError e) {
    up.refusal = api.error(req, e, schemas);
    metrics.observe_request("/v1/connect", "GET", e.status, 0);
    return up;
  };
  auto credentials = parse_basic_auth(req[http::field::authorization]);
  if (!credentials) return refuse(ApiError::unauthorized());
  // Names the agent process, so its own reconnect replaces a connection the
  // server has not yet seen die, while another machine's is a conflict.
  std::string instance(req["X-Paddock-Agent-Instance"]);
  if (instance.size() > 64) instance.clear();
  const std::string conflict_note = "another machine (" + peer.address + ") connected with this host's identity at " +
                                    time_util::format_rfc3339(time_util::now_ms()) + " and was refused";
  // Checked on a reader: the common case writes nothing here.
  auto checked = read_tx(*server.db, [&](db::Connection& c) -> db::Row {
    auto host = c.query_one("SELECT * FROM hosts WHERE credentialKey = ?", {credentials->first});
    if (host.is_null()) {
      if (!c.query_one("SELECT 1 FROM removed_hosts WHERE credentialKey = ?", {credentials->first}).is_null()) {
        throw ApiAbort({410, "HostRemoved", "this host was removed; register it again with a new command", {}});
      }
      throw ApiAbort(ApiError::unauthorized());
    }
    if (!crypto::constant_time_equals(crypto::hash_secret(host["credentialSalt"].get<std::string>(), credentials->second),
                                      host["credentialHash"].get<std::string>())) {
      throw ApiAbort(ApiError::unauthorized());
    }
    if (host["state"] == "inactive") {
      throw ApiAbort({403, "HostDeactivated", "this host was deactivated by an administrator", {}});
    }
    return host;
  });
  if (!checked) return refuse(checked.error());
  db::Row host = std::move(*checked);
  if (agents.held_by_other(host["id"].get<std::int64_t>(), instance)) {
    // A cloned machine: refuse it, and show the conflict on the host.
    auto marked = server.db->write([&](db::Connection& c) {
      c.exec("UPDATE hosts SET conflict = ? WHERE id = ?", {conflict_note, db::from_json(host["id"])});
      return c.query_one("SELECT * FROM hosts WHERE id = ?", {db::from_json(host["id"])});
    });
    if (marked && !marked->is_null()) api.publish(*api.type("host"), *marked);
    spdlog::warn("refused a second connection for host {} from {}", host["id"].get<std::int64_t>(), peer.address);
    return refuse({409, "HostConflict", "another machine is connected with this host's identity", {}});
  }

  const auto host_id = host["id"].get<std::int64_t>();
  const auto project_id = host["projectId"].get<std::int64_t>();
  up.run = [&api, &server, &agents, &metrics, host_id, project_id, instance,
            addr = peer.address](std::shared_ptr<WebSocket> ws) -> asio::awaitable<void> {
    const auto session = agents.attach(host_id, ws, instance);
    if (session == 0) {
      co_await ws->close({static_cast<websocket::close_code>(4409), "another machine is connected with this identity"});
      co_return;
    }
    metrics.websocket_opened("agent");
    ws->set_read_limit(kMaxMessage);
    // With keep-alive pings any byte from the agent, its own pings included,
    // counts as life; without them Beast would time out an idle reader.
    ws->set_idle_timeout(kLiveness, true);
    ws->set_max_queued(8 * 1024 * 1024);
    {
      // The welcome first: the agent's watchdog waits for it, the store may
      // not. Scoped: thousands of idle connections keep no copy of it.
      const std::string welcome = json{{"type", "welcome"},
                                       {"hostId", api.type("host")->def().id_prefix + std::to_string(host_id)},
                                       {"jwks", server.keys->public_keys().to_jwks()}}
                                      .dump();
      const auto welcomed = co_await ws->write(asio::buffer(welcome), false);
      (void)welcomed;  // a failed write shows up as the read below failing
    }
    const auto state = set_state(api, server, host_id,
                                 "UPDATE hosts SET state = 'active', lastSeen = ? WHERE id = ? AND state != 'inactive'");
    // Deactivated or removed after the credential was checked, before the
    // connection was attached: its close went to nobody, so close it here.
    if (state == "inactive" || state == "") {
      agents.detach(host_id, session);
      metrics.websocket_closed("agent");
      co_await ws->close(*state == "" ? websocket::close_reason{static_cast<websocket::close_code>(4410), "host removed"}
                                      : websocket::close_reason{static_cast<websocket::close_code>(4403),
                                                                "host deactivated"});
      co_return;
    }
    spdlog::info("agent of host {} connected from {}", host_id, addr);

    Ingest ingest(api, server, host_id, project_id);
    beast::flat_buffer buffer;
    for (;;) {
      auto ec = co_await ws->read(buffer);
      // The socket itself closes on an oversized (1009) or broken (1002) frame.
      if (ec) break;
      const std::string_view text(static_cast<const char*>(buffer.data().data()), buffer.size());
      // Depth first: nesting deep enough would exhaust the stack of every
      // recursive walk of the parsed value, the server's whole process with it.
      const bool shallow = json_depth_within(text, kMaxJsonDepth);
      auto message = shallow ? json::parse(text, nullptr, false) : json();
      buffer.consume(buffer.size());
      // A snapshot's room is not kept between reports.
      if (buffer.capacity() > kKeptReadCapacity) buffer.shrink_to_fit();
      std::optional<std::string> problem;
      if (!shallow) {
        problem = "message nests deeper than " + std::to_string(kMaxJsonDepth) + " levels";
      } else if (message.is_discarded() || !ws->got_text()) {
        problem = "malformed message";
      } else {
        problem = ingest.handle(message);
      }
      if (problem) {
        spdlog::warn("disconnecting the agent of host {}: {}", host_id, *problem);
        co_await ws->close({websocket::close_code::policy_error, *problem});
        break;
      }
    }
    agents.detach(host_id, session);
    metrics.websocket_closed("agent");
    if (!agents.connected(host_id)) {  // not replaced by a newer connection
      (void)set_state(api, server, host_id,
                      "UPDATE hosts SET state = 'disconnected', lastSeen = ? WHERE id = ? AND state = 'active'");
      spdlog::info("agent of host {} disconnected", host_id);
      // A new connection may have come, and marked the host active, between
      // the look and the write: it must not stay marked disconnected.
      if (agents.connected(host_id)) {
        (void)set_state(api, server, host_id,
                        "UPDATE hosts SET state = 'active', lastSeen = ? WHERE id = ? AND state = 'disconnected'");
      }
    }
  };
  return up;
}

}  // namespace

void add_registration_route(Api& api, ServerContext& server, const AgentHub& agents);

void add_agent_routes(Api& api, ServerContext& server, AgentHub& agents, Metrics& metrics) {
  add_registration_route(api, server, agents);
  ExtraRoute route;
  route.upgrade = [&](HttpRequest& req, const Peer& peer, const std::string& base) {
    return connect(api, server, agents, metrics, req, peer, base);
  };
  route.handle = [&api](HttpRequest& req, const Peer&, const std::vector<std::string>&, const std::string& base) {
    return api.error(req, {400, "InvalidFormat", "/v1/connect is a WebSocket: send an Upgrade request", {}},
                     base + "/v1/schemas");
  };
  api.add_route("connect", std::move(route));
}

Status reset_host_connections(db::Database& db) {
  return db.write([](db::Connection& c) {
    c.exec("UPDATE hosts SET state = 'disconnected' WHERE state = 'active'");
  });
}

}  // namespace paddock::server
