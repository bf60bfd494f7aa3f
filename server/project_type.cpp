#include "server/events.hpp"
#include "server/resource_types.hpp"
#include "server/server_context.hpp"
#include "server/transaction.hpp"

namespace paddock::server {

namespace {

class ProjectType final : public ResourceType {
 public:
  explicit ProjectType(std::vector<std::string> collections)
      : ResourceType(definition()), collections_(std::move(collections)) {}

  static TypeDef definition() {
    TypeDef d;
    d.id = "project";
    d.collection = "projects";
    d.table = "projects";
    d.id_prefix = id_prefix::project;
    d.scope = Scope::global;
    d.fields = common_fields();
    d.creatable = d.updatable = d.deletable = true;
    return d;
  }

  Condition visible(const RequestContext& ctx) const override {
    const Caller& caller = *ctx.caller;
    if (caller.admin) return {};
    if (caller.key_project_id) return {"id = ?", {*caller.key_project_id}};
    return {"id IN (SELECT projectId FROM project_members WHERE accountId = ?)", {*caller.account_id}};
  }

  // Admins manage projects; owners may rename theirs.
  bool can_write(const RequestContext& ctx, const db::Row& row) const override {
    return ctx.caller->role_in(row["id"].get<std::int64_t>()) >= Role::owner && !ctx.caller->key_project_id;
  }

  db::Row remove(db::Connection& c, const RequestContext& ctx, const db::Row& row) override {
    if (!ctx.caller->admin) throw ApiAbort(ApiError::forbidden("only admins remove projects"));
    // The store deletes the project's hosts with it; their agents, streams
    // and watchers are told here.
    for (auto& host : c.query("SELECT * FROM hosts WHERE projectId = ?", {row["id"].get<std::int64_t>()})) {
      retire_host(c, ctx, host);
      host["state"] = "removed";
      ctx.after_commit.push_back([events = ctx.server->events, host = std::move(host)] {
        ChangeEvent removed;
        removed.type = "host";
        removed.row_id = host["id"].get<std::int64_t>();
        removed.project_id = host["projectId"].get<std::int64_t>();
        removed.row = host;
        events->publish(std::move(removed));
      });
    }
    return ResourceType::remove(c, ctx, row);
  }

  void decorate(nlohmann::json& resource, const db::Row& row, const RequestContext& ctx) const override {
    // A client starting from a project's links works entirely inside it.
    const std::string base = ctx.api_url() + "/projects/" + id_of(row);
    auto& links = resource["links"];
    for (const auto& c : collections_) links[c] = base + "/" + c;
    links["schemas"] = base + "/schemas";
    links["subscribe"] = base + "/subscribe";
  }

 private:
  std::vector<std::string> collections_;
};

}  // namespace

std::unique_ptr<ResourceType> make_project_type(std::vector<std::string> collections) {
  return std::make_unique<ProjectType>(std::move(collections));
}

}  // namespace paddock::server
