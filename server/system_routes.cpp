#include "server/system_routes.hpp"

namespace paddock::server {

namespace http = boost::beast::http;

void add_system_routes(Api& api, ServerContext& server) {
  ExtraRoute cacerts;
  cacerts.handle = [&api, &server](HttpRequest& req, const Peer&, const std::vector<std::string>& rest,
                                   const std::string& base) {
    const std::string schemas = base + "/v1/schemas";
    if (!rest.empty()) return api.error(req, ApiError::not_found(), schemas);
    if (req.method() != http::verb::get) return api.error(req, ApiError::method_not_allowed(), schemas);
    // With an operator's certificate there is no CA of ours to pin.
    if (server.ca_pem.empty()) return api.error(req, ApiError::not_found(), schemas);
    HttpResponse res{http::status::ok, req.version()};
    res.set(http::field::content_type, "application/x-pem-file");
    res.set("X-API-Schemas", schemas);
    res.keep_alive(req.keep_alive());
    res.body() = server.ca_pem;  // exactly the bytes the checksum is of
    return res;
  };
  api.add_route("cacerts", std::move(cacerts));
}

}  // namespace paddock::server
