#pragma once
// Joining a server (docs/agent-protocol.md, "Registration"): trusting it by
// CA checksum, redeeming the registration token, and deciding what to do
// with a state that already exists.

#include "agent/exit_status.hpp"
#include "agent/state.hpp"
#include "common/http_client.hpp"
#include "common/result.hpp"
#include "common/tls.hpp"

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace paddock::agent {

// <server>/v1/scripts/<token>, split.
struct RegistrationUrl {
  std::string server_url;  // normalized: scheme://host[:port][/prefix], no trailing slash
  std::string token;
};
Result<RegistrationUrl> parse_registration_url(std::string_view url);

// scheme://host[:port][/prefix] with the scheme and host lowercased, a
// default port dropped and no trailing slash: what "the same server" means.
Result<std::string> normalize_server_url(std::string_view url);

// What the agent tells the server about itself when it registers.
struct RegistrationFacts {
  std::string hostname;
  std::string machine_id;
  std::map<std::string, std::string> labels;
  std::string agent_ip;  // empty: not sent
};
nlohmann::json registration_body(const RegistrationFacts& facts);

// The decision for a run given the stored state (if any) and the URL (if
// any): use the state, register, or refuse (exit 2 with what to do).
struct Plan {
  enum class Action { use_state, register_host, refuse };
  Action action = Action::refuse;
  ExitStatus refusal;
  std::optional<RegistrationUrl> url;
};
Plan plan_run(const std::optional<State>& state, std::string_view registration_url,
              const std::string& state_dir_text);

// GET <server>/v1/cacerts without verification and compare the sha256 of
// the exact bytes with `checksum`. Returns the CA to pin. A mismatch is exit
// 2 ("CA checksum mismatch: …"); an unreachable server is exit 1.
boost::asio::awaitable<Result<std::string, ExitStatus>> fetch_pinned_ca(std::string server_url,
                                                                       std::string checksum);

// The State a 201 answer to POST <registrationUrl> describes, or why it is
// unusable; other statuses become the exit they call for (404: exit 2 "the
// registration token is unknown, …").
Result<State, ExitStatus> registration_result(const http_client::Response& response, const RegistrationUrl& url,
                                              const std::string& ca_pem, const std::string& machine_id);

// POST the facts to the registration URL with `trust`. While the server
// answers 409 (this machine id's host is connected) it asks again every
// second for up to 40 s, unless `stopping()`.
boost::asio::awaitable<Result<State, ExitStatus>> register_host(RegistrationUrl url, tls::ClientTrust trust,
                                                                std::string ca_pem, RegistrationFacts facts,
                                                                std::function<bool()> stopping);

}  // namespace paddock::agent
