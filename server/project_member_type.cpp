#include "server/auth.hpp"
#include "server/resource_types.hpp"
#include "server/server_context.hpp"
#include "server/stream_broker.hpp"
#include "server/transaction.hpp"

#include "common/time_util.hpp"

namespace paddock::server {

namespace {

class ProjectMemberType final : public ResourceType {
 public:
  ProjectMemberType() : ResourceType(definition()) {}

  static TypeDef definition() {
    TypeDef d;
    d.id = "projectMember";
    d.collection = "projectMembers";
    d.table = "project_members";
    d.id_prefix = id_prefix::project_member;
    d.scope = Scope::project;
    d.fields = common_fields();
    d.fields.push_back(field("projectId", FieldType::reference, "project").stored("projectId").filter());
    d.fields.push_back(
        field("accountId", FieldType::reference, "account").req().creatable().stored("accountId").filter());
    d.fields.push_back(enum_field("role", {"owner", "member", "readonly"})
                           .req()
                           .creatable()
                           .updatable()
                           .stored("role")
                           .filter()
                           .sort());
    d.creatable = d.updatable = d.deletable = true;
    return d;
  }

  // Owners manage members; everyone in the project sees them.
  bool can_create(const RequestContext& ctx) const override {
    return ctx.project_id && ctx.caller->role_in(*ctx.project_id) >= Role::owner && !ctx.caller->key_project_id;
  }
  bool can_write(const RequestContext& ctx, const db::Row& row) const override {
    auto p = project_of(row);
    return p && ctx.caller->role_in(*p) >= Role::owner && !ctx.caller->key_project_id;
  }

  db::Row create(db::Connection& c, const RequestContext& ctx, const nlohmann::json& input) override {
    auto account = c.query_one("SELECT id FROM accounts WHERE id = ? AND state != 'removed'",
                               {input["accountId"].get<std::int64_t>()});
    if (account.is_null()) throw ApiAbort(ApiError::invalid("InvalidReference", "accountId", "no such account"));
    auto existing = c.query_one("SELECT id FROM project_members WHERE projectId = ? AND accountId = ?",
                                {*ctx.project_id, input["accountId"].get<std::int64_t>()});
    if (!existing.is_null()) throw ApiAbort(ApiError::conflict("the account is already a member"));
    return ResourceType::create(c, ctx, input);
  }

  db::Row update(db::Connection& c, const RequestContext& ctx, const db::Row& row,
                 const nlohmann::json& input) override {
    if (input.contains("role") && input["role"] != "owner") guard_last_owner(c, row);
    auto updated = ResourceType::update(c, ctx, row, input);
    end_streams_without_access(c, ctx, row, "the account's role in the project changed");
    return updated;
  }

  db::Row remove(db::Connection& c, const RequestContext& ctx, const db::Row& row) override {
    guard_last_owner(c, row);
    auto removed = ResourceType::remove(c, ctx, row);
    end_streams_without_access(c, ctx, row, "the account is no longer a member of the project");
    return removed;
  }

 private:
  // Streams need the member role. Once the change has committed, any key of
  // the account that no longer has it on the project loses its streams to
  // the project's hosts (an admin's keys keep theirs).
  static void end_streams_without_access(db::Connection& c, const RequestContext& ctx, const db::Row& row,
                                         const std::string& reason) {
    const auto project_id = row["projectId"].get<std::int64_t>();
    std::vector<std::int64_t> hosts;
    for (const auto& h : c.query("SELECT id FROM hosts WHERE projectId = ?", {project_id})) {
      hosts.push_back(h["id"].get<std::int64_t>());
    }
    if (hosts.empty()) return;
    const auto now = time_util::now_ms();
    for (const auto& key : c.query("SELECT publicValue FROM api_keys WHERE accountId = ?", {row["accountId"].get<std::int64_t>()})) {
      const auto access_key = key["publicValue"].get<std::string>();
      auto caller = caller_of_key(c, access_key, now);
      if (caller.ok() && caller.value().role_in(project_id) >= Role::member) continue;
      ctx.after_commit.push_back([streams = ctx.server->streams, access_key, hosts, reason] {
        streams->close_key_on_hosts(access_key, hosts, reason);
      });
    }
  }

  // A project keeps at least one owner once it has one.
  static void guard_last_owner(db::Connection& c, const db::Row& row) {
    if (row["role"] != "owner") return;
    auto n = c.query_one("SELECT COUNT(*) AS n FROM project_members WHERE projectId = ? AND role = 'owner'",
                         {row["projectId"].get<std::int64_t>()});
    if (n["n"].get<std::int64_t>() <= 1) throw ApiAbort(ApiError::conflict("a project keeps at least one owner"));
  }
};

}  // namespace

std::unique_ptr<ResourceType> make_project_member_type() { return std::make_unique<ProjectMemberType>(); }

}  // namespace paddock::server
