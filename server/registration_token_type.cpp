#include "server/resource_types.hpp"

#include "common/crypto.hpp"
#include "common/time_util.hpp"
#include "server/config.hpp"
#include "server/server_context.hpp"

namespace paddock::server {

namespace {

// A token is created `registering`; the token worker makes it `active` and
// only then does it carry its secret, URL and command.
class RegistrationTokenType final : public ResourceType {
 public:
  explicit RegistrationTokenType(std::function<void()> created)
      : ResourceType(definition()), created_(std::move(created)) {}

  static TypeDef definition() {
    TypeDef d;
    d.id = "registrationToken";
    d.collection = "registrationTokens";
    d.table = "registration_tokens";
    d.id_prefix = id_prefix::registration_token;
    d.scope = Scope::project;
    d.fields = common_fields();
    for (auto& f : d.fields) {
      if (f.name == "state") f.options = {"registering", "active", "inactive", "expired", "removed"};
    }
    d.fields.push_back(field("projectId", FieldType::reference, "project").stored("projectId").filter());
    d.fields.push_back(field("token", FieldType::password));
    d.fields.push_back(field("registrationUrl", FieldType::string));
    d.fields.push_back(field("command", FieldType::string));
    d.fields.push_back(field("image", FieldType::string).null().stored("image"));
    d.fields.push_back(field("ttl", FieldType::int_).creatable().range(0, 10LL * 365 * 86400).def(0).stored("ttl"));
    d.fields.push_back(field("expiresAt", FieldType::date).null().stored("expiresAt").filter().sort());
    d.fields.push_back(
        field("maxUses", FieldType::int_).null().creatable().range(1, 1000000).stored("maxUses").filter());
    d.fields.push_back(field("uses", FieldType::int_).stored("uses").filter().sort());
    d.resource_actions = {{"deactivate", "", "registrationToken"}, {"activate", "", "registrationToken"}};
    d.creatable = d.updatable = d.deletable = true;
    return d;
  }

  db::Row create(db::Connection& c, const RequestContext& ctx, const nlohmann::json& input) override {
    nlohmann::json values = input;
    const auto now = time_util::now_ms();
    values["projectId"] = *ctx.project_id;
    values["created"] = now;
    values["state"] = "registering";
    values["transitioning"] = "yes";
    values["transitioningMessage"] = "issuing the token";
    values["image"] = ctx.server->config->agent_image;
    values["createdBy"] = ctx.caller->access_key;
    const auto ttl = input.value("ttl", std::int64_t{0});
    if (ttl > 0) values["expiresAt"] = now + ttl * 1000;
    auto row = insert(c, std::move(values));
    if (created_) created_();
    return row;
  }

  std::vector<std::string> actions(const db::Row& row) const override {
    // A token past its expiresAt shows as expired (decorate) before the
    // worker records it, and offers what an expired token offers: nothing.
    const bool past = row.contains("expiresAt") && row["expiresAt"].is_number() &&
                      row["expiresAt"].get<std::int64_t>() <= time_util::now_ms();
    if (row["state"] == "active") return past ? std::vector<std::string>{} : std::vector<std::string>{"deactivate"};
    if (row["state"] == "inactive") return {"activate"};
    return {};
  }

  nlohmann::json act(db::Connection& c, const RequestContext&, const db::Row& row, const std::string& action,
                     const nlohmann::json&) override {
    const auto id = row["id"].get<std::int64_t>();
    std::string state = action == "deactivate" ? "inactive" : "active";
    if (state == "active" && row["expiresAt"].is_number() && row["expiresAt"].get<std::int64_t>() <= time_util::now_ms()) {
      state = "expired";
    }
    c.exec("UPDATE registration_tokens SET state = ? WHERE id = ?", {state, id});
    return {{"row", reload(c, id)}};
  }

  void decorate(nlohmann::json& r, const db::Row& row, const RequestContext& ctx) const override {
    // Expiry shows the moment it passes, before the worker records it.
    if (r["state"] == "active" && row["expiresAt"].is_number() &&
        row["expiresAt"].get<std::int64_t>() <= time_util::now_ms()) {
      r["state"] = "expired";
    }
    const auto& sealed = row.contains("tokenSealed") ? row["tokenSealed"] : nlohmann::json();
    if (r["state"] != "active" || !sealed.is_string()) {
      r["token"] = nullptr;
      r["registrationUrl"] = nullptr;
      r["command"] = nullptr;
      return;
    }
    auto token = crypto::unseal(ctx.server->secrets_key, sealed.get<std::string>());
    if (!token) {
      r["token"] = r["registrationUrl"] = r["command"] = nullptr;
      return;
    }
    const std::string url = ctx.base_url + "/v1/scripts/" + *token;
    // On the host's network the bootstrap sees the host's addresses and
    // reaches the server as the host does, with or without Docker's bridge.
    // No --privileged: the agent needs the Docker socket and nothing more.
    std::string command =
        "sudo docker run --rm --network host -v /var/run/docker.sock:/var/run/docker.sock "
        "-v /var/lib/paddock:/var/lib/paddock";
    if (!ctx.server->ca_checksum.empty()) command += " -e PADDOCK_CA_CHECKSUM=" + ctx.server->ca_checksum;
    command += " " + row.value("image", ctx.server->config->agent_image) + " " + url;
    r["token"] = *token;
    r["registrationUrl"] = url;
    r["command"] = command;
  }

 private:
  std::function<void()> created_;
};

}  // namespace

std::unique_ptr<ResourceType> make_registration_token_type(std::function<void()> created) {
  return std::make_unique<RegistrationTokenType>(std::move(created));
}

}  // namespace paddock::server
