#include "server/agent_hub.hpp"
#include "server/resource_types.hpp"

#include "common/time_util.hpp"
#include "server/server_context.hpp"
#include "server/stream_broker.hpp"
#include "server/stream_tokens.hpp"
#include "server/transaction.hpp"

namespace paddock::server {

namespace {

// Hosts are made by agents registering (agent_registration.cpp), never by
// POST; users rename, deactivate, activate and remove them.
class HostType final : public ResourceType {
 public:
  HostType() : ResourceType(definition()) {
    children_["containers"] = {"container", "hostId"};
    children_["images"] = {"image", "hostId"};
  }

  static TypeDef definition() {
    TypeDef d;
    d.id = "host";
    d.collection = "hosts";
    d.table = "hosts";
    d.id_prefix = id_prefix::host;
    d.scope = Scope::project;
    d.fields = common_fields();
    for (auto& f : d.fields) {
      if (f.name == "state") f.options = {"registering", "active", "disconnected", "inactive", "removed"};
      if (f.name == "name") f.create = false;
    }
    auto text = [](const char* name) { return field(name, FieldType::string).null().stored(name).filter().sort(); };
    auto count = [](const char* name) { return field(name, FieldType::int_).null().stored(name).filter().sort(); };
    d.fields.push_back(field("projectId", FieldType::reference, "project").stored("projectId").filter());
    d.fields.push_back(text("agentVersion"));
    d.fields.push_back(text("dockerVersion"));
    d.fields.push_back(text("dockerApiVersion"));
    d.fields.push_back(enum_field("dockerState", {"ok", "unreachable"}).null().stored("dockerState").filter());
    d.fields.push_back(text("os"));
    d.fields.push_back(text("kernel"));
    d.fields.push_back(text("arch"));
    d.fields.push_back(count("cpuCount"));
    d.fields.push_back(field("cpuPercent", FieldType::float_).null().stored("cpuPercent").filter().sort());
    d.fields.push_back(count("memoryTotal"));
    d.fields.push_back(count("memoryUsed"));
    d.fields.push_back(count("diskTotal"));
    d.fields.push_back(count("diskUsed"));
    d.fields.push_back(field("labels", FieldType::map, "string").null().stored("labels"));
    d.fields.push_back(text("agentIp"));
    d.fields.push_back(field("ipAddresses", FieldType::array, "string").null().stored("ipAddresses"));
    d.fields.push_back(field("lastSeen", FieldType::date).null().stored("lastSeen").filter().sort());
    d.fields.push_back(field("conflict", FieldType::string).null().stored("conflict"));
    d.resource_actions = {{"deactivate", "", "host"}, {"activate", "", "host"},
                          {"stats", "containerStatsInput", "hostAccess"}};
    d.updatable = d.deletable = true;
    return d;
  }

  std::vector<std::string> actions(const db::Row& row) const override {
    const auto state = row["state"].get<std::string>();
    if (state == "inactive") return {"activate"};
    if (state == "removed") return {};
    return {"deactivate", "stats"};
  }

  nlohmann::json act(db::Connection& c, const RequestContext& ctx, const db::Row& row, const std::string& action,
                     const nlohmann::json& input) override {
    const auto id = row["id"].get<std::int64_t>();
    if (action == "stats") {
      auto params = stream_params("hoststats", input);
      if (!params) throw ApiAbort(params.error());
      return issue_stream_token(ctx, id, "hoststats", "", *params);
    }
    if (action == "deactivate") {
      // Revokes the credential: /v1/connect now refuses it, and the live
      // connection is closed with the reason.
      c.exec("UPDATE hosts SET state = 'inactive' WHERE id = ?", {id});
      ctx.after_commit.push_back([server = ctx.server, id] {
        server->agents->close(id, {static_cast<websocket::close_code>(4403), "host deactivated"});
        server->streams->close_host(id, "the host was deactivated");
      });
    } else {
      c.exec("UPDATE hosts SET state = CASE WHEN lastSeen IS NULL THEN 'registering' ELSE 'disconnected' END, "
             "conflict = NULL WHERE id = ?",
             {id});
    }
    return {{"row", reload(c, id)}};
  }

  db::Row remove(db::Connection& c, const RequestContext& ctx, const db::Row& row) override {
    retire_host(c, ctx, row);
    return ResourceType::remove(c, ctx, row);
  }
};

class ContainerType final : public ResourceType {
 public:
  ContainerType() : ResourceType(definition()) {}

  static TypeDef definition() {
    TypeDef d;
    d.id = "container";
    d.collection = "containers";
    d.table = "containers";
    d.id_prefix = id_prefix::container;
    d.scope = Scope::project;
    d.fields = common_fields();
    for (auto& f : d.fields) {
      if (f.name == "state") {
        f.options = {"created", "running", "paused", "restarting", "removing", "exited", "dead", "removed"};
      }
      if (f.name == "name" || f.name == "description") f.create = f.update = false;
    }
    d.fields.push_back(field("projectId", FieldType::reference, "project").stored("projectId").filter());
    d.fields.push_back(field("hostId", FieldType::reference, "host").stored("hostId").filter().sort());
    d.fields.push_back(field("dockerId", FieldType::string).stored("dockerId").filter());
    d.fields.push_back(field("image", FieldType::string).null().stored("image").filter().sort());
    d.fields.push_back(field("command", FieldType::string).null().stored("command"));
    d.fields.push_back(field("status", FieldType::string).null().stored("status"));
    d.fields.push_back(field("labels", FieldType::map, "string").null().stored("labels"));
    d.fields.push_back(field("ports", FieldType::array, "json").null().stored("ports"));
    d.resource_actions = {{"logs", "containerLogsInput", "hostAccess"},
                          {"execute", "containerExecInput", "hostAccess"},
                          {"stats", "containerStatsInput", "hostAccess"}};
    return d;
  }

  std::vector<std::string> actions(const db::Row& row) const override {
    if (row["state"] == "removed") return {};
    if (row["state"] == "running") return {"logs", "execute", "stats"};
    return {"logs", "stats"};
  }

  nlohmann::json act(db::Connection&, const RequestContext& ctx, const db::Row& row, const std::string& action,
                     const nlohmann::json& input) override {
    const std::string op = action == "execute" ? "exec" : action;
    auto params = stream_params(op, input);
    if (!params) throw ApiAbort(params.error());
    return issue_stream_token(ctx, row["hostId"].get<std::int64_t>(), op, row["dockerId"].get<std::string>(),
                              *params);
  }
};

class ImageType final : public ResourceType {
 public:
  ImageType() : ResourceType(definition()) {}

  static TypeDef definition() {
    TypeDef d;
    d.id = "image";
    d.collection = "images";
    d.table = "images";
    d.id_prefix = id_prefix::image;
    d.scope = Scope::project;
    d.fields = common_fields();
    for (auto& f : d.fields) {
      if (f.name == "name" || f.name == "description") f.create = f.update = false;
    }
    d.fields.push_back(field("projectId", FieldType::reference, "project").stored("projectId").filter());
    d.fields.push_back(field("hostId", FieldType::reference, "host").stored("hostId").filter().sort());
    d.fields.push_back(field("dockerId", FieldType::string).stored("dockerId").filter());
    d.fields.push_back(field("tags", FieldType::array, "string").null().stored("tags"));
    d.fields.push_back(field("size", FieldType::int_).null().stored("size").filter().sort());
    return d;
  }
};

}  // namespace

void retire_host(db::Connection& c, const RequestContext& ctx, const db::Row& host) {
  c.exec("INSERT OR REPLACE INTO removed_hosts (credentialKey, hostUuid, removed) VALUES (?, ?, ?)",
         {host["credentialKey"].get<std::string>(), host["uuid"].get<std::string>(), time_util::now_ms()});
  ctx.after_commit.push_back([server = ctx.server, id = host["id"].get<std::int64_t>()] {
    server->agents->close(id, {static_cast<websocket::close_code>(4410), "host removed"});
    server->streams->close_host(id, "the host was removed");
  });
}

std::unique_ptr<ResourceType> make_host_type() { return std::make_unique<HostType>(); }
std::unique_ptr<ResourceType> make_container_type() { return std::make_unique<ContainerType>(); }
std::unique_ptr<ResourceType> make_image_type() { return std::make_unique<ImageType>(); }

}  // namespace paddock::server
