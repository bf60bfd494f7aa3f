#include "server/resource_types.hpp"
#include "server/transaction.hpp"

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
    return ResourceType::update(c, ctx, row, input);
  }

  db::Row remove(db::Connection& c, const RequestContext& ctx, const db::Row& row) override {
    guard_last_owner(c, row);
    return ResourceType::remove(c, ctx, row);
  }

 private:
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
