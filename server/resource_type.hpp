#pragma once
// A resource type of the REST API: its TypeDef plus the behaviour the generic
// engine (api.cpp) cannot derive: who sees which rows, what create/update/
// delete do beyond storing fields, which actions apply in which state.

#include "server/api_error.hpp"
#include "server/auth.hpp"
#include "server/database.hpp"
#include "server/schema.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace paddock::server {

class ServerContext;  // services the types may use (store, config, keys, events)

// Everything about one API request the types need.
struct RequestContext {
  const Caller* caller = nullptr;
  std::string base_url;                   // "https://host:port", no trailing slash
  std::optional<std::int64_t> project_id;  // project scope of the request, if any
  bool project_path = false;               // the request came in under /v1/projects/<id>/
  ServerContext* server = nullptr;
  // What a change does outside the store (ending connections and streams,
  // announcing rows that went with it), once its transaction has committed:
  // a change rolled back leaves no trace. Filled by the types' create,
  // update, remove and act; run by the engine.
  mutable std::vector<std::function<void()>> after_commit;

  std::string api_url() const { return base_url + "/v1"; }
  // "/v1" or "/v1/projects/<id>" as an absolute URL: where collections live.
  std::string scope_url() const;
};

// A condition on a table's rows, with its parameters.
struct Condition {
  std::string sql = "1=1";
  std::vector<db::Value> params;
};

class ResourceType {
 public:
  explicit ResourceType(TypeDef def) : def_(std::move(def)) {}
  virtual ~ResourceType() = default;

  const TypeDef& def() const { return def_; }

  // Rows the caller may see in this request's scope.
  virtual Condition visible(const RequestContext& ctx) const;
  // The project a row belongs to, for project-scoped types (events, roles).
  virtual std::optional<std::int64_t> project_of(const db::Row& row) const;
  // Permission to create / change / remove / act, given the caller's role.
  virtual bool can_create(const RequestContext& ctx) const;
  virtual bool can_write(const RequestContext& ctx, const db::Row& row) const;

  // Inserts a validated create input; returns the new row. Runs inside the
  // write transaction. The default stores every stored field of the input.
  virtual db::Row create(db::Connection& c, const RequestContext& ctx, const nlohmann::json& input);
  // Applies a validated update input. The default stores the fields.
  virtual db::Row update(db::Connection& c, const RequestContext& ctx, const db::Row& row,
                         const nlohmann::json& input);
  // Removes the row; returns the row as last seen (state "removed").
  virtual db::Row remove(db::Connection& c, const RequestContext& ctx, const db::Row& row);

  // Actions valid for this row in its state, before permission checks.
  virtual std::vector<std::string> actions(const db::Row& row) const;
  // Runs an action inside a write transaction. Returns the output resource
  // (for output type == this type, the changed row is rendered by the engine:
  // return {"row": row}).
  virtual nlohmann::json act(db::Connection& c, const RequestContext& ctx, const db::Row& row,
                             const std::string& action, const nlohmann::json& input);

  // Adds to the answer of a create what only that answer shows (secrets).
  virtual void after_create(nlohmann::json& resource, const db::Row& row, const nlohmann::json& input) const;

  // Related collections under this type's resources: link name → the child
  // type and the child's column holding this row's id.
  struct Child {
    std::string type;
    std::string column;
  };
  const std::map<std::string, Child>& children() const { return children_; }

  // Adds type-specific links and computed fields to a rendered resource.
  virtual void decorate(nlohmann::json& resource, const db::Row& row, const RequestContext& ctx) const;

  // Self URL of a row.
  std::string self_url(const db::Row& row, const RequestContext& ctx) const;
  std::string id_of(const db::Row& row) const;
  std::optional<std::int64_t> parse_id(std::string_view id) const;

 protected:
  // Inserts the stored fields of `values` plus the common columns.
  db::Row insert(db::Connection& c, nlohmann::json values);
  db::Row reload(db::Connection& c, std::int64_t id);

  TypeDef def_;
  std::map<std::string, Child> children_;
};

// The common leading fields every resource has (id, type, name, …).
std::vector<FieldDef> common_fields();

}  // namespace paddock::server
