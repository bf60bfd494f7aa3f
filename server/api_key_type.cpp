#include "server/resource_types.hpp"
#include "server/transaction.hpp"

#include "common/crypto.hpp"
#include "common/time_util.hpp"
#include "server/server_context.hpp"
#include "server/stream_broker.hpp"

namespace paddock::server {

namespace {

// Account keys live at /v1/apiKeys (the caller's own); project keys at
// /v1/projects/<id>/apiKeys. The secret is shown once, in the create answer,
// and stored only as a salted hash.
class ApiKeyType final : public ResourceType {
 public:
  ApiKeyType() : ResourceType(definition()) {}

  static TypeDef definition() {
    TypeDef d;
    d.id = "apiKey";
    d.collection = "apiKeys";
    d.table = "api_keys";
    d.id_prefix = id_prefix::api_key;
    d.scope = Scope::global;
    d.fields = common_fields();
    for (auto& f : d.fields) {
      if (f.name == "state") f.options = {"active", "inactive", "removed"};
    }
    d.fields.push_back(field("publicValue", FieldType::string).stored("publicValue").filter());
    d.fields.push_back(field("secretValue", FieldType::password));
    d.fields.push_back(
        field("accountId", FieldType::reference, "account").null().creatable().stored("accountId").filter());
    d.fields.push_back(field("projectId", FieldType::reference, "project").null().stored("projectId").filter());
    d.fields.push_back(field("expiresAt", FieldType::date).null().creatable().stored("expiresAt").filter().sort());
    d.resource_actions = {{"deactivate", "", "apiKey"}, {"activate", "", "apiKey"}};
    d.creatable = d.updatable = d.deletable = true;
    return d;
  }

  Condition visible(const RequestContext& ctx) const override {
    const Caller& caller = *ctx.caller;
    if (ctx.project_id) return {"\"projectId\" = ?", {*ctx.project_id}};
    if (caller.admin) return {};
    if (caller.account_id) return {"\"accountId\" = ?", {*caller.account_id}};
    return {"0", {}};
  }

  std::optional<std::int64_t> project_of(const db::Row& row) const override {
    if (row.contains("projectId") && row["projectId"].is_number_integer()) return row["projectId"].get<std::int64_t>();
    return std::nullopt;
  }

  bool can_create(const RequestContext& ctx) const override {
    if (ctx.project_id) return ctx.caller->role_in(*ctx.project_id) >= Role::member;
    return ctx.caller->account_id.has_value();
  }

  bool can_write(const RequestContext& ctx, const db::Row& row) const override {
    if (auto p = project_of(row)) return ctx.caller->role_in(*p) >= Role::member;
    return ctx.caller->admin || (ctx.caller->account_id && row["accountId"] == *ctx.caller->account_id);
  }

  db::Row create(db::Connection& c, const RequestContext& ctx, const nlohmann::json& input) override {
    nlohmann::json values = input;
    if (ctx.project_id) {
      values.erase("accountId");
      values["projectId"] = *ctx.project_id;
    } else if (!input.contains("accountId") || input["accountId"].is_null()) {
      values["accountId"] = *ctx.caller->account_id;
    } else if (!ctx.caller->admin && input["accountId"] != *ctx.caller->account_id) {
      throw ApiAbort(ApiError::invalid("InvalidReference", "accountId", "only admins make keys for other accounts"));
    } else if (c.query_one("SELECT id FROM accounts WHERE id = ?", {input["accountId"].get<std::int64_t>()})
                   .is_null()) {
      throw ApiAbort(ApiError::invalid("InvalidReference", "accountId", "no such account"));
    }
    if (values.contains("expiresAt") && values["expiresAt"].is_number() &&
        values["expiresAt"].get<std::int64_t>() <= time_util::now_ms()) {
      throw ApiAbort(ApiError::invalid("MinLimitExceeded", "expiresAt", "expiresAt must be in the future"));
    }
    const std::string secret = crypto::random_token(32);
    const std::string salt = crypto::random_token(16);
    values["publicValue"] = crypto::random_token(12);
    values["secretSalt"] = salt;
    values["secretHash"] = crypto::hash_secret(salt, secret);
    db::Row row = insert(c, std::move(values));
    row["secretValue"] = secret;  // for after_create only; never stored
    return row;
  }

  db::Row remove(db::Connection& c, const RequestContext& ctx, const db::Row& row) override {
    end_streams(ctx, row, "the API key was removed");
    return ResourceType::remove(c, ctx, row);
  }

  void after_create(nlohmann::json& resource, const db::Row& row, const nlohmann::json&) const override {
    resource["secretValue"] = row["secretValue"];
  }

  std::vector<std::string> actions(const db::Row& row) const override {
    if (row["state"] == "active") return {"deactivate"};
    if (row["state"] == "inactive") return {"activate"};
    return {};
  }

  nlohmann::json act(db::Connection& c, const RequestContext& ctx, const db::Row& row, const std::string& action,
                     const nlohmann::json&) override {
    const auto id = row["id"].get<std::int64_t>();
    if (action == "deactivate") end_streams(ctx, row, "the API key was revoked");
    c.exec("UPDATE api_keys SET state = ? WHERE id = ?",
           {std::string(action == "deactivate" ? "inactive" : "active"), id});
    return {{"row", reload(c, id)}};
  }

 private:
  static void end_streams(const RequestContext& ctx, const db::Row& row, std::string reason) {
    ctx.after_commit.push_back([streams = ctx.server->streams, key = row["publicValue"].get<std::string>(),
                                reason = std::move(reason)] { streams->close_key(key, reason); });
  }
};

}  // namespace

std::unique_ptr<ResourceType> make_api_key_type() { return std::make_unique<ApiKeyType>(); }

}  // namespace paddock::server
