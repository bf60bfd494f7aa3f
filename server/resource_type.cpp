#include "server/resource_type.hpp"

#include "common/crypto.hpp"
#include "common/time_util.hpp"

#include <charconv>

namespace paddock::server {

using nlohmann::json;

std::string RequestContext::scope_url() const {
  if (project_path && project_id) return api_url() + "/projects/1p" + std::to_string(*project_id);
  return api_url();
}

std::vector<FieldDef> common_fields() {
  return {
      field("id", FieldType::string).stored("id").filter().sort(),
      field("type", FieldType::string),
      field("name", FieldType::string).null().creatable().updatable().length(0, 255).stored("name").filter().sort(),
      field("description", FieldType::string).null().creatable().updatable().length(0, 1024).stored("description").filter(),
      field("uuid", FieldType::string).stored("uuid").filter(),
      enum_field("state", {"active", "removed"}).stored("state").filter().sort(),
      enum_field("transitioning", {"yes", "no", "error"}).stored("transitioning").filter(),
      field("transitioningMessage", FieldType::string).null().stored("transitioningMessage"),
      field("created", FieldType::date).stored("created").filter().sort(),
  };
}

std::string ResourceType::id_of(const db::Row& row) const {
  return def_.id_prefix + std::to_string(row.at("id").get<std::int64_t>());
}

std::optional<std::int64_t> ResourceType::parse_id(std::string_view id) const {
  if (id.size() <= def_.id_prefix.size() || id.substr(0, def_.id_prefix.size()) != def_.id_prefix) {
    return std::nullopt;
  }
  id.remove_prefix(def_.id_prefix.size());
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), value);
  if (ec != std::errc() || end != id.data() + id.size() || value <= 0 || id.front() == '0') return std::nullopt;
  return value;
}

std::string ResourceType::self_url(const db::Row& row, const RequestContext& ctx) const {
  std::string base = ctx.api_url();
  if (def_.scope == Scope::project) {
    if (auto p = project_of(row)) base += "/projects/1p" + std::to_string(*p);
  }
  return base + "/" + def_.collection + "/" + id_of(row);
}

Condition ResourceType::visible(const RequestContext& ctx) const {
  const Caller& caller = *ctx.caller;
  if (def_.scope == Scope::project) {
    if (ctx.project_id) return {"\"projectId\" = ?", {*ctx.project_id}};
    if (caller.admin) return {};
    if (caller.key_project_id) return {"\"projectId\" = ?", {*caller.key_project_id}};
    return {"\"projectId\" IN (SELECT projectId FROM project_members WHERE accountId = ? AND role IN "
            "('owner','member','readonly'))",
            {*caller.account_id}};
  }
  return {};
}

std::optional<std::int64_t> ResourceType::project_of(const db::Row& row) const {
  if (def_.scope != Scope::project) return std::nullopt;
  auto it = row.find("projectId");
  if (it == row.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<std::int64_t>();
}

bool ResourceType::can_create(const RequestContext& ctx) const {
  if (def_.scope == Scope::project) return ctx.project_id && ctx.caller->role_in(*ctx.project_id) >= Role::member;
  return ctx.caller->admin;
}

bool ResourceType::can_write(const RequestContext& ctx, const db::Row& row) const {
  if (def_.scope == Scope::project) {
    auto p = project_of(row);
    return p && ctx.caller->role_in(*p) >= Role::member;
  }
  return ctx.caller->admin;
}

db::Row ResourceType::reload(db::Connection& c, std::int64_t id) {
  return c.query_one("SELECT * FROM \"" + def_.table + "\" WHERE id = ?", {id});
}

namespace {

db::Value to_value(const FieldDef& f, const json& v) {
  if (v.is_null()) return nullptr;
  switch (f.type) {
    case FieldType::int_:
    case FieldType::date:
      if (v.is_string()) {
        if (auto ms = time_util::parse_rfc3339(v.get<std::string>())) return *ms;
        return nullptr;
      }
      return v.get<std::int64_t>();
    case FieldType::boolean: return static_cast<std::int64_t>(v.get<bool>() ? 1 : 0);
    case FieldType::float_: return v.get<double>();
    case FieldType::json_:
    case FieldType::array:
    case FieldType::map: return v.dump();
    default: return v.is_string() ? v.get<std::string>() : v.dump();
  }
}

}  // namespace

db::Row ResourceType::insert(db::Connection& c, json values) {
  if (!values.contains("uuid")) values["uuid"] = crypto::hex_encode(crypto::random_bytes(16));
  if (!values.contains("created")) values["created"] = time_util::now_ms();
  if (!values.contains("state")) values["state"] = "active";
  if (!values.contains("transitioning")) values["transitioning"] = "no";
  std::string columns, marks;
  std::vector<db::Value> params;
  for (auto& [key, value] : values.items()) {
    const FieldDef* f = def_.find_field(key);
    FieldDef plain;
    if (!f) {  // a column the type keeps to itself (hashes, sealed values)
      plain.type = value.is_number_integer() ? FieldType::int_ : FieldType::string;
      f = &plain;
    } else if (f->column.empty()) {
      continue;
    }
    if (!columns.empty()) {
      columns += ", ";
      marks += ", ";
    }
    columns += "\"" + (f->column.empty() ? key : f->column) + "\"";
    marks += "?";
    params.push_back(to_value(*f, value));
  }
  c.exec("INSERT INTO \"" + def_.table + "\" (" + columns + ") VALUES (" + marks + ")", params);
  return reload(c, c.last_insert_id());
}

db::Row ResourceType::create(db::Connection& c, const RequestContext& ctx, const json& input) {
  json values = input;
  if (def_.scope == Scope::project) values["projectId"] = *ctx.project_id;
  return insert(c, std::move(values));
}

db::Row ResourceType::update(db::Connection& c, const RequestContext&, const db::Row& row, const json& input) {
  std::string sets;
  std::vector<db::Value> params;
  for (auto& [key, value] : input.items()) {
    const FieldDef* f = def_.find_field(key);
    if (!f || f->column.empty() || !f->update) continue;
    if (!sets.empty()) sets += ", ";
    sets += "\"" + f->column + "\" = ?";
    params.push_back(to_value(*f, value));
  }
  const auto id = row.at("id").get<std::int64_t>();
  if (!sets.empty()) {
    params.emplace_back(id);
    c.exec("UPDATE \"" + def_.table + "\" SET " + sets + " WHERE id = ?", params);
  }
  return reload(c, id);
}

db::Row ResourceType::remove(db::Connection& c, const RequestContext&, const db::Row& row) {
  c.exec("DELETE FROM \"" + def_.table + "\" WHERE id = ?", {row.at("id").get<std::int64_t>()});
  db::Row gone = row;
  gone["state"] = "removed";
  gone["transitioning"] = "no";
  return gone;
}

std::vector<std::string> ResourceType::actions(const db::Row&) const { return {}; }

json ResourceType::act(db::Connection&, const RequestContext&, const db::Row&, const std::string&, const json&) {
  throw db::Abort(fail(Errc::invalid_input, "unknown action"));
}

void ResourceType::after_create(json&, const db::Row&, const json&) const {}

void ResourceType::decorate(json&, const db::Row&, const RequestContext&) const {}

}  // namespace paddock::server
