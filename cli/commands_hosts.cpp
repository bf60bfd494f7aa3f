// paddock hosts [ls] | activate HOST | deactivate HOST | rm HOST

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/resolve.hpp"
#include "cli/table.hpp"

namespace paddock::cli {

namespace {

std::string docker_cell(const json& host) {
  if (str(host, "dockerState") == "unreachable") return "unreachable";
  return cell(host, "dockerVersion");
}

std::string memory_cell(const json& host) {
  const auto used = number(host, "memoryUsed");
  const auto total = number(host, "memoryTotal");
  if (!used && !total) return "-";
  return format_bytes(used) + " / " + format_bytes(total);
}

void print_hosts(Session& s, const std::vector<json>& hosts) {
  Table table({"ID", "NAME", "STATE", "AGENT IP", "DOCKER", "CPU%", "MEMORY"});
  for (const auto& h : hosts) {
    table.add({cell(h, "id"), cell(h, "name"), cell(h, "state"), cell(h, "agentIp"), docker_cell(h),
               format_percent(number(h, "cpuPercent")), memory_cell(h)});
  }
  table.print(s.out);
}

void print_host(Session& s, const json& host) {
  if (s.json_output()) {
    print_json(s.out, host);
  } else {
    print_hosts(s, {host});
  }
}

std::string label(const json& host) {
  const std::string name = str(host, "name");
  return name.empty() ? str(host, "id") : printable(name) + " (" + str(host, "id") + ")";
}

}  // namespace

int Session::fail(std::string_view line) const {
  err << "error: " << line << std::endl;
  return kExitFailure;
}

int hosts_list(Session& s) {
  auto hosts = s.api.list("/v1/hosts");
  if (!hosts) return s.fail(hosts.error());
  if (s.json_output()) {
    print_json(s.out, *hosts);
  } else {
    print_hosts(s, *hosts);
  }
  return kExitOk;
}

int hosts_action(Session& s, std::string_view action, const std::string& ref) {
  auto host = resolve_host(s.api, ref);
  if (!host) return s.fail(host.error());
  std::string url;
  if (auto actions = host->find("actions"); actions != host->end() && actions->is_object()) {
    url = str(*actions, action);
  }
  if (url.empty()) {
    if (action == "activate" && str(*host, "state") != "inactive") {
      return s.fail("host " + label(*host) + " is not inactive (state " + cell(*host, "state") + ")");
    }
    if (action == "deactivate" && str(*host, "state") == "inactive") {
      return s.fail("host " + label(*host) + " is already inactive");
    }
    return s.fail("cannot " + std::string(action) + " host " + label(*host) + " in state " + cell(*host, "state") +
                  " (or your key may not change it)");
  }
  auto changed = s.api.post(url, json::object());
  if (!changed) return s.fail(changed.error());
  print_host(s, *changed);
  return kExitOk;
}

int hosts_remove(Session& s, const std::string& ref) {
  auto host = resolve_host(s.api, ref);
  if (!host) return s.fail(host.error());
  std::string url;
  if (auto links = host->find("links"); links != host->end() && links->is_object()) url = str(*links, "remove");
  if (url.empty()) return s.fail("your key may not remove host " + label(*host));
  auto removed = s.api.remove(url);
  if (!removed) return s.fail(removed.error());
  print_host(s, *removed);
  return kExitOk;
}

}  // namespace paddock::cli
