#pragma once
// Type definitions that drive the whole REST API: validation of input, SQL
// columns, filters, sorting, and the `schema` resources generic clients load.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace paddock::server {

using nlohmann::json;

enum class FieldType { string, int_, float_, boolean, date, enum_, password, json_, reference, array, map };

struct FieldDef {
  std::string name;
  FieldType type = FieldType::string;
  std::string type_param;  // reference[<type>], array[<type>], map[<type>]
  bool required = false;
  bool nullable = false;
  bool create = false;
  bool update = false;
  std::optional<json> default_value;
  std::optional<std::int64_t> min, max, min_length, max_length;
  std::vector<std::string> options;  // enum values
  std::string valid_chars;           // regex character class body, e.g. "a-zA-Z0-9_.-"
  // Storage: the SQLite column holding the field; empty for fields the
  // resource type computes (links-like values, write-only inputs).
  std::string column;
  bool filterable = false;
  bool sortable = false;

  // Fluent setters keep the type tables in resource_types.cpp readable.
  FieldDef& req() { required = true; return *this; }
  FieldDef& null() { nullable = true; return *this; }
  FieldDef& creatable() { create = true; return *this; }
  FieldDef& updatable() { update = true; return *this; }
  FieldDef& def(json v) { default_value = std::move(v); return *this; }
  FieldDef& range(std::int64_t lo, std::int64_t hi) { min = lo; max = hi; return *this; }
  FieldDef& min_value(std::int64_t lo) { min = lo; return *this; }
  FieldDef& length(std::int64_t lo, std::int64_t hi) { min_length = lo; max_length = hi; return *this; }
  FieldDef& chars(std::string c) { valid_chars = std::move(c); return *this; }
  FieldDef& stored(std::string col) { column = std::move(col); return *this; }
  FieldDef& filter() { filterable = true; return *this; }
  FieldDef& sort() { sortable = true; return *this; }

  std::string type_name() const;  // "string", "reference[project]", …
};

FieldDef field(std::string name, FieldType type, std::string type_param = {});
FieldDef enum_field(std::string name, std::vector<std::string> options);

struct ActionDef {
  std::string name;
  std::string input;   // schema id of the input type, empty for none
  std::string output;  // schema id of the output type
};

// Where a type's resources live: global (accounts, projects, account API keys)
// or inside one project (tokens, hosts, …).
enum class Scope { global, project };

struct TypeDef {
  std::string id;          // "registrationToken"
  std::string collection;  // "registrationTokens"; empty for embedded/input types
  std::string table;       // SQLite table; empty for input-only types
  std::string id_prefix;   // "1t": ids are prefix + row id
  Scope scope = Scope::project;
  std::vector<FieldDef> fields;
  std::vector<ActionDef> resource_actions;
  std::vector<ActionDef> collection_actions;
  bool creatable = false, updatable = false, deletable = false;

  const FieldDef* find_field(std::string_view name) const;
  const ActionDef* find_action(std::string_view name) const;
};

// The schema resource a caller sees for `type`. `can_write` is false for
// callers that may only read (they see no POST/PUT/DELETE).
json schema_resource(const TypeDef& type, const std::string& schemas_base_url,
                     const std::string& collections_base_url, bool can_write);

// Field attributes used by both schema output and input validation.
bool is_filterable_modifier(const FieldDef& f, std::string_view modifier);
std::vector<std::string> modifiers_for(const FieldDef& f);

}  // namespace paddock::server
