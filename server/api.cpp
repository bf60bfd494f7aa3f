#include "server/api.hpp"

#include "common/crypto.hpp"
#include "common/jwt.hpp"
#include "common/time_util.hpp"
#include "server/socket_quota.hpp"
#include "server/stream_broker.hpp"
#include "server/query.hpp"
#include "server/transaction.hpp"
#include "server/validation.hpp"
#include "server/web_ui.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/url/parse.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <charconv>

namespace paddock::server {

namespace http = boost::beast::http;
using nlohmann::json;

namespace {

std::string method_name(http::verb v) { return std::string(http::to_string(v)); }

}  // namespace

// One API request on its way through the engine.
struct Api::Call {
  HttpRequest& request;
  const Peer& peer;
  RequestContext ctx;
  Caller caller;
  QueryParams params;
  std::vector<std::string> rest;  // path segments below /v1 (and below the project)
  std::string schemas_url;
  std::string route = "other";    // metrics label
  int status = 200;
  std::optional<RateLimiter::Decision> rate;

  std::string param(std::string_view name) const {
    for (const auto& [k, v] : params) {
      if (k == name) return v;
    }
    return {};
  }
};

Api::Api(ServerContext& server, Metrics& metrics)
    : server_(server), metrics_(metrics), limiter_(server.config->rate_limit) {}

Api::~Api() = default;

void Api::add_type(std::unique_ptr<ResourceType> type) {
  by_id_[type->def().id] = type.get();
  if (!type->def().collection.empty()) by_collection_[type->def().collection] = type.get();
  types_.push_back(std::move(type));
}

void Api::add_schema_type(TypeDef def) { schema_types_.push_back(std::move(def)); }

void Api::add_route(const std::string& first_segment, ExtraRoute route) { routes_[first_segment] = std::move(route); }

ResourceType* Api::type(const std::string& id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

std::string Api::base_url(const HttpRequest& request, const Peer& peer) const {
  if (!server_.config->advertise_url.empty()) return server_.config->advertise_url;
  std::string host(request[http::field::host]);
  bool ok = !host.empty() && host.size() <= 255;
  for (char c : host) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' || c == '[' ||
          c == ']')) {
      ok = false;
    }
  }
  if (!ok) host = "localhost";
  return std::string(peer.tls ? "https://" : "http://") + host;
}

HttpResponse Api::respond(const HttpRequest& request, int status, const json& body,
                          const std::string& schemas_url) const {
  HttpResponse res{static_cast<http::status>(status), request.version()};
  res.set(http::field::server, "paddock");
  res.set(http::field::content_type, "application/json");
  res.set("X-API-Schemas", schemas_url);
  res.keep_alive(request.keep_alive());
  res.body() = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return res;
}

HttpResponse Api::error(const HttpRequest& request, const ApiError& e, const std::string& schemas_url) const {
  auto res = respond(request, e.status, e.to_json(), schemas_url);
  // X-API-No-Challenge: a page asking on its own behalf shows its own sign-in
  // instead of the browser's prompt.
  if (e.status == 401 && request["X-API-No-Challenge"].empty()) res.set(http::field::www_authenticate, "Basic realm=\"paddock\"");
  return res;
}

HttpResponse Api::reject(const HttpRequest& request, int status) {
  ApiError e = status == 413 ? ApiError::too_large()
                             : ApiError{status, "InvalidFormat", "malformed HTTP request", {}};
  // X-API-Schemas is absolute on every response: the listener's scheme
  // and the Host header, as for requests that parsed.
  Peer peer;
  peer.tls = server_.config->tls;
  auto res = error(request, e, base_url(request, peer) + "/v1/schemas");
  metrics_.observe_request("rejected", method_name(request.method()), status, 0);
  return res;
}

namespace {

struct ParsedTarget {
  std::vector<std::string> segments;
  QueryParams params;
};

std::optional<ParsedTarget> parse_target(std::string_view target) {
  auto url = boost::urls::parse_origin_form(target);
  if (!url) return std::nullopt;
  ParsedTarget out;
  for (auto seg : url->segments()) {
    if (seg.find('\0') != std::string::npos) return std::nullopt;
    out.segments.push_back(seg);
  }
  // A trailing slash leaves an empty last segment; treat "/v1/" like "/v1".
  while (!out.segments.empty() && out.segments.back().empty()) out.segments.pop_back();
  for (auto p : url->params()) {
    if (p.key.find('\0') != std::string::npos || p.value.find('\0') != std::string::npos) return std::nullopt;
    out.params.emplace_back(p.key, p.value);
  }
  return out;
}

}  // namespace

HttpResponse Api::handle(HttpRequest& request, const Peer& peer) {
  const auto started = std::chrono::steady_clock::now();
  const std::string base = base_url(request, peer);
  std::string schemas_url = base + "/v1/schemas";
  std::string route = "other";
  auto finish = [&](HttpResponse res) {
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    metrics_.observe_request(route, method_name(request.method()), res.result_int(), seconds);
    return res;
  };

  auto target = parse_target(request.target());
  if (!target) return finish(error(request, {400, "InvalidFormat", "malformed request target", {}}, schemas_url));
  auto& segs = target->segments;

  if (web_ui_ && web_ui_->available()) {
    // Browsers: /ui/ files, and the UI's page for HTML requests at API URLs.
    if (!segs.empty() && segs[0] == "ui") {
      route = "/ui";
      std::string relative;
      for (std::size_t i = 1; i < segs.size(); ++i) relative += (i > 1 ? "/" : "") + segs[i];
      return finish(web_ui_->asset(request, relative));
    }
    bool html = (request.method() == http::verb::get || request.method() == http::verb::head) &&
                prefers_html(request[http::field::accept]);
    bool challenge = false;
    for (const auto& [k, v] : target->params) {
      if (k == "_format" && v == "json") html = false;
      if (k == "_challenge") challenge = true;
    }
    if (html && segs.empty()) {
      route = "/";
      return finish(web_ui_->redirect(request, "/v1"));
    }
    if (html && segs[0] == "v1") {
      route = "/v1 (page)";
      // The page holds no data; with ?_challenge it asks for the browser's prompt.
      return finish(web_ui_->page(request, challenge && request[http::field::authorization].empty() ? 401 : 200));
    }
  }
  std::erase_if(target->params, [](const auto& p) { return p.first == "_format"; });

  if (segs.size() == 1 && segs[0] == "healthz") {
    route = "/healthz";
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
      return finish(error(request, ApiError::method_not_allowed(), schemas_url));
    }
    return finish(respond(request, 200, {{"status", "ok"}}, schemas_url));
  }
  if (segs.size() == 1 && segs[0] == "metrics") {
    route = "/metrics";
    if (request.method() != http::verb::get) return finish(error(request, ApiError::method_not_allowed(), schemas_url));
    std::string extra = "# HELP paddock_registration_tokens Registration tokens by state.\n"
                        "# TYPE paddock_registration_tokens gauge\n";
    auto counts = server_.db->read([](db::Connection& c) {
      return c.query("SELECT state, COUNT(*) AS n FROM registration_tokens GROUP BY state");
    });
    if (counts) {
      for (const auto& row : *counts) {
        extra += "paddock_registration_tokens{state=\"" + row["state"].get<std::string>() + "\"} " +
                 std::to_string(row["n"].get<std::int64_t>()) + "\n";
      }
    }
    HttpResponse res{http::status::ok, request.version()};
    res.set(http::field::content_type, "text/plain; version=0.0.4");
    res.set("X-API-Schemas", schemas_url);
    res.keep_alive(request.keep_alive());
    res.body() = metrics_.render(extra);
    return finish(std::move(res));
  }
  if (segs.empty() || segs[0] != "v1") {
    return finish(error(request, ApiError::not_found(), schemas_url));
  }
  if (segs.size() >= 2) {
    if (auto it = routes_.find(segs[1]); it != routes_.end() && it->second.handle) {
      route = "/v1/" + segs[1];
      std::vector<std::string> rest(segs.begin() + 2, segs.end());
      return finish(it->second.handle(request, peer, rest, base));
    }
  }

  Call call{request, peer, {}, {}, std::move(target->params),
            std::vector<std::string>(segs.begin() + 1, segs.end()), schemas_url, "other", 200, std::nullopt};
  call.ctx.base_url = base;
  call.ctx.server = &server_;

  // Authentication: HTTP Basic with an API key.
  auto credentials = parse_basic_auth(request[http::field::authorization]);
  if (!credentials) {
    route = "unauthenticated";
    return finish(error(request, ApiError::unauthorized(), schemas_url));
  }
  auto caller = server_.db->read([&](db::Connection& c) {
    return authenticate(c, credentials->first, credentials->second, time_util::now_ms());
  });
  if (!caller) {
    route = "unauthenticated";
    return finish(error(request, ApiError::internal(), schemas_url));
  }
  if (!caller->ok()) {
    route = "unauthenticated";
    return finish(error(request, caller->error(), schemas_url));
  }
  call.caller = std::move(caller->value());
  call.ctx.caller = &call.caller;

  auto with_rate = [&](HttpResponse res) {
    if (call.rate) {
      res.set("X-RateLimit-Limit", std::to_string(call.rate->limit));
      res.set("X-RateLimit-Remaining", std::to_string(call.rate->remaining));
      res.set("X-RateLimit-Reset", std::to_string(call.rate->reset_epoch_s));
    }
    return res;
  };
  if (limiter_.enabled()) {
    call.rate = limiter_.take(call.caller.access_key);
    if (!call.rate->allowed) {
      route = "ratelimited";
      auto res = with_rate(error(request, {429, "RateLimited", "rate limit exceeded", {}}, schemas_url));
      res.set(http::field::retry_after, std::to_string(call.rate->retry_after_s));
      return finish(std::move(res));
    }
  }

  auto result = dispatch(call);
  route = call.route;
  if (!result) return finish(with_rate(error(request, result.error(), call.schemas_url)));
  return finish(with_rate(respond(request, call.status, *result, call.schemas_url)));
}

ApiResult<json> Api::dispatch(Call& call) {
  std::vector<std::string>& segs = call.rest;
  Caller& caller = call.caller;
  if (caller.key_project_id) call.ctx.project_id = caller.key_project_id;

  // Project scope: /v1/projects/<id>/<collection>…, or the X-API-Project-Id header.
  if (segs.size() >= 3 && segs[0] == "projects") {
    auto projects = by_collection_.find("projects");
    auto pid = projects->second->parse_id(segs[1]);
    if (!pid || !caller.can_see(*pid)) {
      call.route = "/v1/projects/{id}/*";
      return ApiError::not_found();
    }
    call.ctx.project_id = *pid;
    call.ctx.project_path = true;
    call.schemas_url = call.ctx.scope_url() + "/schemas";
    segs.erase(segs.begin(), segs.begin() + 2);
  } else if (auto header = call.request["X-API-Project-Id"]; !header.empty()) {
    auto pid = by_collection_.find("projects")->second->parse_id(header);
    if (!pid || !caller.can_see(*pid)) return ApiError::not_found();
    call.ctx.project_id = *pid;
  }
  const std::string prefix = call.ctx.project_path ? "/v1/projects/{id}" : "/v1";
  const auto method = call.request.method();

  if (segs.empty()) {
    call.route = prefix;
    if (method != http::verb::get) return ApiError::method_not_allowed();
    return root(call);
  }
  if (segs[0] == "schemas") {
    call.route = prefix + "/schemas";
    if (method != http::verb::get) return ApiError::method_not_allowed();
    return schemas(call, {segs.begin() + 1, segs.end()});
  }
  if (segs[0] == "subscribe") {
    call.route = prefix + "/subscribe";
    if (method == http::verb::post && segs.size() == 1) return subscribe_ticket(call);
    return ApiError{400, "InvalidFormat", "subscribe is a WebSocket: send an Upgrade request", {}};
  }
  auto it = by_collection_.find(segs[0]);
  if (it == by_collection_.end()) {
    call.route = prefix + "/unknown";
    return ApiError::not_found();
  }
  ResourceType& type = *it->second;
  if (call.ctx.project_path && type.def().scope == Scope::global && type.def().id != "apiKey") {
    call.route = prefix + "/unknown";
    return ApiError::not_found();
  }
  const std::string action_name = call.param("action");

  if (segs.size() == 1) {
    call.route = prefix + "/" + segs[0];
    if (method == http::verb::get) return list(call, type, {}, call.ctx.scope_url() + "/" + segs[0]);
    if (method == http::verb::post && action_name.empty()) {
      if (!type.def().creatable) return ApiError::method_not_allowed();
      return create(call, type);
    }
    return ApiError::method_not_allowed();
  }
  if (segs.size() == 2) {
    call.route = prefix + "/" + segs[0] + "/{id}";
    switch (method) {
      case http::verb::get: return get(call, type, segs[1]);
      case http::verb::put:
        if (!type.def().updatable) return ApiError::method_not_allowed();
        return update(call, type, segs[1]);
      case http::verb::delete_:
        if (!type.def().deletable) return ApiError::method_not_allowed();
        return remove(call, type, segs[1]);
      case http::verb::post:
        if (action_name.empty()) return ApiError::method_not_allowed();
        call.route += "?action=" + (type.def().find_action(action_name) ? action_name : std::string("unknown"));
        return action(call, type, segs[1], action_name);
      default: return ApiError::method_not_allowed();
    }
  }
  if (segs.size() == 3) {
    // A related collection named by one of the resource's links.
    call.route = prefix + "/" + segs[0] + "/{id}/" + segs[2];
    auto child = type.children().find(segs[2]);
    if (child == type.children().end()) return ApiError::not_found();
    if (method != http::verb::get) return ApiError::method_not_allowed();
    auto row = find_visible(call, type, segs[1]);
    if (!row) return row.error();
    ResourceType* child_type = this->type(child->second.type);
    Condition extra{"\"" + child->second.column + "\" = ?", {row->at("id").get<std::int64_t>()}};
    return list(call, *child_type, std::move(extra), type.self_url(*row, call.ctx) + "/" + segs[2]);
  }
  call.route = prefix + "/unknown";
  return ApiError::not_found();
}

ApiResult<json> Api::root(Call& call) {
  json links = {{"self", call.ctx.scope_url()}, {"schemas", call.ctx.scope_url() + "/schemas"}};
  for (const auto& type : types_) {
    const auto& def = type->def();
    if (def.collection.empty()) continue;
    if (call.ctx.project_path && def.scope != Scope::project) continue;
    links[def.collection] = call.ctx.scope_url() + "/" + def.collection;
  }
  links["subscribe"] = call.ctx.scope_url() + "/subscribe";
  return json{{"type", "apiRoot"}, {"id", "v1"}, {"links", links}};
}

ApiResult<json> Api::schemas(Call& call, const std::vector<std::string>& rest) {
  const std::string base = call.ctx.scope_url();
  std::vector<json> all;
  auto add = [&](const TypeDef& def, bool can_write) {
    // Under a project: the collections reachable there, project keys included.
    if (call.ctx.project_path && def.scope != Scope::project && !def.collection.empty() && def.id != "apiKey") {
      return;
    }
    all.push_back(schema_resource(def, base + "/schemas", base, can_write));
  };
  for (const auto& type : types_) {
    bool can_write = call.caller.admin;
    if (type->def().scope == Scope::project) {
      if (call.ctx.project_id) {
        can_write = call.caller.role_in(*call.ctx.project_id) >= Role::member;
      } else {
        can_write = call.caller.admin || call.caller.key_project_id.has_value();
        for (const auto& [p, role] : call.caller.memberships) can_write = can_write || role >= Role::member;
      }
    } else if (type->def().id == "apiKey") {
      // Account keys are everyone's own; a project's keys are its members'.
      can_write = !call.ctx.project_id || call.caller.role_in(*call.ctx.project_id) >= Role::member;
    }
    add(type->def(), can_write);
  }
  for (const auto& def : schema_types_) add(def, false);
  if (!rest.empty()) {
    if (rest.size() != 1) return ApiError::not_found();
    std::string wanted = rest[0];
    std::transform(wanted.begin(), wanted.end(), wanted.begin(), [](unsigned char c) { return std::tolower(c); });
    for (auto& s : all) {
      std::string id = s["id"].get<std::string>();
      std::transform(id.begin(), id.end(), id.begin(), [](unsigned char c) { return std::tolower(c); });
      if (id == wanted) return s;
    }
    return ApiError::not_found();
  }
  return json{{"type", "collection"},
              {"resourceType", "schema"},
              {"links", {{"self", base + "/schemas"}}},
              {"createTypes", json::object()},
              {"actions", json::object()},
              {"pagination", {{"limit", all.size()}, {"total", all.size()}, {"partial", false},
                              {"next", nullptr}, {"previous", nullptr}}},
              {"sort", nullptr},
              {"sortLinks", json::object()},
              {"filters", json::object()},
              {"data", all}};
}

json Api::render(const ResourceType& type, const db::Row& row, const RequestContext& ctx) const {
  const TypeDef& def = type.def();
  json r = json::object();
  r["id"] = type.id_of(row);
  r["type"] = def.id;
  for (const auto& f : def.fields) {
    if (f.name == "id" || f.name == "type" || f.column.empty()) continue;
    auto it = row.find(f.column);
    if (it == row.end()) continue;
    const json& v = *it;
    if (v.is_null()) {
      r[f.name] = nullptr;
      continue;
    }
    switch (f.type) {
      case FieldType::date:
        r[f.name] = time_util::format_rfc3339(v.get<std::int64_t>());
        r[f.name + "TS"] = v;
        break;
      case FieldType::boolean: r[f.name] = v.is_number() ? json(v.get<std::int64_t>() != 0) : v; break;
      case FieldType::reference: {
        auto target = by_id_.find(f.type_param);
        r[f.name] = target != by_id_.end() && v.is_number()
                        ? json(target->second->def().id_prefix + std::to_string(v.get<std::int64_t>()))
                        : v;
        break;
      }
      case FieldType::json_:
      case FieldType::array:
      case FieldType::map:
        r[f.name] = v.is_string() ? json::parse(v.get<std::string>(), nullptr, false) : v;
        if (r[f.name].is_discarded()) r[f.name] = nullptr;
        break;
      default: r[f.name] = v;
    }
  }
  const std::string self = type.self_url(row, ctx);
  const bool writable = row.value("state", "") != "removed" && type.can_write(ctx, row);
  json links = {{"self", self}};
  if (def.updatable && writable) links["update"] = self;
  if (def.deletable && writable) links["remove"] = self;
  for (const auto& [name, child] : type.children()) links[name] = self + "/" + name;
  json actions = json::object();
  if (writable) {
    for (const auto& a : type.actions(row)) actions[a] = self + "?action=" + a;
  }
  r["links"] = std::move(links);
  r["actions"] = std::move(actions);
  type.decorate(r, row, ctx);
  return r;
}

ApiResult<json> Api::list(Call& call, ResourceType& type, Condition extra, const std::string& self) {
  // Reference filters ("hostId=1h5") name rows of other types by API id.
  auto prefix_of = [this](std::string_view t) -> std::optional<std::string> {
    auto it = by_id_.find(std::string(t));
    if (it == by_id_.end()) return std::nullopt;
    return it->second->def().id_prefix;
  };
  auto query = parse_list_query(type.def(), call.params, {}, prefix_of);
  if (!query) return query.error();
  Condition visible = type.visible(call.ctx);
  SqlFragment scope{"(" + visible.sql + ") AND (" + extra.sql + ")", {}};
  scope.params = visible.params;
  scope.params.insert(scope.params.end(), extra.params.begin(), extra.params.end());
  auto page_sql = page_select(type.def(), *query, scope);
  auto count_sql = count_select(type.def(), *query, scope);
  auto fetched = server_.db->read([&](db::Connection& c) {
    auto rows = c.query(page_sql.sql, page_sql.params);
    auto total = c.query_one(count_sql.sql, count_sql.params);
    std::int64_t n = 0;
    if (total.is_object() && !total.empty()) n = total.begin()->get<std::int64_t>();
    return std::make_pair(std::move(rows), n);
  });
  if (!fetched) return from_error(fetched.error());
  Page page = build_page(type.def(), *query, std::move(fetched->first), fetched->second, self);
  json data = json::array();
  for (const auto& row : page.rows) data.push_back(render(type, row, call.ctx));
  json create_types = json::object();
  if (type.def().creatable && type.can_create(call.ctx) && extra.sql == "1=1") {
    create_types[type.def().id] = self;
  }
  return json{{"type", "collection"},
              {"resourceType", type.def().id},
              {"links", {{"self", url_with_query(self, call.params)}}},
              {"createTypes", create_types},
              {"actions", json::object()},
              {"pagination", page.pagination},
              {"sort", page.sort},
              {"sortLinks", page.sort_links},
              {"filters", page.filters},
              {"data", std::move(data)}};
}

ApiResult<db::Row> Api::find_visible(Call& call, ResourceType& type, const std::string& id) {
  auto row_id = type.parse_id(id);
  if (!row_id) return ApiError::not_found();
  Condition visible = type.visible(call.ctx);
  std::vector<db::Value> params = visible.params;
  params.emplace_back(*row_id);
  const std::string sql =
      "SELECT * FROM \"" + type.def().table + "\" WHERE (" + visible.sql + ") AND id = ?";
  auto row = server_.db->read([&](db::Connection& c) { return c.query_one(sql, params); });
  if (!row) return from_error(row.error());
  if (row->is_null()) return ApiError::not_found();
  return std::move(*row);
}

ApiResult<json> Api::get(Call& call, ResourceType& type, const std::string& id) {
  auto row = find_visible(call, type, id);
  if (!row) return row.error();
  return render(type, *row, call.ctx);
}

template <class F>
auto Api::commit(Call& call, F&& change) {
  auto& effects = call.ctx.after_commit;
  auto result = write_tx(*server_.db, [&](db::Connection& c) {
    effects.clear();  // from an attempt that did not commit
    return change(c);
  });
  auto done = std::move(effects);
  effects.clear();
  if (result) {
    for (auto& effect : done) effect();
  }
  return result;
}

ApiResult<json> Api::create(Call& call, ResourceType& type) {
  auto body = parse_json_body(call.request.body());
  if (!body) return body.error();
  if (type.def().scope == Scope::project && !call.ctx.project_id) {
    // Without a project in the path or header, the body may name it.
    auto pid = body->is_object() && body->contains("projectId") && (*body)["projectId"].is_string()
                   ? by_collection_.at("projects")->parse_id((*body)["projectId"].get<std::string>())
                   : std::nullopt;
    if (!pid || !call.caller.can_see(*pid)) {
      return ApiError::invalid("MissingRequired", "projectId",
                               "a project is required: use /v1/projects/<id>/… or X-API-Project-Id");
    }
    call.ctx.project_id = pid;
  }
  if (!type.can_create(call.ctx)) {
    if (type.def().scope == Scope::project && !call.caller.can_see(*call.ctx.project_id)) return ApiError::not_found();
    return ApiError::forbidden();
  }
  auto input = validate_input(type.def(), *body, InputMode::create);
  if (!input) return input.error();
  if (auto st = resolve_references(type.def(), *input); !st) return st.error();
  auto row = commit(call, [&](db::Connection& c) { return type.create(c, call.ctx, *input); });
  if (!row) return row.error();
  call.status = 201;
  json out = render(type, *row, call.ctx);
  type.after_create(out, *row, *input);
  row->erase("secretValue");  // shown once, to this caller only
  publish(type, *row);
  return out;
}

ApiResult<Ok> Api::resolve_references(const TypeDef& def, json& input) const {
  for (auto& [name, value] : input.items()) {
    const FieldDef* f = def.find_field(name);
    if (!f || f->type != FieldType::reference || !value.is_string()) continue;
    auto target = by_id_.find(f->type_param);
    auto id = target == by_id_.end() ? std::nullopt : target->second->parse_id(value.get<std::string>());
    if (!id) return ApiError::invalid("InvalidReference", name, "not a " + f->type_param + " id");
    value = *id;
  }
  return Ok{};
}

ApiResult<json> Api::update(Call& call, ResourceType& type, const std::string& id) {
  auto row = find_visible(call, type, id);
  if (!row) return row.error();
  if (!type.can_write(call.ctx, *row)) return ApiError::forbidden();
  auto body = parse_json_body(call.request.body());
  if (!body) return body.error();
  auto input = validate_input(type.def(), *body, InputMode::update);
  if (!input) return input.error();
  if (auto st = resolve_references(type.def(), *input); !st) return st.error();
  auto updated = commit(call, [&](db::Connection& c) {
    auto current = c.query_one("SELECT * FROM \"" + type.def().table + "\" WHERE id = ?", {row->at("id")
                                                                                               .get<std::int64_t>()});
    if (current.is_null()) throw ApiAbort(ApiError::not_found());
    return type.update(c, call.ctx, current, *input);
  });
  if (!updated) return updated.error();
  publish(type, *updated);
  return render(type, *updated, call.ctx);
}

ApiResult<json> Api::remove(Call& call, ResourceType& type, const std::string& id) {
  auto row = find_visible(call, type, id);
  if (!row) return row.error();
  if (!type.can_write(call.ctx, *row)) return ApiError::forbidden();
  auto removed = commit(call, [&](db::Connection& c) {
    auto current = c.query_one("SELECT * FROM \"" + type.def().table + "\" WHERE id = ?",
                               {row->at("id").get<std::int64_t>()});
    if (current.is_null()) throw ApiAbort(ApiError::not_found());
    return type.remove(c, call.ctx, current);
  });
  if (!removed) return removed.error();
  publish(type, *removed);
  return render(type, *removed, call.ctx);
}

ApiResult<json> Api::action(Call& call, ResourceType& type, const std::string& id, const std::string& name) {
  const ActionDef* def = type.def().find_action(name);
  if (!def) return ApiError::not_found();
  auto row = find_visible(call, type, id);
  if (!row) return row.error();
  if (!type.can_write(call.ctx, *row)) return ApiError::forbidden();
  auto valid = type.actions(*row);
  if (std::find(valid.begin(), valid.end(), name) == valid.end()) {
    return ApiError::conflict("action '" + name + "' is not valid in state " + row->value("state", ""));
  }
  json input = json::object();
  if (!def->input.empty()) {
    auto body = parse_json_body(call.request.body());
    if (!body) return body.error();
    const TypeDef* input_def = nullptr;
    for (const auto& s : schema_types_) {
      if (s.id == def->input) input_def = &s;
    }
    if (!input_def) return ApiError::internal();
    auto checked = validate_input(*input_def, *body, InputMode::action);
    if (!checked) return checked.error();
    input = std::move(*checked);
  }
  json output;
  auto changed = commit(call, [&](db::Connection& c) {
    auto current = c.query_one("SELECT * FROM \"" + type.def().table + "\" WHERE id = ?",
                               {row->at("id").get<std::int64_t>()});
    if (current.is_null()) throw ApiAbort(ApiError::not_found());
    auto now_valid = type.actions(current);
    if (std::find(now_valid.begin(), now_valid.end(), name) == now_valid.end()) {
      throw ApiAbort(ApiError::conflict("action '" + name + "' is not valid in state " +
                                        current.value("state", "")));
    }
    output = type.act(c, call.ctx, current, name, input);
    return output.contains("row") ? output["row"] : current;
  });
  if (!changed) return changed.error();
  if (output.contains("row")) {
    publish(type, *changed);
    return render(type, *changed, call.ctx);
  }
  return output;
}

void Api::publish(const ResourceType& type, const db::Row& row) {
  ChangeEvent event;
  event.type = type.def().id;
  event.row_id = row.at("id").get<std::int64_t>();
  event.project_id = type.project_of(row);
  event.row = row;
  server_.events->publish(std::move(event));
}

}  // namespace paddock::server

namespace paddock::server {

Upgrade Api::upgrade(HttpRequest& request, const Peer& peer) {
  auto target = parse_target(request.target());
  const std::string base = base_url(request, peer);
  Upgrade up;
  if (!target || target->segments.size() < 2 || target->segments[0] != "v1") {
    up.refusal = error(request, ApiError::not_found(), base + "/v1/schemas");
    return up;
  }
  const auto& segs = target->segments;
  if (auto it = routes_.find(segs[1]); it != routes_.end() && it->second.upgrade) {
    return it->second.upgrade(request, peer, base);
  }
  return subscribe(request, peer);
}

namespace {

// A caller's view of events: who it is and which scope it asked for.
struct Subscription {
  Caller caller;
  RequestContext ctx;
  std::set<std::string> names;
};

bool sees(const Subscription& s, const ResourceType& type, const ChangeEvent& e) {
  if (e.project_id) {
    if (s.ctx.project_id && *s.ctx.project_id != *e.project_id) return false;
    return s.caller.can_see(*e.project_id);
  }
  if (type.def().id == "project") return s.caller.can_see(e.row_id) && !s.ctx.project_id;
  if (s.ctx.project_id) return false;
  if (s.caller.admin) return true;
  // Account keys see their own account and its keys.
  if (type.def().id == "account") return s.caller.account_id && *s.caller.account_id == e.row_id;
  if (type.def().id == "apiKey") {
    return s.caller.account_id && e.row.value("accountId", json()) == json(*s.caller.account_id);
  }
  return false;
}

// Why a subscription may not go on, if it may not: since it began, its key
// or account was deactivated or removed, or its project stopped being the
// caller's. Otherwise it takes up the caller's memberships as they are now.
std::optional<std::string> recheck(ServerContext& server, Subscription& s) {
  auto fresh = server.db->read(
      [&](db::Connection& c) { return caller_of_key(c, s.caller.access_key, time_util::now_ms()); });
  if (!fresh) return std::nullopt;  // a store problem is ours: the subscription stays
  if (!fresh->ok()) return "the API key or its account is no longer active";
  if (s.ctx.project_path && !fresh->value().can_see(*s.ctx.project_id)) return "the project is no longer visible";
  s.caller = std::move(fresh->value());
  return std::nullopt;
}

}  // namespace

ApiResult<json> Api::subscribe_ticket(Call& call) {
  const auto now = time_util::now_s();
  json claims = {{"iss", call.ctx.base_url},
                 {"aud", "subscribe"},
                 {"sub", call.caller.access_key},
                 {"iat", now},
                 {"exp", now + server_.config->stream_token_ttl},
                 {"jti", crypto::random_token(16)}};
  auto token = server_.keys->sign(claims);
  if (!token) return ApiError::internal();
  std::string url = call.ctx.scope_url() + "/subscribe";
  url.replace(0, url.find("://"), url.rfind("https", 0) == 0 ? "wss" : "ws");
  return json{{"type", "subscribeAccess"}, {"url", url}, {"token", *token}};
}

Upgrade Api::subscribe(HttpRequest& request, const Peer& peer) {
  Upgrade up;
  const std::string base = base_url(request, peer);
  Call call{request, peer, {}, {}, parse_target(request.target())->params, {}, base + "/v1/schemas",
            "other", 200, std::nullopt};
  call.ctx.base_url = base;
  call.ctx.server = &server_;
  auto refuse = [&](const ApiError& e) {
    up.refusal = error(request, e, call.schemas_url);
    metrics_.observe_request("/v1/subscribe", "GET", e.status, 0);
    return up;
  };
  // HTTP Basic, or ?token= from POST …/subscribe where a browser cannot set headers.
  auto credentials = parse_basic_auth(request[http::field::authorization]);
  std::string ticket_key, ticket_jti;
  std::int64_t ticket_exp = 0;
  if (!credentials && !call.param("token").empty()) {
    auto claims = server_.keys->verify(call.param("token"), time_util::now_s());
    if (!claims) return refuse({401, "Unauthorized", claims.error().message, {}});
    const json& c = *claims;
    if (c.value("aud", "") != "subscribe" || !c.contains("sub") || !c["sub"].is_string() || !c.contains("jti") ||
        !c["jti"].is_string() || (!server_.config->advertise_url.empty() && c.value("iss", "") != base)) {
      return refuse({401, "Unauthorized", "malformed token", {}});
    }
    ticket_key = c["sub"];
    ticket_jti = c["jti"];
    ticket_exp = c["exp"].get<std::int64_t>();
  } else if (!credentials) {
    return refuse(ApiError::unauthorized());
  }
  auto caller = server_.db->read([&](db::Connection& c) {
    if (!credentials) return caller_of_key(c, ticket_key, time_util::now_ms());
    return authenticate(c, credentials->first, credentials->second, time_util::now_ms());
  });
  if (!caller) return refuse(ApiError::internal());
  if (!caller->ok()) return refuse(caller->error());
  auto sub = std::make_shared<Subscription>();
  sub->caller = std::move(caller->value());
  // Opening a subscription counts as a request, so a key cannot open them
  // faster than it may call the API.
  if (limiter_.enabled()) {
    const auto rate = limiter_.take(sub->caller.access_key);
    if (!rate.allowed) {
      refuse({429, "RateLimited", "rate limit exceeded", {}});
      up.refusal->set(http::field::retry_after, std::to_string(rate.retry_after_s));
      return up;
    }
  }
  auto slot = server_.sockets->take(sub->caller);
  if (!slot) {
    refuse(server_.sockets->refusal());
    up.refusal->set(http::field::retry_after, "5");
    return up;
  }

  auto segs = parse_target(request.target())->segments;
  segs.erase(segs.begin());
  if (sub->caller.key_project_id) sub->ctx.project_id = sub->caller.key_project_id;
  if (segs.size() == 3 && segs[0] == "projects" && segs[2] == "subscribe") {
    auto pid = by_collection_.at("projects")->parse_id(segs[1]);
    if (!pid || !sub->caller.can_see(*pid)) return refuse(ApiError::not_found());
    sub->ctx.project_id = pid;
    sub->ctx.project_path = true;
  } else if (segs.size() != 1 || segs[0] != "subscribe") {
    return refuse(ApiError::not_found());
  }
  for (const auto& [k, v] : call.params) {
    if (k != "eventNames") continue;
    // Either repeated or comma-separated.
    std::size_t start = 0;
    while (start <= v.size()) {
      auto end = v.find(',', start);
      std::string name = v.substr(start, end == std::string::npos ? std::string::npos : end - start);
      if (!name.empty()) {
        if (name != "resource.change" && name != "ping") {
          return refuse(ApiError::invalid("InvalidOption", "eventNames", "unknown event name '" + name + "'"));
        }
        sub->names.insert(name);
      }
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  if (sub->names.empty()) sub->names = {"resource.change"};
  // Used up last: a ticket refused for a limit above still works on retry.
  if (!ticket_jti.empty() && !server_.streams->consume(ticket_jti, ticket_exp)) {
    return refuse({401, "Unauthorized", "token already used", {}});
  }
  sub->ctx.base_url = base;
  sub->ctx.server = &server_;

  up.run = [this, sub, slot = std::move(slot)](std::shared_ptr<WebSocket> ws) -> asio::awaitable<void> {
    sub->ctx.caller = &sub->caller;
    metrics_.websocket_opened("subscribe");
    ws->set_read_limit(64 * 1024);
    ws->set_max_queued(4 * 1024 * 1024);
    auto executor = ws->get_executor();
    std::weak_ptr<WebSocket> weak = ws;
    auto id = server_.events->subscribe([this, sub, weak, executor](const std::shared_ptr<const ChangeEvent>& e) {
      asio::post(executor, [this, sub, weak, e] {
        auto socket = weak.lock();
        if (!socket || !socket->is_open()) return;
        ResourceType* t = type(e->type);
        if (!t || !sees(*sub, *t, *e)) return;
        json message = {{"name", "resource.change"},
                        {"resourceType", e->type},
                        {"resourceId", t->id_of(e->row)},
                        {"time", time_util::format_rfc3339(e->time_ms)},
                        {"data", {{"resource", render(*t, e->row, sub->ctx)}}}};
        socket->send(message.dump(-1, ' ', false, json::error_handler_t::replace), false);
      });
    });
    // A ping at once, then every 5 s while the reader waits for the client
    // to close. The first one tells the client that every change from now on
    // reaches it (the 101 comes before this subscription exists). Before
    // each later ping the caller's access is looked at again.
    auto pinger = std::make_shared<asio::steady_timer>(executor);
    auto stop = std::make_shared<bool>(false);
    asio::co_spawn(
        executor,
        [this, pinger, stop, weak, sub]() -> asio::awaitable<void> {
          for (bool first = true; !*stop; first = false) {
            auto socket = weak.lock();
            if (!socket || !socket->is_open()) break;
            if (auto ended = first ? std::nullopt : recheck(server_, *sub)) {
              spdlog::info("closing a subscription of key {}: {}", sub->caller.access_key, *ended);
              co_await socket->close({websocket::close_code::policy_error, *ended});
              break;
            }
            socket->send(R"({"name":"ping"})", false);
            socket.reset();
            pinger->expires_after(std::chrono::seconds(5));
            co_await pinger->async_wait(asio::as_tuple(asio::use_awaitable));
          }
        },
        asio::detached);
    beast::flat_buffer buffer;
    for (;;) {
      auto ec = co_await ws->read(buffer);
      if (ec) break;
      buffer.consume(buffer.size());  // clients have nothing to say here
    }
    *stop = true;
    pinger->cancel();
    server_.events->unsubscribe(id);
    metrics_.websocket_closed("subscribe");
  };
  return up;
}

}  // namespace paddock::server
