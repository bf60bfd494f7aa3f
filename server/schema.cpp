#include "server/schema.hpp"

#include <algorithm>
#include <cctype>

namespace paddock::server {

namespace {

// The `id` field is the primary key: filterable and keyed by rowid whatever
// its FieldDef says.
bool is_id_field(const FieldDef& f) { return f.name == "id" && f.type == FieldType::string; }

bool has_filterable_storage(const FieldDef& f) {
  if (is_id_field(f)) return true;
  if (!f.filterable || f.column.empty()) return false;
  switch (f.type) {
    case FieldType::string:
    case FieldType::int_:
    case FieldType::float_:
    case FieldType::boolean:
    case FieldType::date:
    case FieldType::enum_:
    case FieldType::reference:
      return true;
    case FieldType::password:  // never queryable: a filter would be an oracle
    case FieldType::json_:
    case FieldType::array:
    case FieldType::map:
      return false;
  }
  return false;
}

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

json field_schema(const FieldDef& f, bool can_write) {
  json out = json::object();
  out["type"] = f.type_name();
  if (f.required) out["required"] = true;
  if (f.nullable) out["nullable"] = true;
  if (can_write && f.create) out["create"] = true;
  if (can_write && f.update) out["update"] = true;
  if (f.default_value) out["default"] = *f.default_value;
  if (f.min) out["min"] = *f.min;
  if (f.max) out["max"] = *f.max;
  if (f.min_length) out["minLength"] = *f.min_length;
  if (f.max_length) out["maxLength"] = *f.max_length;
  if (f.type == FieldType::enum_) out["options"] = f.options;
  if (!f.valid_chars.empty()) out["validChars"] = f.valid_chars;
  return out;
}

json actions_schema(const std::vector<ActionDef>& actions) {
  json out = json::object();
  for (const ActionDef& a : actions) {
    out[a.name] = {{"input", a.input.empty() ? json(nullptr) : json(a.input)},
                   {"output", a.output.empty() ? json(nullptr) : json(a.output)}};
  }
  return out;
}

}  // namespace

std::string FieldDef::type_name() const {
  switch (type) {
    case FieldType::string: return "string";
    case FieldType::int_: return "int";
    case FieldType::float_: return "float";
    case FieldType::boolean: return "boolean";
    case FieldType::date: return "date";
    case FieldType::enum_: return "enum";
    case FieldType::password: return "password";
    case FieldType::json_: return "json";
    case FieldType::reference:
      return type_param.empty() ? std::string("reference") : "reference[" + type_param + "]";
    case FieldType::array:
      return "array[" + (type_param.empty() ? std::string("string") : type_param) + "]";
    case FieldType::map:
      return "map[" + (type_param.empty() ? std::string("string") : type_param) + "]";
  }
  return "string";
}

FieldDef field(std::string name, FieldType type, std::string type_param) {
  // No column until .stored(): a field is computed unless it says otherwise.
  FieldDef f;
  f.name = std::move(name);
  f.type = type;
  f.type_param = std::move(type_param);
  return f;
}

FieldDef enum_field(std::string name, std::vector<std::string> options) {
  FieldDef f = field(std::move(name), FieldType::enum_);
  f.options = std::move(options);
  return f;
}

const FieldDef* TypeDef::find_field(std::string_view name) const {
  for (const FieldDef& f : fields) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

const ActionDef* TypeDef::find_action(std::string_view name) const {
  for (const ActionDef& a : resource_actions) {
    if (a.name == name) return &a;
  }
  for (const ActionDef& a : collection_actions) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

std::vector<std::string> modifiers_for(const FieldDef& f) {
  if (!has_filterable_storage(f)) return {};
  std::vector<std::string> mods;
  switch (f.type) {
    case FieldType::string:
    case FieldType::enum_:
    case FieldType::reference:
      mods = {"eq", "ne", "prefix", "like", "notlike"};
      break;
    case FieldType::int_:
    case FieldType::float_:
    case FieldType::date:
      mods = {"eq", "ne", "lt", "lte", "gt", "gte"};
      break;
    case FieldType::boolean:
      return {"eq", "ne"};
    default:
      return {};
  }
  // The primary key is never NULL.
  if (f.nullable && !is_id_field(f)) {
    mods.emplace_back("null");
    mods.emplace_back("notnull");
  }
  return mods;
}

bool is_filterable_modifier(const FieldDef& f, std::string_view modifier) {
  const std::vector<std::string> mods = modifiers_for(f);
  return std::find(mods.begin(), mods.end(), modifier) != mods.end();
}

json schema_resource(const TypeDef& type, const std::string& schemas_base_url,
                     const std::string& collections_base_url, bool can_write) {
  json links = {{"self", schemas_base_url + "/" + lowercase(type.id)}};
  if (!type.collection.empty()) links["collection"] = collections_base_url + "/" + type.collection;

  // Input and embedded types have no URL of their own, so no methods.
  json collection_methods = json::array();
  if (!type.collection.empty()) {
    collection_methods.push_back("GET");
    if (can_write && type.creatable) collection_methods.push_back("POST");
  }
  json resource_methods = json::array();
  if (!type.collection.empty() || !type.table.empty()) {
    resource_methods.push_back("GET");
    if (can_write && type.updatable) resource_methods.push_back("PUT");
    if (can_write && type.deletable) resource_methods.push_back("DELETE");
  }

  json fields = json::object();
  json filters = json::object();
  for (const FieldDef& f : type.fields) {
    fields[f.name] = field_schema(f, can_write);
    if (std::vector<std::string> mods = modifiers_for(f); !mods.empty()) {
      filters[f.name] = {{"modifiers", std::move(mods)}};
    }
  }

  json out = {
      {"id", type.id},
      {"type", "schema"},
      {"links", std::move(links)},
      {"collectionMethods", std::move(collection_methods)},
      {"resourceMethods", std::move(resource_methods)},
      {"resourceFields", std::move(fields)},
      // Actions are POSTs: a caller that may not write sees none.
      {"resourceActions", can_write ? actions_schema(type.resource_actions) : json::object()},
      {"collectionActions", can_write ? actions_schema(type.collection_actions) : json::object()},
      {"collectionFilters", std::move(filters)},
  };
  if (!type.collection.empty()) out["pluralName"] = type.collection;
  return out;
}

}  // namespace paddock::server
