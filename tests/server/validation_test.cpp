#include "server/validation.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <string>

namespace paddock::server {
namespace {

TypeDef gadget_type() {
  TypeDef t;
  t.id = "gadget";
  t.collection = "gadgets";
  t.table = "gadgets";
  t.id_prefix = "1g";
  t.creatable = t.updatable = true;
  t.fields = {
      field("id", FieldType::string),
      field("name", FieldType::string).req().creatable().updatable().length(2, 5),
      field("slug", FieldType::string).null().creatable().chars("a-z0-9_.-"),
      field("count", FieldType::int_).creatable().updatable().range(1, 10).def(3),
      field("ratio", FieldType::float_).creatable().range(0, 1),
      field("enabled", FieldType::boolean).creatable().updatable().def(true),
      field("due", FieldType::date).null().creatable(),
      enum_field("color", {"red", "green"}).creatable(),
      field("secret", FieldType::password).creatable(),
      field("config", FieldType::json_).creatable().null(),
      field("hostId", FieldType::reference, "host").creatable(),
      field("tags", FieldType::array, "string").creatable().length(0, 3),
      field("labels", FieldType::map, "string").creatable(),
      field("ports", FieldType::array, "int").creatable(),
      enum_field("state", {"active", "removed"}),  // output only
  };
  return t;
}

json valid_create() { return {{"name", "abc"}}; }

ApiError create_error(json body) {
  auto r = validate_input(gadget_type(), body, InputMode::create);
  EXPECT_FALSE(r.ok()) << r->dump();
  return r.ok() ? ApiError{} : r.error();
}

void expect_error(const json& body, int status, const std::string& code, const std::string& field) {
  const ApiError e = create_error(body);
  EXPECT_EQ(e.status, status) << body.dump();
  EXPECT_EQ(e.code, code) << body.dump();
  EXPECT_EQ(e.field_name, field) << body.dump();
}

json with(std::string key, json value) {
  json b = valid_create();
  b[std::move(key)] = std::move(value);
  return b;
}

// ---------------------------------------------------------------- bodies --

TEST(ParseJsonBody, EmptyOrWhitespaceIsAnEmptyObject) {
  for (const char* body : {"", " ", "\r\n\t "}) {
    auto r = parse_json_body(body);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, json::object());
  }
}

TEST(ParseJsonBody, ParsesValidJson) {
  auto r = parse_json_body(R"({"a": [1, "é", {"b": null}]})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)["a"][1], "é");
  auto bom = parse_json_body("\xEF\xBB\xBF{}");
  ASSERT_TRUE(bom.ok());
  EXPECT_EQ(*bom, json::object());
}

TEST(ParseJsonBody, MalformedIs400WithoutEchoingTheBody) {
  for (const char* body : {"{", "{\"secretvalue\": }", "nul", "[1,]", "{} {}", "1e999"}) {
    auto r = parse_json_body(body);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.error().status, 400);
    EXPECT_EQ(r.error().code, "InvalidBodyContent");
    EXPECT_EQ(r.error().message.find("secretvalue"), std::string::npos);
    EXPECT_LT(r.error().message.size(), 80u);
  }
}

TEST(ParseJsonBody, InvalidUtf8Is400) {
  for (const std::string& body : {std::string("{\"a\": \"\xff\"}"), std::string("{\"a\": \"\xC0\xAF\"}"),
                                 std::string("{\"a\": \"\xED\xA0\x80\"}"), std::string("\"\xE2\x82\"")}) {
    auto r = parse_json_body(body);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().status, 400);
  }
  // Escaped lone surrogates are not text either.
  auto r = parse_json_body(R"({"a": "\udc00"})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().status, 400);
}

TEST(ParseJsonBody, DeepNestingIsRejectedBeforeParsing) {
  const auto nested = [](std::size_t depth) {
    return std::string(depth, '[') + std::string(depth, ']');
  };
  EXPECT_TRUE(parse_json_body(nested(kMaxJsonDepth)).ok());
  auto r = parse_json_body(nested(kMaxJsonDepth + 1));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().status, 400);
  EXPECT_EQ(r.error().code, "InvalidBodyContent");
  // Far deeper than any stack would survive if it were walked recursively.
  EXPECT_FALSE(parse_json_body(std::string(1'000'000, '[')).ok());
  EXPECT_FALSE(parse_json_body("{\"a\":" + std::string(100, '{')).ok());
  // Brackets inside strings do not count.
  EXPECT_TRUE(parse_json_body("{\"a\": \"" + std::string(200, '[') + "\"}").ok());
}

TEST(ParseJsonBody, NeverThrowsOnRandomBytes) {
  std::mt19937 rng(7);
  const std::string alphabet = "{}[]\",:0123456789.eE-+tfnrul \\\x01\xff\xc3\xa9" "ab";
  for (int i = 0; i < 5000; ++i) {
    std::string body;
    const int n = static_cast<int>(rng() % 40);
    for (int k = 0; k < n; ++k) body += alphabet[rng() % alphabet.size()];
    EXPECT_NO_THROW({
      auto r = parse_json_body(body);
      if (r.ok() && r->is_object()) (void)validate_input(gadget_type(), *r, InputMode::create);
    });
  }
}

TEST(ParseDate, Rfc3339AndEpochMillis) {
  EXPECT_EQ(parse_date("2026-11-22T07:00:00Z"), 1795330800000);
  EXPECT_EQ(parse_date("2026-11-22T08:00:00.250+01:00"), 1795330800250);
  EXPECT_EQ(parse_date("1795330800000"), 1795330800000);
  EXPECT_EQ(parse_date("-1000"), -1000);
  EXPECT_FALSE(parse_date(""));
  EXPECT_FALSE(parse_date("-"));
  EXPECT_FALSE(parse_date("yesterday"));
  EXPECT_FALSE(parse_date("2026-11-22"));
  EXPECT_FALSE(parse_date("99999999999999999999999"));
}

TEST(CleanText, ControlCharactersAndInvalidUtf8) {
  EXPECT_TRUE(is_clean_text("plain\ttext\r\n é ✓ 😀"));
  EXPECT_FALSE(is_clean_text(std::string("a\0b", 3)));
  EXPECT_FALSE(is_clean_text("a\x01"));
  EXPECT_FALSE(is_clean_text("a\x1b[31m"));
  EXPECT_FALSE(is_clean_text("a\x7f"));
  EXPECT_FALSE(is_clean_text("a\xC2\x85"));  // U+0085, a C1 control
  EXPECT_FALSE(is_clean_text("a\xff"));
  EXPECT_FALSE(is_clean_text("\xE2\x82"));
}

// ---------------------------------------------------------------- create --

TEST(ValidateInput, BodyMustBeAnObject) {
  for (const json& body : {json::array(), json(1), json("x"), json(nullptr)}) {
    auto r = validate_input(gadget_type(), body, InputMode::create);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().status, 400);
    EXPECT_EQ(r.error().code, "InvalidBodyContent");
  }
}

TEST(ValidateInput, CreateAppliesDefaultsAndDropsWhatIsNotCreatable) {
  auto r = validate_input(gadget_type(),
                          {{"name", "abc"}, {"state", "active"}, {"id", "1g9"}, {"bogus", 1}},
                          InputMode::create);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, json({{"name", "abc"}, {"count", 3}, {"enabled", true}}));
}

TEST(ValidateInput, DefaultsAreNormalizedLikeInput) {
  TypeDef t;
  t.id = "d";
  t.fields = {field("at", FieldType::date).creatable().def("2026-11-22T07:00:00Z"),
              field("none", FieldType::string).null().creatable().def(nullptr),
              field("broken", FieldType::int_).creatable().def("x")};
  auto r = validate_input(t, {{"broken", 1}}, InputMode::create);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, json({{"at", 1795330800000}, {"none", nullptr}, {"broken", 1}}));
  // A default that does not fit its own field is a server bug: 500.
  auto bad = validate_input(t, json::object(), InputMode::create);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().status, 500);
}

TEST(ValidateInput, NormalizesValues) {
  json body = valid_create();
  body["count"] = 2.0;
  body["ratio"] = 1;
  body["due"] = "2026-11-22T07:00:00Z";
  body["slug"] = nullptr;
  body["config"] = {{"deep", {1, "two", nullptr}}};
  body["tags"] = {"a", "b"};
  body["labels"] = {{"k", "v"}};
  body["ports"] = {80, 443};
  body["secret"] = "hunter2";
  body["hostId"] = "1h3";
  body["color"] = "green";
  auto r = validate_input(gadget_type(), body, InputMode::create);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE((*r)["count"].is_number_integer());
  EXPECT_EQ((*r)["count"], 2);
  EXPECT_TRUE((*r)["ratio"].is_number_float());
  EXPECT_EQ((*r)["due"], 1795330800000);
  EXPECT_TRUE((*r)["slug"].is_null());
  EXPECT_EQ((*r)["config"], body["config"]);
  EXPECT_EQ((*r)["tags"], body["tags"]);
  EXPECT_EQ((*r)["labels"], body["labels"]);
  EXPECT_EQ((*r)["ports"], body["ports"]);
  EXPECT_EQ((*r)["color"], "green");

  auto millis = validate_input(gadget_type(), with("due", 1795330800000), InputMode::create);
  ASSERT_TRUE(millis.ok());
  EXPECT_EQ((*millis)["due"], 1795330800000);
}

TEST(ValidateInput, MissingRequired) {
  expect_error(json::object(), 422, "MissingRequired", "name");
  expect_error({{"name", nullptr}}, 422, "MissingRequired", "name");
}

TEST(ValidateInput, InvalidType) {
  expect_error({{"name", 5}}, 422, "InvalidType", "name");
  expect_error(with("count", "5"), 422, "InvalidType", "count");
  expect_error(with("count", 1.5), 422, "InvalidType", "count");
  expect_error(with("count", true), 422, "InvalidType", "count");
  expect_error(with("count", json::parse("18446744073709551615")), 422, "InvalidType", "count");
  expect_error(with("count", nullptr), 422, "InvalidType", "count");  // not nullable
  expect_error(with("ratio", "0.5"), 422, "InvalidType", "ratio");
  expect_error(with("ratio", std::numeric_limits<double>::infinity()), 422, "InvalidType", "ratio");
  expect_error(with("enabled", "true"), 422, "InvalidType", "enabled");
  expect_error(with("enabled", 1), 422, "InvalidType", "enabled");
  expect_error(with("due", "tomorrow"), 422, "InvalidType", "due");
  expect_error(with("due", 1.5), 422, "InvalidType", "due");
  expect_error(with("color", 1), 422, "InvalidType", "color");
  expect_error(with("secret", 1234), 422, "InvalidType", "secret");
  expect_error(with("hostId", 3), 422, "InvalidType", "hostId");
  expect_error(with("tags", "a"), 422, "InvalidType", "tags");
  expect_error(with("tags", {"a", 1}), 422, "InvalidType", "tags");
  expect_error(with("tags", {"a", nullptr}), 422, "InvalidType", "tags");
  expect_error(with("labels", {"a"}), 422, "InvalidType", "labels");
  expect_error(with("labels", {{"k", 1}}), 422, "InvalidType", "labels");
  expect_error(with("ports", {80, "443"}), 422, "InvalidType", "ports");
}

TEST(ValidateInput, Limits) {
  expect_error(with("count", 0), 422, "MinLimitExceeded", "count");
  expect_error(with("count", 11), 422, "MaxLimitExceeded", "count");
  expect_error(with("ratio", -0.1), 422, "MinLimitExceeded", "ratio");
  expect_error(with("ratio", 1.01), 422, "MaxLimitExceeded", "ratio");
  expect_error({{"name", "a"}}, 422, "MinLimitExceeded", "name");
  expect_error({{"name", "abcdef"}}, 422, "MaxLimitExceeded", "name");
  expect_error(with("tags", {"a", "b", "c", "d"}), 422, "MaxLimitExceeded", "tags");
  // Lengths count code points, not bytes.
  EXPECT_TRUE(validate_input(gadget_type(), {{"name", "ééééé"}}, InputMode::create).ok());
  EXPECT_TRUE(validate_input(gadget_type(), {{"name", "😀😀"}}, InputMode::create).ok());
  expect_error({{"name", "😀😀😀😀😀😀"}}, 422, "MaxLimitExceeded", "name");
  EXPECT_TRUE(validate_input(gadget_type(), with("count", 10), InputMode::create).ok());
  EXPECT_TRUE(validate_input(gadget_type(), with("count", 1), InputMode::create).ok());
}

TEST(ValidateInput, InvalidOption) {
  expect_error(with("color", "blue"), 422, "InvalidOption", "color");
  expect_error(with("color", "Red"), 422, "InvalidOption", "color");
}

TEST(ValidateInput, ValidChars) {
  EXPECT_TRUE(validate_input(gadget_type(), with("slug", "a-b_c.9"), InputMode::create).ok());
  expect_error(with("slug", "A"), 422, "InvalidCharacters", "slug");
  expect_error(with("slug", "a b"), 422, "InvalidCharacters", "slug");
  expect_error(with("slug", "é"), 422, "InvalidCharacters", "slug");
}

TEST(ValidateInput, ControlCharactersAnywhereAreRejected) {
  const std::string nul("a\0b", 3);
  expect_error({{"name", nul}}, 422, "InvalidCharacters", "name");
  expect_error(with("name", "ab\x01"), 422, "InvalidCharacters", "name");
  expect_error(with("config", {{"x", {1, {{"y", nul}}}}}), 422, "InvalidCharacters", "config");
  expect_error(with("config", {{nul, 1}}), 422, "InvalidCharacters", "config");
  expect_error(with("tags", {nul}), 422, "InvalidCharacters", "tags");
  expect_error(with("labels", {{"k", "v\x7f"}}), 422, "InvalidCharacters", "labels");
  // Even in a field that would be dropped.
  expect_error(with("bogus", {nul}), 422, "InvalidCharacters", "bogus");
  // A bad key at the top is reported without echoing it.
  expect_error(with(nul, 1), 422, "InvalidCharacters", "");
  // Strings built in code (not by the parser) may be invalid UTF-8.
  expect_error(with("name", "ab\xff"), 422, "InvalidCharacters", "name");
  // Tabs and newlines are text.
  EXPECT_TRUE(validate_input(gadget_type(), with("config", "a\tb\r\nc"), InputMode::create).ok());
}

TEST(ValidateInput, DeepNestingBuiltInCodeIsRejected) {
  json deep = json::array();
  for (int i = 0; i < 200; ++i) deep = json::array({std::move(deep)});
  auto r = validate_input(gadget_type(), with("config", std::move(deep)), InputMode::create);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().status, 400);
}

TEST(ValidateInput, ErrorsSurviveSerialization) {
  const ApiError e = create_error(with("name", std::string("a\0b", 3)));
  EXPECT_NO_THROW((void)e.to_json().dump());
  const ApiError k = create_error(with(std::string("\xff\x01"), 1));
  EXPECT_NO_THROW((void)k.to_json().dump());
}

// ------------------------------------------------------- update, action --

TEST(ValidateInput, UpdateTakesOnlyUpdatableFieldsWithoutDefaults) {
  auto r = validate_input(gadget_type(), {{"count", 5}, {"color", "red"}, {"slug", "x"}},
                          InputMode::update);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, json({{"count", 5}}));
  auto empty = validate_input(gadget_type(), json::object(), InputMode::update);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, json::object());

  auto bad = validate_input(gadget_type(), {{"count", 50}}, InputMode::update);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, "MaxLimitExceeded");
  EXPECT_EQ(bad.error().field_name, "count");
  auto null_name = validate_input(gadget_type(), {{"name", nullptr}}, InputMode::update);
  ASSERT_FALSE(null_name.ok());
  EXPECT_EQ(null_name.error().code, "MissingRequired");
}

TEST(ValidateInput, ActionTakesEveryFieldOfTheInputType) {
  TypeDef input;
  input.id = "scaleInput";
  input.fields = {field("replicas", FieldType::int_).req().min_value(0),
                  field("reason", FieldType::string).def("manual")};
  auto r = validate_input(input, {{"replicas", 3}, {"other", 1}}, InputMode::action);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, json({{"replicas", 3}, {"reason", "manual"}}));

  auto missing = validate_input(input, json::object(), InputMode::action);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, "MissingRequired");
  EXPECT_EQ(missing.error().field_name, "replicas");
  auto negative = validate_input(input, {{"replicas", -1}}, InputMode::action);
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.error().code, "MinLimitExceeded");
}

}  // namespace
}  // namespace paddock::server
