#pragma once
// The REST API (api-conventions.md) as an HttpHandler: routing, auth, rate
// limits, the generic schema-driven engine over ResourceTypes, `subscribe`,
// and the routes other parts of the server add (agents, streams).

#include "server/http_server.hpp"
#include "server/metrics.hpp"
#include "server/rate_limiter.hpp"
#include "server/resource_type.hpp"
#include "server/server_context.hpp"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace paddock::server {

class WebUi;

// A route outside the generic engine (no API-key auth): the path below /v1,
// e.g. "cacerts" or "scripts". `handler` sees the remaining path segments.
struct ExtraRoute {
  using Handler = std::function<HttpResponse(HttpRequest&, const Peer&, const std::vector<std::string>& rest,
                                             const std::string& base_url)>;
  using UpgradeHandler = std::function<Upgrade(HttpRequest&, const Peer&, const std::string& base_url)>;
  Handler handle;
  UpgradeHandler upgrade;
};

class Api final : public HttpHandler {
 public:
  Api(ServerContext& server, Metrics& metrics);
  ~Api() override;

  // Registration happens before the server starts; not thread-safe.
  void add_type(std::unique_ptr<ResourceType> type);
  void add_schema_type(TypeDef def);  // input/output types with no collection
  void add_route(const std::string& first_segment, ExtraRoute route);
  // Serves the API UI to browsers (HTML at /v1 URLs, files at /ui/). Optional.
  void set_web_ui(const WebUi* ui) { web_ui_ = ui; }

  HttpResponse handle(HttpRequest& request, const Peer& peer) override;
  Upgrade upgrade(HttpRequest& request, const Peer& peer) override;
  HttpResponse reject(const HttpRequest& request, int status) override;

  ResourceType* type(const std::string& id) const;
  // Renders a row as the resource the caller sees (links, actions, fields).
  nlohmann::json render(const ResourceType& type, const db::Row& row, const RequestContext& ctx) const;
  // Publishes resource.change for rows changed outside a request (workers).
  void publish(const ResourceType& type, const db::Row& row);

  // JSON response with the API's headers.
  HttpResponse respond(const HttpRequest& request, int status, const nlohmann::json& body,
                       const std::string& schemas_url) const;
  HttpResponse error(const HttpRequest& request, const ApiError& e, const std::string& schemas_url) const;
  std::string base_url(const HttpRequest& request, const Peer& peer) const;

 private:
  struct Call;
  ApiResult<nlohmann::json> dispatch(Call& call);
  ApiResult<nlohmann::json> root(Call& call);
  ApiResult<nlohmann::json> schemas(Call& call, const std::vector<std::string>& rest);
  ApiResult<nlohmann::json> list(Call& call, ResourceType& type, Condition extra, const std::string& self);
  ApiResult<nlohmann::json> get(Call& call, ResourceType& type, const std::string& id);
  ApiResult<nlohmann::json> create(Call& call, ResourceType& type);
  ApiResult<nlohmann::json> update(Call& call, ResourceType& type, const std::string& id);
  ApiResult<nlohmann::json> remove(Call& call, ResourceType& type, const std::string& id);
  ApiResult<nlohmann::json> action(Call& call, ResourceType& type, const std::string& id, const std::string& name);
  // Turns reference ids ("1a5") in an input into row ids, or a 422.
  ApiResult<Ok> resolve_references(const TypeDef& def, nlohmann::json& input) const;
  ApiResult<db::Row> find_visible(Call& call, ResourceType& type, const std::string& id);
  // Runs `change` in a write transaction, then the effects it left in
  // call.ctx.after_commit if it committed.
  template <class F>
  auto commit(Call& call, F&& change);
  Upgrade subscribe(HttpRequest& request, const Peer& peer);
  ApiResult<nlohmann::json> subscribe_ticket(Call& call);

  ServerContext& server_;
  Metrics& metrics_;
  RateLimiter limiter_;
  std::vector<std::unique_ptr<ResourceType>> types_;
  std::map<std::string, ResourceType*> by_collection_;
  std::map<std::string, ResourceType*> by_id_;
  std::vector<TypeDef> schema_types_;
  std::map<std::string, ExtraRoute> routes_;
  const WebUi* web_ui_ = nullptr;
};

}  // namespace paddock::server
