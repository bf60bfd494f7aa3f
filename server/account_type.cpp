#include "server/resource_types.hpp"
#include "server/server_context.hpp"
#include "server/stream_broker.hpp"
#include "server/transaction.hpp"

namespace paddock::server {

namespace {

class AccountType final : public ResourceType {
 public:
  AccountType() : ResourceType(definition()) {}

  static TypeDef definition() {
    TypeDef d;
    d.id = "account";
    d.collection = "accounts";
    d.table = "accounts";
    d.id_prefix = id_prefix::account;
    d.scope = Scope::global;
    d.fields = common_fields();
    for (auto& f : d.fields) {
      if (f.name == "state") f.options = {"active", "inactive", "removed"};
    }
    d.fields.push_back(enum_field("kind", {"admin", "user"}).creatable().def("user").stored("kind").filter().sort());
    d.resource_actions = {{"deactivate", "", "account"}, {"activate", "", "account"}};
    d.creatable = d.updatable = d.deletable = true;
    return d;
  }

  Condition visible(const RequestContext& ctx) const override {
    if (ctx.caller->admin) return {};
    if (ctx.caller->account_id) return {"id = ?", {*ctx.caller->account_id}};
    return {"0", {}};
  }

  std::vector<std::string> actions(const db::Row& row) const override {
    if (row["state"] == "active") return {"deactivate"};
    if (row["state"] == "inactive") return {"activate"};
    return {};
  }

  nlohmann::json act(db::Connection& c, const RequestContext& ctx, const db::Row& row, const std::string& action,
                     const nlohmann::json&) override {
    const auto id = row["id"].get<std::int64_t>();
    if (action == "deactivate" && ctx.caller->account_id == id) {
      throw ApiAbort(ApiError::conflict("an account cannot deactivate itself"));
    }
    if (action == "deactivate") close_streams(c, ctx, id, "the account was deactivated");
    c.exec("UPDATE accounts SET state = ? WHERE id = ?",
           {std::string(action == "deactivate" ? "inactive" : "active"), id});
    return {{"row", reload(c, id)}};
  }

  db::Row remove(db::Connection& c, const RequestContext& ctx, const db::Row& row) override {
    if (ctx.caller->account_id == row["id"].get<std::int64_t>()) {
      throw ApiAbort(ApiError::conflict("an account cannot remove itself"));
    }
    close_streams(c, ctx, row["id"].get<std::int64_t>(), "the account was removed");
    return ResourceType::remove(c, ctx, row);
  }

 private:
  // The streams opened with any of the account's keys end with it.
  static void close_streams(db::Connection& c, const RequestContext& ctx, std::int64_t id, const std::string& reason) {
    for (const auto& key : c.query("SELECT publicValue FROM api_keys WHERE accountId = ?", {id})) {
      ctx.after_commit.push_back([streams = ctx.server->streams, key = key["publicValue"].get<std::string>(), reason] {
        streams->close_key(key, reason);
      });
    }
  }
};

}  // namespace

std::unique_ptr<ResourceType> make_account_type() { return std::make_unique<AccountType>(); }

}  // namespace paddock::server
