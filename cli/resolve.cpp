#include "cli/resolve.hpp"

#include "cli/output.hpp"

#include <algorithm>

namespace paddock::cli {

namespace {

ApiError resolve_error(std::string message) {
  ApiError e;
  e.message = std::move(message);
  return e;
}

bool is_hex_id_prefix(std::string_view s) {
  return !s.empty() && s.size() <= 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const auto& s : items) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

// "on host h1" / "on hosts h1, h2" for the hosts of these containers.
ApiResult<std::string> where(ApiClient& api, const std::vector<json>& containers) {
  std::vector<std::string> ids;
  for (const auto& c : containers) {
    const std::string id = str(c, "hostId");
    if (!id.empty() && std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  }
  auto names = host_names(api, ids);
  if (!names) return names.error();
  std::vector<std::string> shown;
  for (const auto& [id, name] : *names) shown.push_back(name);
  return std::string(shown.size() == 1 ? "on host " : "on hosts ") + join(shown, ", ");
}

}  // namespace

std::string containers_url(const json& host) {
  if (auto links = host.find("links"); links != host.end() && links->is_object()) {
    const std::string url = str(*links, "containers");
    if (!url.empty()) return url;
  }
  return "/v1/hosts/" + str(host, "id") + "/containers";
}

bool is_paddock_id(std::string_view text, std::string_view prefix) {
  if (text.size() <= prefix.size() || !text.starts_with(prefix)) return false;
  const auto digits = text.substr(prefix.size());
  return digits.front() != '0' && digits.size() <= 18 &&
         std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
}

ApiResult<std::vector<std::pair<std::string, std::string>>> host_names(ApiClient& api,
                                                                       const std::vector<std::string>& ids) {
  std::vector<std::pair<std::string, std::string>> out;
  if (ids.empty()) return out;
  Query query;
  for (const auto& id : ids) query.emplace_back("id", id);  // a repeated equals filter: any of
  auto hosts = api.list("/v1/hosts", query);
  if (!hosts) return hosts.error();
  for (const auto& id : ids) {
    std::string name = id;
    for (const auto& h : *hosts) {
      if (str(h, "id") == id && !str(h, "name").empty()) name = str(h, "name");
    }
    out.emplace_back(id, name);
  }
  return out;
}

ApiResult<std::map<std::string, std::string>> host_names_of(ApiClient& api, const std::vector<json>& containers) {
  std::vector<std::string> ids;
  for (const auto& c : containers) {
    const std::string id = str(c, "hostId");
    if (!id.empty() && std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  }
  auto names = host_names(api, ids);
  if (!names) return names.error();
  return std::map<std::string, std::string>(names->begin(), names->end());
}

ApiResult<json> resolve_host(ApiClient& api, std::string_view ref) {
  if (ref.empty()) return resolve_error("a host must be named by its id or name");
  if (is_paddock_id(ref, "1h")) {
    auto host = api.get("/v1/hosts/" + std::string(ref));
    if (host) return host;
    if (host.error().status != 404) return host.error();
  }
  auto hosts = api.list("/v1/hosts", {{"name", std::string(ref)}});
  if (!hosts) return hosts.error();
  if (hosts->empty()) return resolve_error("no host matches '" + printable(ref.substr(0, 100)) + "'");
  if (hosts->size() > 1) {
    std::vector<std::string> ids;
    for (const auto& h : *hosts) ids.push_back(str(h, "id"));
    return resolve_error("'" + printable(ref.substr(0, 100)) + "' matches " + std::to_string(hosts->size()) + " hosts (" +
                         join(ids, ", ") + "); use an id");
  }
  return std::move(hosts->front());
}

ApiResult<json> resolve_container(ApiClient& api, std::string_view ref, std::string_view host_ref) {
  if (ref.empty()) return resolve_error("a container must be named by its id, Docker id or name");
  std::optional<json> host;
  if (!host_ref.empty()) {
    auto h = resolve_host(api, host_ref);
    if (!h) return h.error();
    host = std::move(*h);
  }
  const std::string host_id = host ? str(*host, "id") : std::string();
  const std::string on_host = host ? " on host " + str(*host, "name", host_id) : std::string();

  if (is_paddock_id(ref, "1c")) {
    auto c = api.get("/v1/containers/" + std::string(ref));
    if (c) {
      if (host && str(*c, "hostId") != host_id) {
        return resolve_error("container " + std::string(ref) + " is not" + on_host);
      }
      return c;
    }
    if (c.error().status != 404) return c.error();
  }

  // One host's containers are its `containers` link (a hostId filter would do
  // the same, but links are what clients follow).
  const std::string collection = host ? containers_url(*host) : std::string("/v1/containers");
  auto with = [&](std::string field, std::string_view value) { return Query{{std::move(field), std::string(value)}}; };

  std::vector<json> by_id_prefix;
  if (is_hex_id_prefix(ref)) {
    auto found = api.list(collection, with("dockerId_prefix", ref));
    if (!found) return found.error();
    by_id_prefix = std::move(*found);
    // A whole Docker id is exact: nothing else can compete with it.
    std::vector<json> exact;
    for (const auto& c : by_id_prefix) {
      if (str(c, "dockerId") == ref) exact.push_back(c);
    }
    if (exact.size() == 1) return std::move(exact.front());
    if (exact.size() > 1) by_id_prefix = std::move(exact);
  }

  auto by_name = api.list(collection, with("name", ref));
  if (!by_name) return by_name.error();

  const bool named = !by_name->empty();
  const std::vector<json>& matches = named ? *by_name : by_id_prefix;
  if (matches.empty()) return resolve_error("no container matches '" + printable(ref.substr(0, 100)) + "'" + on_host);
  if (matches.size() == 1) return matches.front();

  auto places = where(api, matches);
  if (!places) return places.error();
  std::string advice;
  const bool same_docker_id = std::all_of(matches.begin(), matches.end(), [&](const json& c) {
    return str(c, "dockerId") == str(matches.front(), "dockerId");
  });
  if (named || same_docker_id) {
    advice = host ? "use an id" : "use --host or an id";
  } else {
    advice = host ? "use a longer Docker id prefix or an id" : "use a longer Docker id prefix, --host or an id";
  }
  return resolve_error("'" + printable(ref.substr(0, 100)) + "' matches " + std::to_string(matches.size()) + " containers " +
                       *places + "; " + advice);
}

}  // namespace paddock::cli

namespace paddock::cli {

ApiResult<json> resolve_project(ApiClient& api, std::string_view ref) {
  if (ref.empty()) return resolve_error("a project must be named by its id or name");
  if (is_paddock_id(ref, "1p")) {
    auto project = api.get("/v1/projects/" + std::string(ref));
    if (project) return project;
    if (project.error().status != 404) return project.error();
  }
  auto projects = api.list("/v1/projects", {{"name", std::string(ref)}});
  if (!projects) return projects.error();
  if (projects->empty()) return resolve_error("no project matches '" + printable(ref.substr(0, 100)) + "'");
  if (projects->size() > 1) {
    std::vector<std::string> ids;
    for (const auto& p : *projects) ids.push_back(str(p, "id"));
    return resolve_error("'" + printable(ref.substr(0, 100)) + "' matches " + std::to_string(projects->size()) +
                         " projects (" + join(ids, ", ") + "); use an id");
  }
  return std::move(projects->front());
}

}  // namespace paddock::cli
