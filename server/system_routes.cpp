#include "server/system_routes.hpp"

#include "common/crypto.hpp"
#include "common/time_util.hpp"

namespace paddock::server {

namespace http = boost::beast::http;

namespace {

// The token behind a registration URL, if it may still register a host. A
// token that is unknown, expired, used up or inactive is simply not found.
db::Row usable_token(db::Connection& c, const std::string& token) {
  if (token.empty() || token.size() > 128) return nullptr;
  auto row = c.query_one("SELECT * FROM registration_tokens WHERE tokenHash = ?", {crypto::sha256_hex(token)});
  if (row.is_null() || row["state"] != "active") return nullptr;
  // The lookup was by hash; compare the hashes again in constant time.
  if (!crypto::constant_time_equals(row["tokenHash"].get<std::string>(), crypto::sha256_hex(token))) return nullptr;
  if (row["expiresAt"].is_number() && row["expiresAt"].get<std::int64_t>() <= time_util::now_ms()) return nullptr;
  if (row["maxUses"].is_number() && row["uses"].get<std::int64_t>() >= row["maxUses"].get<std::int64_t>()) {
    return nullptr;
  }
  return row;
}

}  // namespace

void add_system_routes(Api& api, ServerContext& server) {
  ExtraRoute cacerts;
  cacerts.handle = [&api, &server](HttpRequest& req, const Peer&, const std::vector<std::string>& rest,
                                   const std::string& base) {
    const std::string schemas = base + "/v1/schemas";
    if (!rest.empty()) return api.error(req, ApiError::not_found(), schemas);
    if (req.method() != http::verb::get) return api.error(req, ApiError::method_not_allowed(), schemas);
    if (server.ca_pem.empty()) return api.error(req, ApiError::not_found(), schemas);
    HttpResponse res{http::status::ok, req.version()};
    res.set(http::field::content_type, "application/x-pem-file");
    res.set("X-API-Schemas", schemas);
    res.keep_alive(req.keep_alive());
    res.body() = server.ca_pem;  // exactly the bytes the checksum is of
    return res;
  };
  api.add_route("cacerts", std::move(cacerts));

  ExtraRoute scripts;
  scripts.handle = [&api, &server](HttpRequest& req, const Peer&, const std::vector<std::string>& rest,
                                   const std::string& base) {
    const std::string schemas = base + "/v1/schemas";
    if (rest.size() != 1) return api.error(req, ApiError::not_found(), schemas);
    if (req.method() != http::verb::get) return api.error(req, ApiError::method_not_allowed(), schemas);
    auto row = server.db->read([&](db::Connection& c) { return usable_token(c, rest[0]); });
    if (!row) return api.error(req, ApiError::internal(), schemas);
    if (row->is_null()) return api.error(req, ApiError::not_found(), schemas);
    nlohmann::json body = {{"type", "registration"},
                           {"serverUrl", base},
                           {"registrationUrl", base + "/v1/scripts/" + rest[0]},
                           {"caChecksum", server.ca_checksum.empty() ? nlohmann::json() : nlohmann::json(server.ca_checksum)}};
    return api.respond(req, 200, body, schemas);
  };
  api.add_route("scripts", std::move(scripts));
}

}  // namespace paddock::server
