#include "server/schema.hpp"

#include <gtest/gtest.h>

namespace paddock::server {
namespace {

TypeDef widget_type() {
  TypeDef t;
  t.id = "registrationToken";
  t.collection = "registrationTokens";
  t.table = "registration_tokens";
  t.id_prefix = "1t";
  t.creatable = t.updatable = t.deletable = true;
  t.fields = {
      field("id", FieldType::string).stored("id"),
      field("name", FieldType::string).null().creatable().updatable().length(1, 255).stored("name").filter().sort(),
      field("ttl", FieldType::int_).min_value(0).creatable().def(0).stored("ttl").filter().sort(),
      enum_field("state", {"registering", "active", "inactive", "expired", "removed"}).stored("state").filter(),
      field("token", FieldType::string).chars("a-zA-Z0-9").stored("token"),
      field("enabled", FieldType::boolean).stored("enabled").filter(),
      field("config", FieldType::json_).creatable().stored("config").filter(),
      field("secret", FieldType::password).creatable().stored("secret").filter(),
      field("created", FieldType::date).stored("created").filter().sort(),
      field("hostId", FieldType::reference, "host").null().stored("hostId").filter(),
      field("computed", FieldType::string).filter(),  // no column: not queryable
      field("command", FieldType::string).req().creatable(),
  };
  t.resource_actions = {{"deactivate", "", "registrationToken"},
                        {"rename", "renameInput", "registrationToken"}};
  t.collection_actions = {{"purge", "purgeInput", "registrationToken"}};
  return t;
}

TEST(Schema, FieldHelpers) {
  const FieldDef f = field("name", FieldType::string);
  EXPECT_EQ(f.name, "name");
  EXPECT_EQ(f.column, "");  // computed until .stored()
  EXPECT_EQ(field("x", FieldType::int_).stored("x").column, "x");
  EXPECT_FALSE(f.required || f.nullable || f.create || f.update || f.filterable || f.sortable);

  const FieldDef e = enum_field("state", {"a", "b"});
  EXPECT_EQ(e.type, FieldType::enum_);
  EXPECT_EQ(e.options, (std::vector<std::string>{"a", "b"}));
}

TEST(Schema, TypeNames) {
  EXPECT_EQ(field("a", FieldType::string).type_name(), "string");
  EXPECT_EQ(field("a", FieldType::int_).type_name(), "int");
  EXPECT_EQ(field("a", FieldType::float_).type_name(), "float");
  EXPECT_EQ(field("a", FieldType::boolean).type_name(), "boolean");
  EXPECT_EQ(field("a", FieldType::date).type_name(), "date");
  EXPECT_EQ(enum_field("a", {}).type_name(), "enum");
  EXPECT_EQ(field("a", FieldType::password).type_name(), "password");
  EXPECT_EQ(field("a", FieldType::json_).type_name(), "json");
  EXPECT_EQ(field("a", FieldType::reference, "project").type_name(), "reference[project]");
  EXPECT_EQ(field("a", FieldType::array, "string").type_name(), "array[string]");
  EXPECT_EQ(field("a", FieldType::map, "string").type_name(), "map[string]");
  EXPECT_EQ(field("a", FieldType::array).type_name(), "array[string]");
}

TEST(Schema, FindFieldAndAction) {
  const TypeDef t = widget_type();
  ASSERT_NE(t.find_field("name"), nullptr);
  EXPECT_EQ(t.find_field("name")->name, "name");
  EXPECT_EQ(t.find_field("nope"), nullptr);
  ASSERT_NE(t.find_action("rename"), nullptr);
  EXPECT_EQ(t.find_action("rename")->input, "renameInput");
  ASSERT_NE(t.find_action("purge"), nullptr);
  EXPECT_EQ(t.find_action("nope"), nullptr);
}

TEST(Schema, ModifiersByType) {
  const TypeDef t = widget_type();
  using V = std::vector<std::string>;
  EXPECT_EQ(modifiers_for(*t.find_field("name")),
            (V{"eq", "ne", "prefix", "like", "notlike", "null", "notnull"}));
  EXPECT_EQ(modifiers_for(*t.find_field("state")), (V{"eq", "ne", "prefix", "like", "notlike"}));
  EXPECT_EQ(modifiers_for(*t.find_field("hostId")),
            (V{"eq", "ne", "prefix", "like", "notlike", "null", "notnull"}));
  EXPECT_EQ(modifiers_for(*t.find_field("ttl")), (V{"eq", "ne", "lt", "lte", "gt", "gte"}));
  EXPECT_EQ(modifiers_for(*t.find_field("created")), (V{"eq", "ne", "lt", "lte", "gt", "gte"}));
  EXPECT_EQ(modifiers_for(field("f", FieldType::float_).null().stored("f").filter()),
            (V{"eq", "ne", "lt", "lte", "gt", "gte", "null", "notnull"}));
  EXPECT_EQ(modifiers_for(*t.find_field("enabled")), (V{"eq", "ne"}));
  EXPECT_EQ(modifiers_for(field("b", FieldType::boolean).null().stored("b").filter()), (V{"eq", "ne"}));
  // The id is always filterable, never NULL.
  EXPECT_EQ(modifiers_for(*t.find_field("id")), (V{"eq", "ne", "prefix", "like", "notlike"}));
  // Not filterable: not marked, JSON-ish storage, passwords, no column.
  EXPECT_TRUE(modifiers_for(*t.find_field("token")).empty());
  EXPECT_TRUE(modifiers_for(*t.find_field("config")).empty());
  EXPECT_TRUE(modifiers_for(*t.find_field("secret")).empty());
  EXPECT_TRUE(modifiers_for(*t.find_field("computed")).empty());
  EXPECT_TRUE(modifiers_for(field("a", FieldType::array).stored("a").filter()).empty());
  // The id needs no marks: it is the primary key.
  EXPECT_EQ(modifiers_for(field("id", FieldType::string)), (V{"eq", "ne", "prefix", "like", "notlike"}));

  EXPECT_TRUE(is_filterable_modifier(*t.find_field("name"), "null"));
  EXPECT_FALSE(is_filterable_modifier(*t.find_field("state"), "null"));
  EXPECT_FALSE(is_filterable_modifier(*t.find_field("ttl"), "prefix"));
  EXPECT_FALSE(is_filterable_modifier(*t.find_field("ttl"), "bogus"));
}

TEST(Schema, ResourceForAWriter) {
  const json s = schema_resource(widget_type(), "https://h/v1/schemas", "https://h/v1", true);
  EXPECT_EQ(s["id"], "registrationToken");
  EXPECT_EQ(s["type"], "schema");
  EXPECT_EQ(s["links"]["self"], "https://h/v1/schemas/registrationtoken");
  EXPECT_EQ(s["links"]["collection"], "https://h/v1/registrationTokens");
  EXPECT_EQ(s["collectionMethods"], json({"GET", "POST"}));
  EXPECT_EQ(s["resourceMethods"], json({"GET", "PUT", "DELETE"}));

  const json& fields = s["resourceFields"];
  EXPECT_EQ(fields["name"], json({{"type", "string"},
                                  {"nullable", true},
                                  {"create", true},
                                  {"update", true},
                                  {"minLength", 1},
                                  {"maxLength", 255}}));
  EXPECT_EQ(fields["ttl"], json({{"type", "int"}, {"min", 0}, {"create", true}, {"default", 0}}));
  EXPECT_EQ(fields["state"],
            json({{"type", "enum"},
                  {"options", {"registering", "active", "inactive", "expired", "removed"}}}));
  EXPECT_EQ(fields["token"], json({{"type", "string"}, {"validChars", "a-zA-Z0-9"}}));
  EXPECT_EQ(fields["hostId"], json({{"type", "reference[host]"}, {"nullable", true}}));
  EXPECT_EQ(fields["command"], json({{"type", "string"}, {"required", true}, {"create", true}}));

  EXPECT_EQ(s["resourceActions"],
            json({{"deactivate", {{"input", nullptr}, {"output", "registrationToken"}}},
                  {"rename", {{"input", "renameInput"}, {"output", "registrationToken"}}}}));
  EXPECT_EQ(s["collectionActions"],
            json({{"purge", {{"input", "purgeInput"}, {"output", "registrationToken"}}}}));

  const json& filters = s["collectionFilters"];
  EXPECT_EQ(filters["name"]["modifiers"],
            json({"eq", "ne", "prefix", "like", "notlike", "null", "notnull"}));
  EXPECT_TRUE(filters.contains("id"));
  EXPECT_TRUE(filters.contains("ttl"));
  EXPECT_FALSE(filters.contains("token"));
  EXPECT_FALSE(filters.contains("config"));
  EXPECT_FALSE(filters.contains("secret"));
  EXPECT_FALSE(filters.contains("computed"));
}

TEST(Schema, ResourceForAReaderShowsNoWrites) {
  const json s = schema_resource(widget_type(), "https://h/v1/schemas", "https://h/v1", false);
  EXPECT_EQ(s["collectionMethods"], json({"GET"}));
  EXPECT_EQ(s["resourceMethods"], json({"GET"}));
  EXPECT_FALSE(s["resourceFields"]["name"].contains("create"));
  EXPECT_FALSE(s["resourceFields"]["name"].contains("update"));
  EXPECT_EQ(s["resourceActions"], json::object());
  EXPECT_EQ(s["collectionActions"], json::object());
  EXPECT_FALSE(s["collectionFilters"].empty());
}

TEST(Schema, MethodsFollowTheTypeFlags) {
  TypeDef t = widget_type();
  t.creatable = false;
  t.deletable = false;
  const json s = schema_resource(t, "https://h/v1/schemas", "https://h/v1", true);
  EXPECT_EQ(s["collectionMethods"], json({"GET"}));
  EXPECT_EQ(s["resourceMethods"], json({"GET", "PUT"}));
}

TEST(Schema, InputTypeHasNoCollection) {
  TypeDef t;
  t.id = "renameInput";
  t.fields = {field("name", FieldType::string).req().creatable()};
  const json s = schema_resource(t, "https://h/v1/projects/1a5/schemas", "https://h/v1/projects/1a5", true);
  EXPECT_EQ(s["links"], json({{"self", "https://h/v1/projects/1a5/schemas/renameinput"}}));
  EXPECT_EQ(s["collectionMethods"], json::array());
  EXPECT_EQ(s["resourceMethods"], json::array());
  EXPECT_EQ(s["collectionFilters"], json::object());
  EXPECT_EQ(s["resourceFields"]["name"],
            json({{"type", "string"}, {"required", true}, {"create", true}}));
}

}  // namespace
}  // namespace paddock::server
