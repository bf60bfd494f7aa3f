#include "cli/app.hpp"

#include "cli/resolve.hpp"
#include "cli/terminal.hpp"
#include "common/version.hpp"

#include <csignal>
#include <cstdlib>
#include <exception>
#include <iostream>

namespace paddock::cli {

namespace {

constexpr const char* kGlobal = "Global options";

// Every command takes the global options, so `paddock hosts -o json` works
// and each --help lists them.
void add_global_options(CLI::App* app, GlobalFlags& g) {
  app->add_option("--url", g.url, "Server URL, e.g. https://paddock.example:8443 (env PADDOCK_URL)")->group(kGlobal);
  app->add_option("--access-key", g.access_key, "API access key (env PADDOCK_ACCESS_KEY)")->group(kGlobal);
  app->add_option("--secret-key", g.secret_key, "API secret key (env PADDOCK_SECRET_KEY)")->group(kGlobal);
  app->add_option("--ca-checksum", g.ca_checksum,
                  "sha256 of the server's CA (GET /v1/cacerts): fetch it once and pin it (env PADDOCK_CA_CHECKSUM)")
      ->group(kGlobal);
  app->add_option("--ca-file", g.ca_file, "Pin the CA certificate in this PEM file")->group(kGlobal);
  app->add_option("--project", g.project, "Project (environment) id or name, for account keys")->group(kGlobal);
  app->add_option("-o,--output", g.output, "Output format: table (default) or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->group(kGlobal);
}

}  // namespace

App::App() : cli_("paddock: the command line of a Paddock server's REST API", "paddock") {
  cli_.set_version_flag("--version", std::string("paddock ") + kVersion);
  cli_.require_subcommand(0, 1);
  cli_.get_formatter()->column_width(34);
  cli_.footer("Configure with PADDOCK_URL, PADDOCK_ACCESS_KEY, PADDOCK_SECRET_KEY and PADDOCK_CA_CHECKSUM\n"
              "(or the matching flags). Run 'paddock COMMAND --help' for a command's options.");
  add_global_options(&cli_, global);

  auto leaf = [this](CLI::App* app, std::string name, std::function<int(Session&)> fn) {
    // CLI11 runs a subcommand's callback before its parent's: the first set wins.
    app->callback([this, name, fn = std::move(fn)] {
      if (!command_.empty()) return;
      command_ = name;
      run_ = fn;
    });
  };

  // hosts
  auto* hosts = cli_.add_subcommand("hosts", "List hosts; activate, deactivate or remove one");
  hosts->require_subcommand(0, 1);
  add_global_options(hosts, global);
  leaf(hosts, "hosts", [](Session& s) { return hosts_list(s); });
  auto* hosts_ls = hosts->add_subcommand("ls", "List hosts (the default)");
  add_global_options(hosts_ls, global);
  leaf(hosts_ls, "hosts ls", [](Session& s) { return hosts_list(s); });
  for (const char* action : {"activate", "deactivate"}) {
    const std::string a = action;
    auto* sub = hosts->add_subcommand(a, a == "activate" ? "Let an inactive host's agent connect again"
                                                         : "Disconnect a host's agent and refuse it until activated");
    sub->add_option("HOST", host_ref, "Host id or unique name")->required();
    add_global_options(sub, global);
    leaf(sub, "hosts " + a, [this, a](Session& s) { return hosts_action(s, a, host_ref); });
  }
  auto* hosts_rm = hosts->add_subcommand("rm", "Remove a host (its agent is refused from then on)");
  hosts_rm->add_option("HOST", host_ref, "Host id or unique name")->required();
  add_global_options(hosts_rm, global);
  leaf(hosts_rm, "hosts rm", [this](Session& s) { return hosts_remove(s, host_ref); });

  // containers
  auto* ctrs = cli_.add_subcommand("containers", "List containers (every state) of all hosts or one");
  ctrs->add_option("--host", containers.host, "Only this host's (id or name)");
  ctrs->add_option("--state", containers.states, "Only containers in this state (repeatable: any of)")
      ->check(CLI::IsMember({"created", "running", "paused", "restarting", "removing", "exited", "dead"}));
  add_global_options(ctrs, global);
  leaf(ctrs, "containers", [this](Session& s) { return containers_list(s, containers); });

  // tokens
  auto* tokens = cli_.add_subcommand("tokens", "Registration tokens: the command that adds a host");
  tokens->require_subcommand(1, 1);
  add_global_options(tokens, global);
  auto* create = tokens->add_subcommand("create", "Create a registration token");
  create->add_option("--ttl", token.ttl, "Seconds until it expires (default: never)")->check(CLI::NonNegativeNumber);
  create->add_option("--max-uses", token.max_uses, "Hosts it may register (default: unlimited)")
      ->check(CLI::PositiveNumber);
  create->add_option("--name", token.name, "A name for it");
  create->add_flag("--wait", token.wait, "Wait until it is active, then print the command to run on a host");
  create->add_option("--timeout", token.timeout_s, "With --wait: give up after this many seconds (default 120)")
      ->check(CLI::PositiveNumber);
  add_global_options(create, global);
  leaf(create, "tokens create", [this](Session& s) { return tokens_create(s, token); });
  auto* tokens_ls = tokens->add_subcommand("ls", "List registration tokens");
  add_global_options(tokens_ls, global);
  leaf(tokens_ls, "tokens ls", [](Session& s) { return tokens_list(s); });

  // logs
  auto* lg = cli_.add_subcommand("logs", "Print a container's logs");
  lg->add_option("CONTAINER", logs.container, "Paddock id, Docker id or unique prefix, or name")->required();
  lg->add_flag("-f,--follow", logs.follow, "Keep printing new output");
  lg->add_option("--tail", logs.tail, "Lines from the end to show: a number or all (default: the server's, 100)");
  lg->add_option("--since", logs.since, "From this time: RFC 3339, epoch seconds, or a duration ago (10m, 1h30m)");
  lg->add_option("--until", logs.until, "Up to this time (same forms as --since)");
  lg->add_flag("-t,--timestamps", logs.timestamps, "Start each line with its timestamp");
  lg->add_option("--host", logs.host, "The container's host, when its name is not unique");
  add_global_options(lg, global);
  leaf(lg, "logs", [this](Session& s) { return cli::logs(s, logs); });

  // exec: everything after CONTAINER is the command, options included.
  auto* ex = cli_.add_subcommand("exec", "Run a command in a running container");
  ex->prefix_command();
  ex->add_flag("-i,--interactive", exec.interactive, "Send stdin to the command");
  ex->add_flag("-t,--tty", exec.tty, "Give the command a terminal (raw mode locally when stdin is one)");
  ex->add_option("--host", exec.host, "The container's host, when its name is not unique");
  ex->footer("Usage: paddock exec [-i] [-t] [--host H] CONTAINER [--] COMMAND [ARG...]\n"
             "Exits with the command's exit code.");
  add_global_options(ex, global);
  exec_cmd_ = ex;
  leaf(ex, "exec", [this](Session& s) { return cli::exec(s, exec); });

  // stats
  auto* st = cli_.add_subcommand("stats", "Live resource use of containers, like docker stats");
  st->add_option("CONTAINER", stats.containers, "Containers to watch (default: every running one)");
  st->add_flag("--no-stream", stats.no_stream, "Print one sample per container and exit");
  st->add_option("--host", stats.host, "Only this host's containers / the containers' host");
  add_global_options(st, global);
  leaf(st, "stats", [this](Session& s) { return cli::stats(s, stats); });

}

std::optional<int> App::parse(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::vector<const char*> argv;
  argv.push_back("paddock");
  for (const auto& a : args) argv.push_back(a.c_str());
  try {
    cli_.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::CallForHelp& e) {
    return cli_.exit(e, out, err);
  } catch (const CLI::CallForAllHelp& e) {
    return cli_.exit(e, out, err);
  } catch (const CLI::CallForVersion& e) {
    return cli_.exit(e, out, err);
  } catch (const CLI::ParseError& e) {
    err << "error: " << e.what() << "\nRun 'paddock --help' or 'paddock COMMAND --help' for usage." << std::endl;
    return kExitUsage;
  }
  return finish_parse(err);
}

std::optional<int> App::finish_parse(std::ostream& err) {
  if (command_.empty()) {
    err << cli_.help();
    return kExitUsage;
  }
  if (command_ == "exec") {
    // prefix_command() leaves CONTAINER [--] COMMAND... unparsed.
    std::vector<std::string> rest = exec_cmd_->remaining();
    if (!rest.empty() && rest.front() == "--") rest.erase(rest.begin());
    if (rest.empty()) {
      err << "error: exec needs a container and a command: paddock exec [-i] [-t] CONTAINER [--] COMMAND..."
          << std::endl;
      return kExitUsage;
    }
    exec.container = rest.front();
    rest.erase(rest.begin());
    if (!rest.empty() && rest.front() == "--") rest.erase(rest.begin());
    if (rest.empty()) {
      err << "error: exec needs a command after the container: paddock exec " << exec.container
          << " -- COMMAND..." << std::endl;
      return kExitUsage;
    }
    exec.command = std::move(rest);
  }
  return std::nullopt;
}

int App::run(std::ostream& out, std::ostream& err, const Getenv& getenv, ApiClient::Transport transport) {
  auto config = load_config(global, getenv);
  if (!config) {
    err << "error: " << config.error().message << std::endl;
    return kExitUsage;
  }
  const std::string project = config->project;
  ApiClient api(std::move(*config), std::move(transport));
  Session session{api, out, err};
  if (!project.empty() && !is_paddock_id(project, "1p")) {
    // A project name: find its id without the header first.
    api.set_project_id({});
    auto found = resolve_project(api, project);
    if (!found) return session.fail(found.error());
    api.set_project_id(str(*found, "id"));
  }
  return run_(session);
}

int run_main(int argc, char** argv) {
  // A closed stdout (| head) is an error on write, not a silent death.
  std::signal(SIGPIPE, SIG_IGN);
  std::set_terminate([] {
    terminal::emergency_restore();
    std::abort();
  });
  try {
    App app;
    std::vector<std::string> args(argv + 1, argv + argc);
    if (auto done = app.parse(args, std::cout, std::cerr)) return *done;
    const int code = app.run(std::cout, std::cerr);
    std::cout.flush();
    return code;
  } catch (const std::exception& e) {
    terminal::emergency_restore();
    std::cerr << "error: " << e.what() << std::endl;
    return kExitFailure;
  }
}

}  // namespace paddock::cli
