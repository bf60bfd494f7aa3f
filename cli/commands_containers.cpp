// paddock containers [--host H] [--state S]...

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/resolve.hpp"
#include "cli/table.hpp"

#include <algorithm>
#include <map>

namespace paddock::cli {

int containers_list(Session& s, const ContainersOptions& options) {
  Query query;
  std::string collection = "/v1/containers";
  if (!options.host.empty()) {
    auto host = resolve_host(s.api, options.host);
    if (!host) return s.fail(host.error());
    collection = containers_url(*host);
  }
  for (const auto& state : options.states) query.emplace_back("state", state);  // repeated: any of
  auto containers = s.api.list(collection, query);
  if (!containers) return s.fail(containers.error());
  if (s.json_output()) {
    print_json(s.out, *containers);
    return kExitOk;
  }

  auto names = host_names_of(s.api, *containers);
  if (!names) return s.fail(names.error());
  const std::map<std::string, std::string>& host_name = *names;

  Table table({"ID", "NAME", "HOST", "IMAGE", "STATE", "STATUS", "DOCKER ID"});
  for (const auto& c : *containers) {
    auto h = host_name.find(str(c, "hostId"));
    table.add({cell(c, "id"), cell(c, "name"), h == host_name.end() ? "-" : printable(h->second), cell(c, "image"),
               cell(c, "state"), cell(c, "status"), printable(str(c, "dockerId", "-").substr(0, 12))});
  }
  table.print(s.out);
  return kExitOk;
}

}  // namespace paddock::cli
