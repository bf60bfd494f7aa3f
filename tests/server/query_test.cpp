#include "server/query.hpp"

#include "common/crypto.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <tuple>

namespace paddock::server {
namespace {

TypeDef widget_type() {
  TypeDef t;
  t.id = "widget";
  t.collection = "widgets";
  t.table = "widgets";
  t.id_prefix = "1w";
  t.fields = {
      field("id", FieldType::string).stored("id"),
      field("name", FieldType::string).null().stored("name").filter().sort(),
      enum_field("state", {"active", "inactive", "removed"}).stored("state").filter().sort(),
      field("count", FieldType::int_).null().stored("count").filter().sort(),
      field("ratio", FieldType::float_).stored("ratio").filter().sort(),
      field("enabled", FieldType::boolean).stored("enabled").filter(),
      field("created", FieldType::date).stored("created").filter().sort(),
      field("hostId", FieldType::reference, "host").null().stored("hostId").filter().sort(),
      field("line_no", FieldType::int_).stored("line_no").filter(),
      field("config", FieldType::json_).stored("config"),
      field("note", FieldType::string).stored("remark").filter().sort(),
      field("secret", FieldType::password).stored("secret").filter(),
      field("computed", FieldType::string).filter().sort(),  // no column
  };
  return t;
}

ListQuery parse_ok(const QueryParams& params, const std::set<std::string, std::less<>>& ignored = {}) {
  auto r = parse_list_query(widget_type(), params, ignored);
  EXPECT_TRUE(r.ok()) << r.error().code << " " << r.error().field_name << ": " << r.error().message;
  return r.ok() ? std::move(*r) : ListQuery{};
}

ApiError parse_error(const QueryParams& params) {
  auto r = parse_list_query(widget_type(), params);
  EXPECT_FALSE(r.ok());
  return r.ok() ? ApiError{} : r.error();
}

void expect_error(const QueryParams& params, const std::string& code, const std::string& field) {
  const ApiError e = parse_error(params);
  EXPECT_EQ(e.status, 422) << field;
  EXPECT_EQ(e.code, code) << field;
  EXPECT_EQ(e.field_name, field) << field;
}

SqlFragment where(const QueryParams& params) { return where_clause(parse_ok(params)); }

using P = std::vector<SqlValue>;
SqlValue S(const char* s) { return std::string(s); }
SqlValue I(std::int64_t i) { return i; }

// ------------------------------------------------------------- filters --

TEST(ListQuery, Defaults) {
  const ListQuery q = parse_ok({});
  EXPECT_EQ(q.limit, 100);
  EXPECT_EQ(q.sort_field, "created");
  EXPECT_EQ(q.order, SortOrder::asc);
  EXPECT_FALSE(q.marker);
  EXPECT_TRUE(q.filters.empty());
  EXPECT_EQ(where_clause(q).sql, "1=1");
  EXPECT_TRUE(where_clause(q).params.empty());

  // Without a sortable "created", the default sort is the id.
  TypeDef t = widget_type();
  t.fields.erase(std::remove_if(t.fields.begin(), t.fields.end(),
                                [](const FieldDef& f) { return f.name == "created"; }),
                 t.fields.end());
  auto r = parse_list_query(t, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->sort_field, "id");
}

TEST(ListQuery, EachModifier) {
  struct Case {
    QueryParams params;
    std::string sql;
    P params_out;
  };
  const std::vector<Case> cases = {
      {{{"name", "web"}}, R"(("name" = ?))", {S("web")}},
      {{{"name_eq", "web"}}, R"(("name" = ?))", {S("web")}},
      {{{"name_ne", "web"}}, R"(("name" IS NOT ?))", {S("web")}},
      {{{"count_lt", "5"}}, R"(("count" < ?))", {I(5)}},
      {{{"count_lte", "-5"}}, R"(("count" <= ?))", {I(-5)}},
      {{{"count_gt", "5"}}, R"(("count" > ?))", {I(5)}},
      {{{"count_gte", "5"}}, R"(("count" >= ?))", {I(5)}},
      {{{"ratio_gte", "1.5"}}, R"(("ratio" >= ?))", {SqlValue(1.5)}},
      {{{"name_prefix", "w%b_c\\d"}}, R"(("name" LIKE ? ESCAPE '\'))", {S("w\\%b\\_c\\\\d%")}},
      {{{"name_like", "w%b_"}}, R"(("name" LIKE ? ESCAPE '\'))", {S("w%b_")}},
      {{{"name_notlike", "w%"}}, R"((("name" IS NULL OR "name" NOT LIKE ? ESCAPE '\')))", {S("w%")}},
      {{{"name_null", ""}}, R"(("name" IS NULL))", {}},
      {{{"name_notnull", ""}}, R"(("name" IS NOT NULL))", {}},
      {{{"count_null", "ignored"}}, R"(("count" IS NULL))", {}},
      {{{"enabled", "true"}}, R"(("enabled" = ?))", {I(1)}},
      {{{"enabled_ne", "false"}}, R"(("enabled" IS NOT ?))", {I(0)}},
      {{{"created", "2026-11-22T07:00:00Z"}}, R"(("created" = ?))", {I(1795330800000)}},
      {{{"created_gt", "1795330800000"}}, R"(("created" > ?))", {I(1795330800000)}},
      {{{"state", "active"}}, R"(("state" = ?))", {S("active")}},
      {{{"state_prefix", "act"}}, R"(("state" LIKE ? ESCAPE '\'))", {S("act%")}},
      {{{"hostId", "1h7"}}, R"(("hostId" = ?))", {I(7)}},
      {{{"hostId_ne", "1h7"}}, R"(("hostId" IS NOT ?))", {I(7)}},
      {{{"hostId", "7"}}, "(0=1)", {}},
      {{{"hostId_null", ""}}, R"(("hostId" IS NULL))", {}},
      {{{"note", "x"}}, R"(("remark" = ?))", {S("x")}},
      {{{"line_no", "3"}}, R"(("line_no" = ?))", {I(3)}},
      {{{"line_no_gt", "3"}}, R"(("line_no" > ?))", {I(3)}},
      {{{"id", "1w42"}}, R"(("id" = ?))", {I(42)}},
      {{{"id_ne", "1w42"}}, R"(("id" IS NOT ?))", {I(42)}},
      {{{"id", "1w42"}, {"id", "1x43"}, {"id", "1w44"}}, R"(("id" IN (?, ?)))", {I(42), I(44)}},
      {{{"id", "bogus"}}, "(0=1)", {}},
      {{{"id", "1w042"}}, "(0=1)", {}},
      {{{"id", "1w-4"}}, "(0=1)", {}},
      {{{"id_ne", "bogus"}}, "(1=1)", {}},
      {{{"id_prefix", "1w4"}}, R"(((? || "id") LIKE ? ESCAPE '\'))", {S("1w"), S("1w4%")}},
      {{{"id_like", "1w_"}}, R"(((? || "id") LIKE ? ESCAPE '\'))", {S("1w"), S("1w_")}},
      {{{"id_notlike", "%9"}}, R"(((? || "id") NOT LIKE ? ESCAPE '\'))", {S("1w"), S("%9")}},
  };
  for (const Case& c : cases) {
    const SqlFragment w = where(c.params);
    EXPECT_EQ(w.sql, c.sql) << c.params[0].first;
    EXPECT_EQ(w.params, c.params_out) << c.params[0].first;
  }
}

TEST(ListQuery, ReferencesAreRowIdsOfTheTargetType) {
  const IdPrefixOf prefix_of = [](std::string_view type) -> std::optional<std::string> {
    if (type == "host") return "1h";
    return std::nullopt;
  };
  const auto w = [&](const QueryParams& params) {
    auto r = parse_list_query(widget_type(), params, {}, prefix_of);
    EXPECT_TRUE(r.ok());
    return r.ok() ? where_clause(*r) : SqlFragment{};
  };
  EXPECT_EQ(w({{"hostId", "1h7"}}).params, P{I(7)});
  EXPECT_EQ(w({{"hostId", "1p7"}}).sql, "(0=1)");  // another type's id
  EXPECT_EQ(w({{"hostId", "1h7"}, {"hostId", "1p8"}, {"hostId", "1h9"}}).sql, R"(("hostId" IN (?, ?)))");
  EXPECT_EQ(w({{"hostId_ne", "1p7"}}).sql, "(1=1)");
  const SqlFragment like = w({{"hostId_prefix", "1h1"}});
  EXPECT_EQ(like.sql, R"(((? || "hostId") LIKE ? ESCAPE '\'))");
  EXPECT_EQ(like.params, (P{S("1h"), S("1h1%")}));
  // Without the resolver the digits after the prefix are the row id.
  EXPECT_EQ(where({{"hostId", "1p7"}}).params, P{I(7)});
  EXPECT_EQ(where({{"hostId_prefix", "1"}}).params, (P{S(""), S("1%")}));
  // Sorting by a reference sorts by row id, NULL as 0.
  const SqlFragment sel = page_select(widget_type(), parse_ok({{"sort", "hostId"}}), {});
  EXPECT_NE(sel.sql.find(R"(ORDER BY coalesce("hostId", 0) ASC, "id" ASC)"), std::string::npos);
}

TEST(ListQuery, FiltersAreAndedAndRepeatedEqualsMeansAnyOf) {
  const SqlFragment w = where({{"name", "a"}, {"count_gt", "1"}, {"name_eq", "b"}, {"name", "c"},
                               {"count_lt", "9"}});
  EXPECT_EQ(w.sql, R"(("name" IN (?, ?, ?)) AND ("count" > ?) AND ("count" < ?))");
  EXPECT_EQ(w.params, (P{S("a"), S("b"), S("c"), I(1), I(9)}));
}

TEST(ListQuery, UnknownOrForbiddenFilters) {
  expect_error({{"bogus", "1"}}, "InvalidFilter", "bogus");
  expect_error({{"bogus_eq", "1"}}, "InvalidFilter", "bogus_eq");
  expect_error({{"name_bogus", "1"}}, "InvalidFilter", "name_bogus");
  expect_error({{"name_", "1"}}, "InvalidFilter", "name_");
  expect_error({{"line", "1"}}, "InvalidFilter", "line");
  expect_error({{"line_no_bogus", "1"}}, "InvalidFilter", "line_no_bogus");
  expect_error({{"state_lt", "x"}}, "InvalidFilter", "state_lt");
  expect_error({{"state_null", ""}}, "InvalidFilter", "state_null");    // not nullable
  expect_error({{"ratio_null", ""}}, "InvalidFilter", "ratio_null");    // not nullable
  expect_error({{"count_prefix", "1"}}, "InvalidFilter", "count_prefix");
  expect_error({{"enabled_gt", "true"}}, "InvalidFilter", "enabled_gt");
  expect_error({{"id_lt", "1w3"}}, "InvalidFilter", "id_lt");
  expect_error({{"config", "{}"}}, "InvalidFilter", "config");          // not filterable
  expect_error({{"secret", "x"}}, "InvalidFilter", "secret");           // never filterable
  expect_error({{"computed", "x"}}, "InvalidFilter", "computed");       // no column
  // An unknown field is an error even next to valid ones.
  expect_error({{"name", "a"}, {"nope", "b"}}, "InvalidFilter", "nope");
}

TEST(ListQuery, ValuesMustParseForTheFieldType) {
  expect_error({{"count", "1.5"}}, "InvalidFilter", "count");
  expect_error({{"count", ""}}, "InvalidFilter", "count");
  expect_error({{"count_gt", "12abc"}}, "InvalidFilter", "count_gt");
  expect_error({{"count", "99999999999999999999"}}, "InvalidFilter", "count");
  expect_error({{"ratio", "nan"}}, "InvalidFilter", "ratio");
  expect_error({{"ratio", "inf"}}, "InvalidFilter", "ratio");
  expect_error({{"enabled", "yes"}}, "InvalidFilter", "enabled");
  expect_error({{"enabled", "1"}}, "InvalidFilter", "enabled");
  expect_error({{"created", "yesterday"}}, "InvalidFilter", "created");
  expect_error({{"created_lt", "2026-13-01T00:00:00Z"}}, "InvalidFilter", "created_lt");
  expect_error({{"state", "bogus"}}, "InvalidFilter", "state");
  expect_error({{"state", "active"}, {"state", "bogus"}}, "InvalidFilter", "state");
  expect_error({{"name", std::string("a\0b", 3)}}, "InvalidFilter", "name");
  expect_error({{"name", "\xff"}}, "InvalidFilter", "name");
  // The parameter name goes into the error JSON: only if it is text.
  const ApiError e = parse_error({{"\xff\x01", "1"}});
  EXPECT_EQ(e.code, "InvalidFilter");
  EXPECT_EQ(e.field_name, "");
  EXPECT_NO_THROW((void)e.to_json().dump());
}

TEST(ListQuery, IgnoredAndEmptyParameters) {
  const ListQuery q = parse_ok({{"token", "abc"}, {"projectId", "1a5"}, {"", "x"}, {"name", "a"}},
                               {"token", "projectId"});
  ASSERT_EQ(q.filters.size(), 1u);
  EXPECT_EQ(q.filters[0].field, "name");
  EXPECT_EQ(q.params.size(), 4u);  // kept for links
  expect_error({{"token", "abc"}}, "InvalidFilter", "token");
}

// ------------------------------------------------------- limit and sort --

TEST(ListQuery, Limit) {
  EXPECT_EQ(parse_ok({{"limit", "7"}}).limit, 7);
  EXPECT_EQ(parse_ok({{"limit", "1"}}).limit, 1);
  EXPECT_EQ(parse_ok({{"limit", "1000"}}).limit, 1000);
  EXPECT_EQ(parse_ok({{"limit", "1001"}}).limit, 1000);
  EXPECT_EQ(parse_ok({{"limit", "99999999999999999999999"}}).limit, 1000);
  EXPECT_EQ(parse_ok({{"limit", ""}}).limit, 100);
  EXPECT_EQ(parse_ok({{"limit", "5"}, {"limit", "9"}}).limit, 9);
  expect_error({{"limit", "0"}}, "MinLimitExceeded", "limit");
  expect_error({{"limit", "-3"}}, "MinLimitExceeded", "limit");
  expect_error({{"limit", "-99999999999999999999999"}}, "MinLimitExceeded", "limit");
  expect_error({{"limit", "ten"}}, "InvalidType", "limit");
  expect_error({{"limit", "1.5"}}, "InvalidType", "limit");
  expect_error({{"limit", "+5"}}, "InvalidType", "limit");
  expect_error({{"limit", "-"}}, "InvalidType", "limit");
  expect_error({{"limit", " 5"}}, "InvalidType", "limit");
}

TEST(ListQuery, Sort) {
  ListQuery q = parse_ok({{"sort", "name"}, {"order", "desc"}});
  EXPECT_EQ(q.sort_field, "name");
  EXPECT_EQ(q.order, SortOrder::desc);
  EXPECT_EQ(parse_ok({{"sort", "id"}}).sort_field, "id");
  EXPECT_EQ(parse_ok({{"sort", "note"}}).sort_column, "remark");
  EXPECT_EQ(parse_ok({{"order", "desc"}}).sort_field, "created");
  expect_error({{"sort", "bogus"}}, "InvalidSort", "sort");
  expect_error({{"sort", "enabled"}}, "InvalidSort", "sort");  // not sortable
  expect_error({{"sort", "config"}}, "InvalidSort", "sort");
  expect_error({{"sort", "computed"}}, "InvalidSort", "sort");
  expect_error({{"order", "up"}}, "InvalidSort", "order");
  expect_error({{"order", "DESC"}}, "InvalidSort", "order");
}

TEST(PageSelect, Sql) {
  const TypeDef t = widget_type();
  SqlFragment s = page_select(t, parse_ok({}), {});
  EXPECT_EQ(s.sql, R"(SELECT * FROM "widgets" WHERE (1=1) AND (1=1) )"
                   R"(ORDER BY coalesce("created", 0) ASC, "id" ASC LIMIT 101)");
  EXPECT_TRUE(s.params.empty());

  s = page_select(t, parse_ok({{"sort", "name"}, {"order", "desc"}, {"limit", "7"}, {"count", "3"}}),
                  {"\"projectId\" = ?", {I(5)}});
  EXPECT_EQ(s.sql, R"(SELECT * FROM "widgets" WHERE ("projectId" = ?) AND (("count" = ?)) )"
                   R"(ORDER BY coalesce("name", '') DESC, "id" DESC LIMIT 8)");
  EXPECT_EQ(s.params, (P{I(5), I(3)}));

  s = page_select(t, parse_ok({{"sort", "ratio"}}), {});
  EXPECT_NE(s.sql.find(R"(ORDER BY coalesce("ratio", 0.0) ASC, "id" ASC)"), std::string::npos);
  s = page_select(t, parse_ok({{"sort", "id"}, {"order", "desc"}}), {});
  EXPECT_NE(s.sql.find(R"(ORDER BY "id" DESC LIMIT 101)"), std::string::npos);

  const SqlFragment c = count_select(t, parse_ok({{"name", "a"}, {"limit", "3"}}), {"x = ?", {I(1)}});
  EXPECT_EQ(c.sql, R"(SELECT COUNT(*) FROM "widgets" WHERE (x = ?) AND (("name" = ?)))");
  EXPECT_EQ(c.params, (P{I(1), S("a")}));
}

TEST(PageSelect, KeysetFromMarkers) {
  const TypeDef t = widget_type();
  const auto with_marker = [&](Marker m, QueryParams extra) {
    extra.emplace_back("marker", encode_marker(m));
    return page_select(t, parse_ok(extra), {});
  };
  SqlFragment s = with_marker({"name", SortOrder::asc, S("bob"), 12, PageDirection::next, false},
                              {{"sort", "name"}});
  EXPECT_EQ(s.sql, R"(SELECT * FROM "widgets" WHERE (1=1) AND (1=1) AND )"
                   R"(((coalesce("name", ''), "id") > (?, ?)) )"
                   R"(ORDER BY coalesce("name", '') ASC, "id" ASC LIMIT 101)");
  EXPECT_EQ(s.params, (P{S("bob"), I(12)}));

  // Backwards: reversed comparison and order.
  s = with_marker({"name", SortOrder::asc, S("bob"), 12, PageDirection::prev, false}, {{"sort", "name"}});
  EXPECT_NE(s.sql.find(R"(((coalesce("name", ''), "id") < (?, ?)) ORDER BY coalesce("name", '') DESC, "id" DESC)"),
            std::string::npos)
      << s.sql;
  s = with_marker({"name", SortOrder::desc, S("bob"), 12, PageDirection::next, false},
                  {{"sort", "name"}, {"order", "desc"}});
  EXPECT_NE(s.sql.find(R"(< (?, ?)) ORDER BY coalesce("name", '') DESC)"), std::string::npos) << s.sql;
  s = with_marker({"name", SortOrder::desc, S("bob"), 12, PageDirection::prev, true},
                  {{"sort", "name"}, {"order", "desc"}});
  EXPECT_NE(s.sql.find(R"(>= (?, ?)) ORDER BY coalesce("name", '') ASC)"), std::string::npos) << s.sql;
  s = with_marker({"id", SortOrder::asc, I(12), 12, PageDirection::next, false}, {{"sort", "id"}});
  EXPECT_NE(s.sql.find(R"(AND ("id" > ?) ORDER BY "id" ASC)"), std::string::npos) << s.sql;
  EXPECT_EQ(s.params, (P{I(12)}));
}

// -------------------------------------------------------------- markers --

TEST(Marker, RoundTrip) {
  const std::vector<Marker> markers = {
      {"name", SortOrder::asc, S("b\"ob é"), 12, PageDirection::next, false},
      {"count", SortOrder::desc, I(-7), 1, PageDirection::prev, true},
      {"ratio", SortOrder::asc, SqlValue(0.1), 99, PageDirection::next, false},
      {"id", SortOrder::asc, I(9007199254740993), 9007199254740993, PageDirection::next, false},
      // Stored text that JSON cannot carry.
      {"name", SortOrder::asc, SqlValue(std::string("a\xff\0b", 4)), 3, PageDirection::next, false},
  };
  for (const Marker& m : markers) {
    const std::string text = encode_marker(m);
    EXPECT_EQ(text.find_first_not_of(
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
              std::string::npos);
    const std::optional<Marker> back = decode_marker(text);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->sort, m.sort);
    EXPECT_EQ(back->order, m.order);
    EXPECT_EQ(back->value, m.value);
    EXPECT_EQ(back->id, m.id);
    EXPECT_EQ(back->direction, m.direction);
    EXPECT_EQ(back->inclusive, m.inclusive);
  }
}

TEST(Marker, TamperedOrForeignMarkersAre422) {
  const std::string good =
      encode_marker({"created", SortOrder::asc, I(1000), 4, PageDirection::next, false});
  EXPECT_TRUE(parse_ok({{"marker", good}}).marker);
  EXPECT_FALSE(parse_ok({{"marker", ""}}).marker);

  std::string flipped = good;
  flipped[3] = flipped[3] == 'A' ? 'B' : 'A';
  const auto b64 = [](const std::string& s) { return crypto::base64url_encode(s); };
  const std::vector<std::string> bad = {
      "!!!", "a", good + "=", flipped, b64("not json"), b64("[1,2]"), b64("{}"),
      b64(R"({"s":"created","o":"asc","v":1,"i":"4","d":"next"})"),
      b64(R"({"s":"created","o":"asc","v":1,"i":4,"d":"sideways"})"),
      b64(R"({"s":"created","o":"up","v":1,"i":4,"d":"next"})"),
      b64(R"({"s":"created","o":"asc","v":null,"i":4,"d":"next"})"),
      b64(R"({"s":"created","o":"asc","v":[1],"i":4,"d":"next"})"),
      b64(R"({"s":"created","o":"asc","v":1,"i":4,"d":"next","x":"yes"})"),
      b64(R"({"s":"created","o":"asc","v":1,"i":18446744073709551615,"d":"next"})"),
      b64(R"({"s":"created","o":"asc","v":1,"b":"AA","i":4,"d":"next"})"),
      b64(R"({"s":"created","o":"asc","b":"!","i":4,"d":"next"})"),
      b64(std::string(200, '[')), std::string(10000, 'A'),
      // Made for another sort or order.
      encode_marker({"name", SortOrder::asc, S("x"), 4, PageDirection::next, false}),
      encode_marker({"created", SortOrder::desc, I(1000), 4, PageDirection::next, false}),
  };
  for (const std::string& m : bad) expect_error({{"marker", m}}, "InvalidFilter", "marker");
  // A sort by id needs an integer key.
  expect_error({{"sort", "id"},
                {"marker", encode_marker({"id", SortOrder::asc, S("x"), 4, PageDirection::next, false})}},
               "InvalidFilter", "marker");
}

// ------------------------------------------------------ page assembly --

json row(std::int64_t id, std::int64_t created) { return {{"id", id}, {"created", created}, {"name", nullptr}}; }

TEST(BuildPage, FirstPageLinksAndEchoes) {
  const TypeDef t = widget_type();
  const ListQuery q = parse_ok({{"limit", "2"}, {"name_prefix", "a b&c=d/é"}, {"name", "x"},
                                {"name", "y"}, {"count_null", ""}, {"token", "t"}},
                               {"token"});
  const Page p = build_page(t, q, {row(1, 10), row(2, 20), row(3, 30)}, 42, "https://h/v1/widgets");
  ASSERT_EQ(p.rows.size(), 2u);
  EXPECT_EQ(p.rows[1]["id"], 2);
  ASSERT_TRUE(p.next_marker);
  EXPECT_FALSE(p.previous_marker);
  const std::optional<Marker> m = decode_marker(*p.next_marker);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->value, I(20));
  EXPECT_EQ(m->id, 2);

  EXPECT_EQ(p.pagination["limit"], 2);
  EXPECT_EQ(p.pagination["total"], 42);
  EXPECT_EQ(p.pagination["partial"], true);
  EXPECT_TRUE(p.pagination["previous"].is_null());
  EXPECT_EQ(p.pagination["next"],
            "https://h/v1/widgets?name_prefix=a%20b%26c%3Dd%2F%C3%A9&name=x&name=y&count_null=&token=t"
            "&marker=" + *p.next_marker + "&limit=2");

  EXPECT_EQ(p.sort["name"], "created");
  EXPECT_EQ(p.sort["order"], "asc");
  EXPECT_EQ(p.sort["reverse"],
            "https://h/v1/widgets?limit=2&name_prefix=a%20b%26c%3Dd%2F%C3%A9&name=x&name=y&count_null=&token=t"
            "&sort=created&order=desc");
  EXPECT_EQ(p.sort_links,
            json({{"id", "https://h/v1/widgets?limit=2&name_prefix=a%20b%26c%3Dd%2F%C3%A9&name=x&name=y&count_null=&token=t&sort=id"},
                  {"name", "https://h/v1/widgets?limit=2&name_prefix=a%20b%26c%3Dd%2F%C3%A9&name=x&name=y&count_null=&token=t&sort=name"},
                  {"state", "https://h/v1/widgets?limit=2&name_prefix=a%20b%26c%3Dd%2F%C3%A9&name=x&name=y&count_null=&token=t&sort=state"},
                  {"count", "https://h/v1/widgets?limit=2&name_prefix=a%20b%26c%3Dd%2F%C3%A9&name=x&name=y&count_null=&token=t&sort=count"},
                  {"ratio", "https://h/v1/widgets?limit=2&name_prefix=a%20b%26c%3Dd%2F%C3%A9&name=x&name=y&count_null=&token=t&sort=ratio"},
                  {"created", "https://h/v1/widgets?limit=2&name_prefix=a%20b%26c%3Dd%2F%C3%A9&name=x&name=y&count_null=&token=t&sort=created"},
                  {"hostId", "https://h/v1/widgets?limit=2&name_prefix=a%20b%26c%3Dd%2F%C3%A9&name=x&name=y&count_null=&token=t&sort=hostId"},
                  {"note", "https://h/v1/widgets?limit=2&name_prefix=a%20b%26c%3Dd%2F%C3%A9&name=x&name=y&count_null=&token=t&sort=note"}}));

  EXPECT_EQ(p.filters,
            json({{"id", nullptr},
                  {"name",
                   {{{"modifier", "prefix"}, {"value", "a b&c=d/é"}},
                    {{"modifier", "eq"}, {"value", "x"}},
                    {{"modifier", "eq"}, {"value", "y"}}}},
                  {"state", nullptr},
                  {"count", {{{"modifier", "null"}, {"value", nullptr}}}},
                  {"ratio", nullptr},
                  {"enabled", nullptr},
                  {"created", nullptr},
                  {"hostId", nullptr},
                  {"line_no", nullptr},
                  {"note", nullptr}}));
}

TEST(BuildPage, LastPageAndSinglePage) {
  const TypeDef t = widget_type();
  Page p = build_page(t, parse_ok({}), {row(1, 10)}, std::nullopt, "https://h/v1/widgets");
  EXPECT_FALSE(p.next_marker);
  EXPECT_FALSE(p.previous_marker);
  EXPECT_EQ(p.pagination["partial"], false);
  EXPECT_TRUE(p.pagination["total"].is_null());
  EXPECT_TRUE(p.pagination["next"].is_null());

  // Came forward with a marker, no more rows: previous but no next.
  const std::string m = encode_marker({"created", SortOrder::asc, I(5), 1, PageDirection::next, false});
  p = build_page(t, parse_ok({{"marker", m}, {"limit", "2"}}), {row(2, 10), row(3, 30)}, 3,
                 "https://h/v1/widgets");
  EXPECT_FALSE(p.next_marker);
  ASSERT_TRUE(p.previous_marker);
  EXPECT_EQ(decode_marker(*p.previous_marker)->id, 2);
  EXPECT_EQ(decode_marker(*p.previous_marker)->direction, PageDirection::prev);
  EXPECT_EQ(p.pagination["partial"], true);
  EXPECT_EQ(p.pagination["previous"], "https://h/v1/widgets?marker=" + *p.previous_marker + "&limit=2");
}

TEST(BuildPage, BackwardRowsAreReversed) {
  const TypeDef t = widget_type();
  const std::string m = encode_marker({"created", SortOrder::asc, I(50), 5, PageDirection::prev, false});
  // page_select returned them nearest-first, one extra.
  const Page p = build_page(t, parse_ok({{"marker", m}, {"limit", "2"}}),
                            {row(4, 40), row(3, 30), row(2, 20)}, std::nullopt, "u");
  ASSERT_EQ(p.rows.size(), 2u);
  EXPECT_EQ(p.rows[0]["id"], 3);
  EXPECT_EQ(p.rows[1]["id"], 4);
  EXPECT_EQ(decode_marker(*p.previous_marker)->id, 3);
  EXPECT_EQ(decode_marker(*p.next_marker)->id, 4);
  EXPECT_EQ(decode_marker(*p.next_marker)->direction, PageDirection::next);
  // At the start: no previous.
  const Page start = build_page(t, parse_ok({{"marker", m}, {"limit", "2"}}), {row(4, 40)}, std::nullopt, "u");
  EXPECT_FALSE(start.previous_marker);
  EXPECT_TRUE(start.next_marker);
}

TEST(BuildPage, NullSortValuesUseTheNeutralKey) {
  const TypeDef t = widget_type();
  const Page p = build_page(t, parse_ok({{"sort", "name"}, {"limit", "1"}}),
                            {row(1, 10), row(2, 20)}, std::nullopt, "u");
  ASSERT_TRUE(p.next_marker);
  EXPECT_EQ(decode_marker(*p.next_marker)->value, S(""));
}

TEST(UrlWithQuery, PercentEncodes) {
  EXPECT_EQ(url_with_query("https://h/v1/x", {}), "https://h/v1/x");
  EXPECT_EQ(url_with_query("https://h/v1/x", {{"a b", "c+d"}, {"e", "~-._"}, {"n", "\n"}}),
            "https://h/v1/x?a%20b=c%2Bd&e=~-._&n=%0A");
  EXPECT_EQ(url_with_query("https://h/v1/x?y=1", {{"a", "b"}}), "https://h/v1/x?y=1&a=b");
}

// ---------------------------------------------- keyset against SQLite --

class Db {
 public:
  Db() {
    EXPECT_EQ(sqlite3_open(":memory:", &db_), SQLITE_OK);
    exec(R"(CREATE TABLE widgets (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, state TEXT, count INTEGER,
            ratio REAL, enabled INTEGER, created INTEGER, hostId TEXT, line_no INTEGER,
            config TEXT, remark TEXT, secret TEXT, projectId INTEGER))");
  }
  ~Db() { sqlite3_close(db_); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  void exec(const std::string& sql) {
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  }

  std::vector<json> query(const SqlFragment& f) {
    sqlite3_stmt* st = nullptr;
    std::vector<json> rows;
    if (sqlite3_prepare_v2(db_, f.sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sqlite3_errmsg(db_) << " in " << f.sql;
      return rows;
    }
    for (std::size_t i = 0; i < f.params.size(); ++i) {
      const int k = static_cast<int>(i) + 1;
      std::visit(
          [&](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::nullptr_t>) sqlite3_bind_null(st, k);
            else if constexpr (std::is_same_v<T, std::int64_t>) sqlite3_bind_int64(st, k, v);
            else if constexpr (std::is_same_v<T, double>) sqlite3_bind_double(st, k, v);
            else sqlite3_bind_text(st, k, v.data(), static_cast<int>(v.size()), nullptr);
          },
          f.params[i]);
    }
    EXPECT_EQ(sqlite3_bind_parameter_count(st), static_cast<int>(f.params.size()));
    while (sqlite3_step(st) == SQLITE_ROW) {
      json r = json::object();
      for (int c = 0; c < sqlite3_column_count(st); ++c) {
        const std::string name = sqlite3_column_name(st, c);
        switch (sqlite3_column_type(st, c)) {
          case SQLITE_INTEGER: r[name] = sqlite3_column_int64(st, c); break;
          case SQLITE_FLOAT: r[name] = sqlite3_column_double(st, c); break;
          case SQLITE_TEXT:
            r[name] = std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, c)),
                                  static_cast<std::size_t>(sqlite3_column_bytes(st, c)));
            break;
          default: r[name] = nullptr;
        }
      }
      rows.push_back(std::move(r));
    }
    sqlite3_finalize(st);
    return rows;
  }

  std::int64_t insert(std::mt19937& rng, std::int64_t project = 1) {
    // Few distinct values per column, so sort keys repeat a lot; some NULLs.
    static const std::vector<std::string> names = {"alpha", "beta", "Beta", "gamma", "", "delta", "é"};
    const auto pick = [&](std::uint32_t n) { return rng() % n; };
    const std::string name = pick(8) == 0 ? "NULL" : "'" + names[pick(7)] + "'";
    const std::string count = pick(6) == 0 ? "NULL" : std::to_string(static_cast<int>(pick(9)) - 3);
    const std::string ratio = std::to_string(static_cast<double>(pick(5)) / 4.0);
    const std::string created = std::to_string(1795330800000 + static_cast<std::int64_t>(pick(20)) * 1000);
    exec("INSERT INTO widgets (name, state, count, ratio, enabled, created, projectId) VALUES (" + name +
         ", 'active', " + count + ", " + ratio + ", " + std::to_string(pick(2)) + ", " + created + ", " +
         std::to_string(project) + ")");
    return sqlite3_last_insert_rowid(db_);
  }

 private:
  sqlite3* db_ = nullptr;
};

// The display-order key of a row, as the SQL orders it.
using Key = std::tuple<int, double, std::string, std::int64_t>;  // kind, number, text, id

Key key_of(const ListQuery& q, const json& r) {
  const std::int64_t id = r["id"].get<std::int64_t>();
  if (q.sort_is_id) return {0, 0, "", id};
  const json& v = r[q.sort_column];
  if (v.is_null()) {
    if (q.sort_type == FieldType::string || q.sort_type == FieldType::enum_) return {1, 0, "", id};
    return {0, 0, "", id};
  }
  if (v.is_string()) return {1, 0, v.get<std::string>(), id};
  return {0, v.get<double>(), "", id};
}

struct Walk {
  std::vector<json> rows;  // in display order
  std::string last_page_marker;
  std::size_t pages = 0;
};

// Pages through the collection following `next` (or `previous`), mutating the
// table between pages with `mutate`.
template <class Mutate>
Walk walk(Db& db, const TypeDef& t, QueryParams base, bool forward, std::string start_marker,
          Mutate&& mutate) {
  Walk w;
  std::optional<std::string> marker;
  if (!start_marker.empty()) marker = start_marker;
  const SqlFragment scope{"\"projectId\" = ?", {std::int64_t{1}}};
  for (;;) {
    QueryParams params = base;
    if (marker) params.emplace_back("marker", *marker);
    auto q = parse_list_query(t, params);
    if (!q.ok()) {
      ADD_FAILURE() << q.error().message;
      return w;
    }
    const Page p = build_page(t, *q, db.query(page_select(t, *q, scope)),
                              db.query(count_select(t, *q, scope))[0]["COUNT(*)"].get<std::int64_t>(),
                              "https://h/v1/widgets");
    ++w.pages;
    EXPECT_LE(p.rows.size(), static_cast<std::size_t>(q->limit));
    if (forward) {
      w.rows.insert(w.rows.end(), p.rows.begin(), p.rows.end());
    } else {
      w.rows.insert(w.rows.begin(), p.rows.begin(), p.rows.end());
    }
    const std::optional<std::string>& follow = forward ? p.next_marker : p.previous_marker;
    const json& link = p.pagination[forward ? "next" : "previous"];
    if (!follow) {
      EXPECT_TRUE(link.is_null());
      w.last_page_marker = marker.value_or("");
      return w;
    }
    EXPECT_NE(link.get<std::string>().find("marker=" + *follow + "&limit="), std::string::npos);
    marker = follow;
    mutate();
    if (w.pages > 2000) {
      ADD_FAILURE() << "pagination does not terminate";
      return w;
    }
  }
}

void expect_keyset_order(const ListQuery& q, const std::vector<json>& rows) {
  for (std::size_t i = 1; i < rows.size(); ++i) {
    const Key a = key_of(q, rows[i - 1]), b = key_of(q, rows[i]);
    if (q.order == SortOrder::asc) EXPECT_LT(a, b) << rows[i - 1] << " then " << rows[i];
    else EXPECT_GT(a, b) << rows[i - 1] << " then " << rows[i];
  }
}

TEST(KeysetPagination, StaticTableEveryRowOnceInOrder) {
  const TypeDef t = widget_type();
  for (const char* sort : {"created", "name", "count", "ratio", "id", "state"}) {
    for (const char* order : {"asc", "desc"}) {
      Db db;
      std::mt19937 rng(1);
      for (int i = 0; i < 500; ++i) db.insert(rng);
      for (int i = 0; i < 20; ++i) db.insert(rng, 2);  // out of scope
      const QueryParams base = {{"sort", sort}, {"order", order}, {"limit", "7"}};
      const ListQuery q = parse_ok(base);

      const Walk fwd = walk(db, t, base, true, "", [] {});
      ASSERT_EQ(fwd.rows.size(), 500u) << sort << " " << order;
      EXPECT_EQ(fwd.pages, 72u);  // ceil(500 / 7)
      expect_keyset_order(q, fwd.rows);
      // The same as one big ORDER BY.
      const std::vector<json> all = db.query(page_select(t, parse_ok({{"sort", sort}, {"order", order}, {"limit", "1000"}}),
                                                         {"\"projectId\" = 1", {}}));
      ASSERT_EQ(all.size(), 500u);
      for (std::size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i]["id"], fwd.rows[i]["id"]);

      // From the last page back to the first.
      const Walk back = walk(db, t, base, false, fwd.last_page_marker, [] {});
      ASSERT_EQ(back.rows.size(), 500u) << sort << " " << order;
      for (std::size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i]["id"], back.rows[i]["id"]);
    }
  }
}

TEST(KeysetPagination, RowsThatExistThroughoutAppearExactlyOnceWhileTheTableChanges) {
  const TypeDef t = widget_type();
  for (const char* sort : {"created", "name", "count", "ratio", "id"}) {
    for (const char* order : {"asc", "desc"}) {
      Db db;
      std::mt19937 rng(42);
      std::set<std::int64_t> stable, volatile_ids;
      for (int i = 0; i < 500; ++i) {
        const std::int64_t id = db.insert(rng);
        (id % 3 == 0 ? volatile_ids : stable).insert(id);
      }
      const QueryParams base = {{"sort", sort}, {"order", order}, {"limit", "7"}};
      const ListQuery q = parse_ok(base);

      // Between pages: delete two rows that are not stable, insert two new ones.
      std::size_t deleted = 0;
      const auto mutate = [&] {
        for (int k = 0; k < 2 && !volatile_ids.empty(); ++k) {
          auto it = volatile_ids.begin();
          std::advance(it, static_cast<long>(rng() % volatile_ids.size()));
          db.exec("DELETE FROM widgets WHERE id = " + std::to_string(*it));
          volatile_ids.erase(it);
          ++deleted;
        }
        for (int k = 0; k < 2; ++k) volatile_ids.insert(db.insert(rng));
      };
      const auto check = [&](const Walk& w, const char* how) {
        std::map<std::int64_t, int> seen;
        for (const json& r : w.rows) ++seen[r["id"].get<std::int64_t>()];
        for (const auto& [id, n] : seen) {
          EXPECT_EQ(n, 1) << "row " << id << " repeated: " << sort << " " << order << " " << how;
        }
        for (const std::int64_t id : stable) {
          EXPECT_EQ(seen.count(id), 1u) << "row " << id << " skipped: " << sort << " " << order << " " << how;
        }
        expect_keyset_order(q, w.rows);
      };

      // Forward with `next` to the end, then back with `previous` to the start.
      const Walk fwd = walk(db, t, base, true, "", mutate);
      check(fwd, "forward");
      const Walk back = walk(db, t, base, false, fwd.last_page_marker, mutate);
      check(back, "backward");
      EXPECT_GT(deleted, 200u);  // the table really changed under the walks
    }
  }
}

TEST(KeysetPagination, FilteredPagesAndTotal) {
  const TypeDef t = widget_type();
  Db db;
  std::mt19937 rng(3);
  for (int i = 0; i < 300; ++i) db.insert(rng);
  const QueryParams base = {{"sort", "name"}, {"limit", "7"}, {"count_gte", "0"}, {"name_notnull", ""}};
  const std::size_t expected =
      db.query({"SELECT * FROM widgets WHERE count >= 0 AND name IS NOT NULL", {}}).size();
  const Walk w = walk(db, t, base, true, "", [] {});
  EXPECT_EQ(w.rows.size(), expected);
  for (const json& r : w.rows) {
    EXPECT_GE(r["count"].get<std::int64_t>(), 0);
    EXPECT_TRUE(r["name"].is_string());
  }
  const auto q = parse_ok(base);
  EXPECT_EQ(db.query(count_select(t, q, {}))[0]["COUNT(*)"], expected);
}

TEST(KeysetPagination, EmptyPageLeadsBackWithoutSkippingTheBoundaryRow) {
  const TypeDef t = widget_type();
  Db db;
  std::mt19937 rng(5);
  for (int i = 0; i < 10; ++i) db.insert(rng);
  const QueryParams base = {{"sort", "id"}, {"limit", "5"}};
  const auto page = [&](const std::optional<std::string>& marker) {
    QueryParams p = base;
    if (marker) p.emplace_back("marker", *marker);
    const ListQuery q = parse_ok(p);
    return build_page(t, q, db.query(page_select(t, q, {})), std::nullopt, "u");
  };
  const auto ids = [](const Page& p) {
    std::vector<std::int64_t> out;
    for (const json& r : p.rows) out.push_back(r["id"].get<std::int64_t>());
    return out;
  };

  const Page first = page(std::nullopt);
  EXPECT_EQ(ids(first), (std::vector<std::int64_t>{1, 2, 3, 4, 5}));
  db.exec("DELETE FROM widgets WHERE id > 5");
  const Page empty = page(first.next_marker);
  EXPECT_TRUE(empty.rows.empty());
  EXPECT_FALSE(empty.next_marker);
  EXPECT_EQ(ids(page(empty.previous_marker)), (std::vector<std::int64_t>{1, 2, 3, 4, 5}));

  // And the mirror image, walking backwards.
  for (int i = 0; i < 5; ++i) db.insert(rng);  // ids 11..15
  const Page second = page(first.next_marker);
  EXPECT_EQ(ids(second), (std::vector<std::int64_t>{11, 12, 13, 14, 15}));
  db.exec("DELETE FROM widgets WHERE id <= 5");
  const Page before = page(second.previous_marker);
  EXPECT_TRUE(before.rows.empty());
  EXPECT_FALSE(before.previous_marker);
  EXPECT_EQ(ids(page(before.next_marker)), (std::vector<std::int64_t>{11, 12, 13, 14, 15}));
}

TEST(KeysetPagination, FilterSqlAgreesWithSqlite) {
  const TypeDef t = widget_type();
  Db db;
  db.exec(R"(INSERT INTO widgets (id, name, count, ratio, created, enabled, hostId) VALUES
            (1, 'web-01', 1, 0.5, 1000, 1, 7), (2, 'web_02', NULL, 1.5, 2000, 0, 12),
            (3, 'db%1', 3, 2.5, 3000, 1, NULL), (4, NULL, 4, 3.5, 4000, 0, 7), (5, 'WEB-05', 5, 4.5, 5000, 1, 1),
            (6, 'a\b', 6, 5.5, 6000, 0, NULL))");
  const auto ids = [&](const QueryParams& params) {
    QueryParams p = params;
    p.emplace_back("sort", "id");
    const ListQuery q = parse_ok(p);
    std::vector<std::int64_t> out;
    for (const json& r : db.query(page_select(t, q, {}))) out.push_back(r["id"].get<std::int64_t>());
    return out;
  };
  using V = std::vector<std::int64_t>;
  EXPECT_EQ(ids({{"name", "web-01"}}), V{1});
  EXPECT_EQ(ids({{"name", "web-01"}, {"name", "db%1"}}), (V{1, 3}));
  EXPECT_EQ(ids({{"name_ne", "web-01"}}), (V{2, 3, 4, 5, 6}));  // NULL is "not equal"
  EXPECT_EQ(ids({{"name_prefix", "web_"}}), V{2});              // "_" is literal in prefix
  EXPECT_EQ(ids({{"name_prefix", "db%"}}), V{3});
  EXPECT_EQ(ids({{"name_prefix", "a\\"}}), V{6});
  EXPECT_EQ(ids({{"name_like", "web_0%"}}), (V{1, 2, 5}));       // SQLite LIKE ignores ASCII case
  EXPECT_EQ(ids({{"name_notlike", "web%"}}), (V{3, 4, 6}));
  EXPECT_EQ(ids({{"name_null", ""}}), V{4});
  EXPECT_EQ(ids({{"name_notnull", ""}}), (V{1, 2, 3, 5, 6}));
  EXPECT_EQ(ids({{"count_gt", "3"}}), (V{4, 5, 6}));
  EXPECT_EQ(ids({{"count_lte", "3"}}), (V{1, 3}));
  EXPECT_EQ(ids({{"count_ne", "3"}}), (V{1, 2, 4, 5, 6}));
  EXPECT_EQ(ids({{"count_null", ""}}), V{2});
  EXPECT_EQ(ids({{"ratio_lt", "2"}}), (V{1, 2}));
  EXPECT_EQ(ids({{"created_gte", "1970-01-01T00:00:04Z"}}), (V{4, 5, 6}));
  EXPECT_EQ(ids({{"enabled", "true"}}), (V{1, 3, 5}));
  EXPECT_EQ(ids({{"enabled_ne", "true"}}), (V{2, 4, 6}));
  EXPECT_EQ(ids({{"id", "1w3"}, {"id", "1w5"}, {"id", "junk"}}), (V{3, 5}));
  EXPECT_EQ(ids({{"id", "junk"}}), V{});
  EXPECT_EQ(ids({{"id_ne", "1w3"}}), (V{1, 2, 4, 5, 6}));
  EXPECT_EQ(ids({{"id_prefix", "1w"}}), (V{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(ids({{"id_like", "%5"}}), V{5});
  EXPECT_EQ(ids({{"id_notlike", "1w_"}}), V{});
  EXPECT_EQ(ids({{"hostId", "1h7"}}), (V{1, 4}));
  EXPECT_EQ(ids({{"hostId", "1h7"}, {"hostId", "1h1"}}), (V{1, 4, 5}));
  EXPECT_EQ(ids({{"hostId_ne", "1h7"}}), (V{2, 3, 5, 6}));
  EXPECT_EQ(ids({{"hostId_null", ""}}), (V{3, 6}));
  EXPECT_EQ(ids({{"hostId_like", "%1%"}}), (V{2, 5}));
}

}  // namespace
}  // namespace paddock::server
