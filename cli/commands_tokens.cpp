// paddock tokens create [--ttl S] [--max-uses N] [--name N] [--wait] | tokens ls

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/resolve.hpp"
#include "cli/table.hpp"
#include "cli/terminal.hpp"

#include <chrono>
#include <thread>

#include <unistd.h>

namespace paddock::cli {

namespace {

void print_tokens(Session& s, const std::vector<json>& tokens) {
  Table table({"ID", "NAME", "STATE", "USES", "MAX USES", "EXPIRES", "CREATED"});
  for (const auto& t : tokens) {
    table.add({cell(t, "id"), cell(t, "name"), cell(t, "state"), cell(t, "uses"), cell(t, "maxUses"),
               cell(t, "expiresAt"), cell(t, "created")});
  }
  table.print(s.out);
}

// Where new tokens go: the project of --project (sent as a header), else the
// first project the key sees. An account key must name one; a project key
// sees exactly its own.
ApiResult<std::string> tokens_collection(Session& s) {
  if (!s.api.project_id().empty()) return std::string("/v1/registrationTokens");
  auto projects = s.api.list("/v1/projects", {{"sort", "created"}});
  if (!projects) return projects.error();
  if (projects->empty()) {
    ApiError e;
    e.message = "this key sees no project to create a token in: ask an owner to add you to one";
    return e;
  }
  const json& project = projects->front();
  if (projects->size() > 1) {
    s.err << "note: using project " << printable(str(project, "name", str(project, "id"))) << " ("
          << str(project, "id") << "); pass --project to choose another" << std::endl;
  }
  std::string url;
  if (auto links = project.find("links"); links != project.end() && links->is_object()) {
    url = str(*links, "registrationTokens");
  }
  if (url.empty()) url = "/v1/projects/" + str(project, "id") + "/registrationTokens";
  return url;
}

// Polls the token's links.self until it settles; a progress line on stderr.
ApiResult<json> wait_settled(Session& s, json token, double timeout_s) {
  const std::string self = token.contains("links") ? str(token["links"], "self") : std::string();
  if (self.empty()) {
    ApiError e;
    e.message = "the new token has no links.self to follow";
    return e;
  }
  const bool live = terminal::is_terminal(STDERR_FILENO);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  std::string last_line;
  int polls = 0;
  while (str(token, "transitioning") == "yes") {
    const std::string line = "waiting for token " + str(token, "id") + ": " +
                             printable(str(token, "transitioningMessage", str(token, "state")));
    if (live) {
      s.err << "\r\033[K" << line << std::string(static_cast<std::size_t>(polls % 4), '.') << std::flush;
    } else if (line != last_line) {
      s.err << line << std::endl;
    }
    last_line = line;
    if (std::chrono::steady_clock::now() >= deadline) {
      if (live) s.err << '\n';
      ApiError e;
      e.message = "token " + str(token, "id") + " is still being issued after " +
                  std::to_string(static_cast<int>(timeout_s)) + "s";
      return e;
    }
    // Polling is what the API offers a client without a subscription.
    std::this_thread::sleep_for(std::chrono::milliseconds(polls < 10 ? 200 : 1000));
    ++polls;
    auto next = s.api.get(self);
    if (!next) {
      if (live) s.err << '\n';
      return next.error();
    }
    token = std::move(*next);
  }
  if (live && !last_line.empty()) s.err << "\r\033[K" << std::flush;
  return token;
}

}  // namespace

int tokens_create(Session& s, const TokenCreateOptions& options) {
  auto collection = tokens_collection(s);
  if (!collection) return s.fail(collection.error());
  json body = json::object();
  if (options.ttl) body["ttl"] = *options.ttl;
  if (options.max_uses) body["maxUses"] = *options.max_uses;
  if (!options.name.empty()) body["name"] = options.name;
  auto token = s.api.post(*collection, body);
  if (!token) return s.fail(token.error());
  if (!options.wait) {
    if (s.json_output()) {
      print_json(s.out, *token);
    } else {
      print_tokens(s, {*token});
    }
    return kExitOk;
  }
  auto settled = wait_settled(s, std::move(*token), options.timeout_s);
  if (!settled) return s.fail(settled.error());
  if (str(*settled, "transitioning") == "error") {
    return s.fail("token " + str(*settled, "id") + " failed: " +
                  printable(str(*settled, "transitioningMessage", "no reason given")));
  }
  if (s.json_output()) {
    print_json(s.out, *settled);
    return kExitOk;
  }
  const std::string command = str(*settled, "command");
  if (str(*settled, "state") != "active" || command.empty()) {
    return s.fail("token " + str(*settled, "id") + " is " + cell(*settled, "state") + ", not active");
  }
  s.out << command << std::endl;
  return kExitOk;
}

int tokens_list(Session& s) {
  auto tokens = s.api.list("/v1/registrationTokens");
  if (!tokens) return s.fail(tokens.error());
  if (s.json_output()) {
    print_json(s.out, *tokens);
  } else {
    print_tokens(s, *tokens);
  }
  return kExitOk;
}

}  // namespace paddock::cli
