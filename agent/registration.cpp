#include "agent/registration.hpp"

#include "agent/messages.hpp"
#include "common/crypto.hpp"
#include "common/log.hpp"
#include "common/version.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/url/parse.hpp>

#include <chrono>

namespace paddock::agent {

using json = nlohmann::json;

namespace {

constexpr std::string_view kScripts = "/v1/scripts/";

ExitStatus refused(std::string message) { return ExitStatus{kExitRefused, std::move(message)}; }
ExitStatus failed(std::string message) { return ExitStatus{kExitFailure, std::move(message)}; }

std::string trimmed_path_prefix(std::string path) {
  while (!path.empty() && path.back() == '/') path.pop_back();
  return path;
}

}  // namespace

Result<std::string> normalize_server_url(std::string_view text) {
  auto url = http_client::parse_url(text);
  if (!url) return url.error();
  if (url->scheme != "http" && url->scheme != "https") {
    return fail(Errc::invalid_input,
                "'" + redact_registration_secrets(text.substr(0, 200)) + "' is not an http(s) URL");
  }
  std::string path = url->target.substr(0, url->target.find('?'));
  return url->origin() + trimmed_path_prefix(std::move(path));
}

Result<RegistrationUrl> parse_registration_url(std::string_view text) {
  auto bad = [&] {
    return fail(Errc::invalid_input, "'" + redact_registration_secrets(text.substr(0, 200)) +
                                         "' is not a registration URL (https://server/v1/scripts/<token>)");
  };
  auto url = http_client::parse_url(text);
  if (!url || (url->scheme != "http" && url->scheme != "https")) return bad();
  if (url->target.find('?') != std::string::npos) return bad();
  const auto at = url->target.rfind(kScripts);
  if (at == std::string::npos) return bad();
  std::string token = url->target.substr(at + kScripts.size());
  while (!token.empty() && token.back() == '/') token.pop_back();
  if (token.empty() || token.find('/') != std::string::npos || token.size() > 128) return bad();
  RegistrationUrl out;
  out.server_url = url->origin() + trimmed_path_prefix(url->target.substr(0, at));
  out.token = std::move(token);
  return out;
}

json registration_body(const RegistrationFacts& f) {
  json body = {{"hostname", clean_text(f.hostname, 255)},
               {"machineId", f.machine_id},
               {"agentVersion", kVersion},
               {"labels", clean_labels(json(f.labels))}};
  if (!f.agent_ip.empty()) body["agentIp"] = f.agent_ip;
  return body;
}

Plan plan_run(const std::optional<State>& state, std::string_view registration_url, const std::string& state_dir) {
  Plan plan;
  if (registration_url.empty()) {
    if (state) {
      plan.action = Plan::Action::use_state;
    } else {
      plan.refusal = refused("no state in " + state_dir +
                             " and no registration URL: run the command the server shows for a registration token");
    }
    return plan;
  }
  auto url = parse_registration_url(registration_url);
  if (!url) {
    plan.refusal = refused(url.error().message);
    return plan;
  }
  if (!state) {
    plan.action = Plan::Action::register_host;
    plan.url = std::move(*url);
    return plan;
  }
  auto stored = normalize_server_url(state->server_url);
  if (stored && *stored == url->server_url) {
    plan.action = Plan::Action::use_state;  // already registered there: nothing new
    return plan;
  }
  plan.refusal = refused("the state in " + state_dir + " belongs to " + state->server_url + ", not " +
                         url->server_url + "; to move this host, remove it on the old server, delete " +
                         (std::filesystem::path(state_dir) / "state.json").string() + " and run the command again");
  return plan;
}

boost::asio::awaitable<Result<std::string, ExitStatus>> fetch_pinned_ca(std::string server_url,
                                                                       std::string checksum) {
  const std::string url = server_url + "/v1/cacerts";
  // Named arguments: GCC 12 miscompiles braced temporaries inside co_await.
  http_client::Headers headers = {{"Accept", "application/x-pem-file"}};
  auto res = co_await http_client::async_request("GET", url, std::move(headers), std::string(),
                                                 tls::ClientTrust::insecure());
  if (!res) co_return failed("cannot fetch the server's CA certificate: " + res.error().message);
  if (res->status == 404) {
    co_return refused("GET " + url + " answered 404: the server has no CA of its own to pin (its certificate "
                      "comes from a public CA?); run the command without PADDOCK_CA_CHECKSUM");
  }
  if (res->status != 200) {
    co_return failed("GET " + url + " answered " + std::to_string(res->status) + "; try again in a moment");
  }
  const std::string got = crypto::sha256_hex(res->body);
  if (!crypto::constant_time_equals(got, checksum)) {
    co_return refused("CA checksum mismatch: " + url + " has sha256 " + got + ", the command expects " + checksum +
                      "; check that the command is the server's current one and that nothing intercepts the "
                      "connection");
  }
  co_return std::move(res->body);
}

Result<State, ExitStatus> registration_result(const http_client::Response& res, const RegistrationUrl& url,
                                              const std::string& ca_pem, const std::string& machine_id) {
  const auto error = http_client::parse_error_body(res.body);
  const std::string detail =
      error.code.empty() ? std::string() : " (" + error.code + (error.message.empty() ? "" : ": " + error.message) + ")";
  if (res.status == 404) {
    return refused("the registration token is unknown, expired, used up or deactivated; create a new one");
  }
  if (res.status == 403 || res.status == 409) {
    return refused("the server refused to register this machine" + detail +
                   (error.code == "HostDeactivated" ? "; activate or remove its host on the server, then run the "
                                                      "command again"
                                                    : ""));
  }
  if (res.status == 400 || res.status == 422) {
    return refused("the server refused this host's facts" + detail + "; check --hostname, --label and --agent-ip");
  }
  if (res.status != 201) {
    return failed("registration failed: " + url.server_url + " answered " + std::to_string(res.status) + detail);
  }
  auto body = json::parse(res.body, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& why) {
    return failed("the server's registration answer is unusable: " + why);
  };
  if (!body.is_object()) return bad("not a JSON object");
  auto text = [&](const json& j, const char* key) -> std::optional<std::string> {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) return std::nullopt;
    return it->get<std::string>();
  };
  State s;
  s.server_url = url.server_url;
  s.ca_pem = ca_pem;
  s.machine_id = machine_id;
  auto host_id = text(body, "hostId");
  if (!host_id) return bad("no hostId");
  s.host_id = *host_id;
  s.host_uuid = text(body, "hostUuid").value_or("");
  auto cred = body.find("credential");
  if (cred == body.end() || !cred->is_object()) return bad("no credential");
  auto ak = text(*cred, "accessKey");
  auto sk = text(*cred, "secretKey");
  if (!ak || !sk) return bad("an incomplete credential");
  s.credential = {*ak, *sk};
  auto jwks = body.find("jwks");
  s.jwks = jwks != body.end() && jwks->is_object() ? *jwks : json::object();
  return s;
}

boost::asio::awaitable<Result<State, ExitStatus>> register_host(RegistrationUrl url, tls::ClientTrust trust,
                                                                std::string ca_pem, RegistrationFacts facts,
                                                                std::function<bool()> stopping) {
  const std::string target = url.server_url + std::string(kScripts) + url.token;
  const std::string body = encode_message(registration_body(facts));
  const http_client::Headers headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
  auto res = co_await http_client::async_request("POST", target, headers, body, trust);
  // 409: this machine id's host is connected. If that connection is this
  // machine's own agent, just stopped, the server lets go of it within its
  // 15 s liveness window, so wait past that before refusing for good.
  const auto patience = std::chrono::seconds(40);
  const auto give_up = std::chrono::steady_clock::now() + patience;
  if (res && res->status == 409) {
    spdlog::warn("this machine's host is connected from elsewhere; waiting up to {} s in case that is this "
                 "machine's agent, just stopped",
                 patience.count());
  }
  while (res && res->status == 409 && std::chrono::steady_clock::now() < give_up && !stopping()) {
    boost::asio::steady_timer pause(co_await boost::asio::this_coro::executor, std::chrono::seconds(1));
    co_await pause.async_wait(boost::asio::use_awaitable);
    res = co_await http_client::async_request("POST", target, headers, body, trust);
  }
  // The token is a secret: name the server, not the URL.
  if (!res) {
    const std::string line = "cannot register with " + url.server_url + ": " + res.error().message;
    if (res.error().code == Errc::forbidden) {
      co_return refused(line + "; if the server uses a CA of its own, run the command with its "
                               "PADDOCK_CA_CHECKSUM");
    }
    co_return failed(line);
  }
  co_return registration_result(*res, url, ca_pem, facts.machine_id);
}

}  // namespace paddock::agent
