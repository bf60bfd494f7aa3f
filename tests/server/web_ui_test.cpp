#include "server/web_ui.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace paddock::server {
namespace {

namespace http = boost::beast::http;

TEST(PrefersHtml, BrowserNavigationWantsHtml) {
  EXPECT_TRUE(prefers_html("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"));
  EXPECT_TRUE(prefers_html("text/html"));
  EXPECT_TRUE(prefers_html(" TEXT/HTML ; q=1.0 , application/json;q=0.5"));
}

TEST(PrefersHtml, ClientsAndFetchStayJson) {
  EXPECT_FALSE(prefers_html(""));
  EXPECT_FALSE(prefers_html("*/*"));
  EXPECT_FALSE(prefers_html("application/json"));
  EXPECT_FALSE(prefers_html("application/json, text/html"));          // a tie keeps JSON
  EXPECT_FALSE(prefers_html("text/html;q=0.5, application/json"));
  EXPECT_FALSE(prefers_html("text/html;q=0, */*"));
  EXPECT_FALSE(prefers_html("text/html;q=0.4, application/*;q=0.6"));
  EXPECT_FALSE(prefers_html("text/*"));                                // only text/html by name
}

TEST(PrefersHtml, MostSpecificJsonRangeDecides) {
  // application/json;q=0.1 outranks */* for JSON, so HTML at 0.5 wins.
  EXPECT_TRUE(prefers_html("application/json;q=0.1, text/html;q=0.5, */*"));
}

TEST(PrefersHtml, MalformedQualityIsNotAcceptable) {
  EXPECT_FALSE(prefers_html("text/html;q=abc"));
  EXPECT_FALSE(prefers_html("text/html;q=2"));
  EXPECT_FALSE(prefers_html(",,;;q=,text/html;q=0.x"));
}

TEST(AssetContentType, KnownExtensionsOfPlainNames) {
  EXPECT_EQ(asset_content_type("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(asset_content_type("app/main.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(asset_content_type("vendor/xterm/xterm.mjs"), "text/javascript; charset=utf-8");
  EXPECT_EQ(asset_content_type("style.css"), "text/css; charset=utf-8");
  EXPECT_EQ(asset_content_type("icon.svg"), "image/svg+xml");
}

TEST(AssetContentType, TraversalAndOddNamesAreRefused) {
  for (const char* bad : {"", "..", "../etc/passwd", "app/../../x.js", "/abs.js", "a//b.js", ".hidden.js",
                          "app/.x/y.js", "x.js/", "a\\b.js", "a b.js", "x.sh", "noext", "x.js%00.css",
                          "dir.js/file", "x.map"}) {
    EXPECT_FALSE(asset_content_type(bad)) << bad;
  }
}

class WebUiDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("paddock-web-ui-test-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "web" / "app");
    write(dir_ / "web" / "index.html", "<!doctype html><title>ui</title>");
    write(dir_ / "web" / "app" / "main.js", "export {};");
    write(dir_ / "web" / "notes.sh", "echo no");
    write(dir_ / "secret.js", "outside");
    std::filesystem::create_symlink(dir_ / "secret.js", dir_ / "web" / "app" / "link.js");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  static void write(const std::filesystem::path& p, const std::string& text) { std::ofstream(p) << text; }
  static HttpRequest get(const std::string& target) {
    HttpRequest req{http::verb::get, target, 11};
    return req;
  }
  std::filesystem::path dir_;
};

TEST_F(WebUiDir, ServesAllowedFilesWithHeaders) {
  WebUi ui(dir_ / "web");
  ASSERT_TRUE(ui.available());
  auto req = get("/ui/app/main.js");
  auto res = ui.asset(req, "app/main.js");
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), "export {};");
  EXPECT_EQ(res[http::field::content_type], "text/javascript; charset=utf-8");
  EXPECT_EQ(res["X-Content-Type-Options"], "nosniff");
  EXPECT_NE(res["Content-Security-Policy"].find("script-src 'self'"), std::string::npos);
  EXPECT_EQ(res["Content-Security-Policy"].find("unsafe-eval"), std::string::npos);

  auto again = get("/ui/app/main.js");
  again.set(http::field::if_none_match, res[http::field::etag]);
  EXPECT_EQ(ui.asset(again, "app/main.js").result_int(), 304);
}

TEST_F(WebUiDir, SymlinksUnknownTypesAndTraversalAre404) {
  WebUi ui(dir_ / "web");
  for (const char* path : {"app/link.js", "notes.sh", "../secret.js", "app/../index.html", "missing.js"}) {
    auto req = get(std::string("/ui/") + path);
    EXPECT_EQ(ui.asset(req, path).result_int(), 404) << path;
  }
}

TEST_F(WebUiDir, PageAndChallenge) {
  WebUi ui(dir_ / "web");
  auto req = get("/v1/hosts");
  auto page = ui.page(req, 200);
  EXPECT_EQ(page.result_int(), 200);
  EXPECT_EQ(page.body(), "<!doctype html><title>ui</title>");
  EXPECT_TRUE(page[http::field::www_authenticate].empty());
  auto challenge = ui.page(req, 401);
  EXPECT_EQ(challenge.result_int(), 401);
  EXPECT_EQ(challenge[http::field::www_authenticate], "Basic realm=\"paddock\"");
  EXPECT_EQ(challenge.body(), page.body());
}

TEST_F(WebUiDir, MissingDirectoryOrIndexServesNothing) {
  EXPECT_FALSE(WebUi(dir_ / "nowhere").available());
  EXPECT_FALSE(WebUi(dir_ / "web" / "app").available());
  EXPECT_FALSE(WebUi("").available());
}

}  // namespace
}  // namespace paddock::server
