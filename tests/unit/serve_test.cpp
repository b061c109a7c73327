// hozo serve: escaping, metrics format, auth (password, sessions, CSRF, rate limit) and the
// dashboard's routes called through the router (guards first, like the server does).
#include "hozo/serve/serve.hpp"

#include <crypt.h>

#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "hozo/config.hpp"
#include "hozo/serve/auth.hpp"
#include "hozo/serve/html.hpp"
#include "hozo/serve/metrics.hpp"
#include "hozo/serve/view.hpp"
#include "hozo/state.hpp"
#include "hozo/util/strings.hpp"
#include "test_support.hpp"

namespace hozo::serve {
namespace {

using http::Request;
using http::Response;

TEST(ServeHtml, EscapesEveryContextCharacter) {
  EXPECT_EQ(escape_html("<script>alert('x')</script>&\""), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;");
  EXPECT_EQ(escape_html("ok ünïcode"), "ok ünïcode");
  EXPECT_EQ(escape_html(std::string("a\xff" "b\x01" "c\n", 6)), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c\n");
  EXPECT_EQ(escape_html("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate is not UTF-8
  EXPECT_EQ(url_component("a b/../c?d=\"e\""), "a%20b%2F..%2Fc%3Fd%3D%22e%22");
}

TEST(ServeHtml, SparklineAndFormats) {
  EXPECT_EQ(sparkline_svg({1.0}, 100, 20, "x"), "");
  const auto svg = sparkline_svg({1, 5, 3}, 100, 20, "<t>");
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
  EXPECT_NE(svg.find("&lt;t&gt;"), std::string::npos);
  EXPECT_EQ(svg.find("<t>"), std::string::npos);
  EXPECT_EQ(short_duration(42), "42s");
  EXPECT_EQ(short_duration(3 * 3600 + 120), "3h 2m");
  EXPECT_EQ(bytes_text(std::nullopt), "-");
  EXPECT_EQ(bytes_text(1536), "1.5 KiB");
}

TEST(ServeMetrics, PrometheusTextFormat) {
  auto config = parse_config(R"(
jobs:
  - name: "a"
    source_dataset: tank/a
    target_dataset: backup/a
    target_host: 127.0.0.1
    wol: false
  - name: "b"
    source_dataset: tank/b
    target_dataset: backup/b
    target_host: 127.0.0.1
    wol: false
)", "t.yaml");
  ASSERT_TRUE(config) << config.error().message;
  std::map<std::string, JobState> states;
  RunRecord ok;
  ok.run_id = "20261124T080000Z-1";
  ok.job = "a";
  ok.started = "2026-11-24T08:00:00Z";
  ok.finished = "2026-11-24T08:01:00Z";
  ok.duration_seconds = 60;
  ok.outcome = RunOutcome::success;
  ok.extra["bytes"] = 1234;
  RunRecord bad = ok;
  bad.run_id = "20261124T090000Z-2";
  bad.outcome = RunOutcome::failed;
  states["a"].runs = {ok, bad};
  const auto text = render_metrics(make_job_views(*config, states, std::chrono::system_clock::now()));
  // Every line is a comment or NAME{LABELS} VALUE; every family has HELP and TYPE before its samples.
  const std::regex sample(R"(^(hozo_[a-z_]+)\{job="[^"\\]*"(,outcome="[a-z]+")?\} -?[0-9.e+]+$)");
  std::set<std::string> typed;
  for (const auto line : split_lines(text)) {
    const std::string l(line);
    if (starts_with(l, "# TYPE ")) {
      typed.insert(l.substr(7, l.find(' ', 7) - 7));
      continue;
    }
    if (starts_with(l, "# HELP ")) continue;
    std::smatch m;
    ASSERT_TRUE(std::regex_match(l, m, sample)) << l;
    EXPECT_TRUE(typed.contains(m[1])) << "no TYPE before " << l;
  }
  EXPECT_NE(text.find("hozo_last_success_timestamp_seconds{job=\"a\"} 1795507260"), std::string::npos) << text;
  EXPECT_NE(text.find("hozo_last_success_timestamp_seconds{job=\"b\"} 0"), std::string::npos);
  EXPECT_NE(text.find("hozo_last_run_success{job=\"a\"} 0"), std::string::npos);
  EXPECT_NE(text.find("hozo_last_run_bytes{job=\"a\"} 1234"), std::string::npos);
  EXPECT_NE(text.find("hozo_runs_total{job=\"a\",outcome=\"success\"} 1"), std::string::npos);
  EXPECT_NE(text.find("hozo_runs_total{job=\"a\",outcome=\"failed\"} 1"), std::string::npos);
  EXPECT_NE(text.find("hozo_running{job=\"b\"} 0"), std::string::npos);
  EXPECT_EQ(prometheus_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

std::string make_hash(const char* password) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  EXPECT_NE(crypt_gensalt_rn("$y$", 0, nullptr, 0, salt, sizeof(salt)), nullptr);
  crypt_data data{};
  const char* h = crypt_r(password, salt, &data);
  return h == nullptr ? std::string() : std::string(h);
}

Request post(std::string path, std::string body = {}) {
  Request r;
  r.method = "POST";
  r.path = r.target = std::move(path);
  r.peer = "127.0.0.1";
  r.headers = {{"host", "127.0.0.1:8000"}, {"content-type", "application/x-www-form-urlencoded"}};
  r.body = std::move(body);
  return r;
}

TEST(ServeAuth, PasswordSessionsCsrfAndRateLimit) {
  const auto hash = make_hash("correct horse");
  ASSERT_TRUE(starts_with(hash, "$y$")) << hash;
  EXPECT_TRUE(check_password("correct horse", hash));
  EXPECT_FALSE(check_password("wrong", hash));
  EXPECT_FALSE(check_password("correct horse", "*"));
  EXPECT_FALSE(check_password("", hash));

  Auth auth(AuthSettings{hash, Secret("tok-123"), std::chrono::seconds(3600), true});
  EXPECT_TRUE(auth.enabled());
  Request anon;
  anon.headers = {{"host", "h"}};
  EXPECT_FALSE(auth.identify(anon).authenticated);
  Request bearer = anon;
  bearer.headers.push_back({"authorization", "Bearer tok-123"});
  EXPECT_TRUE(auth.identify(bearer).bearer);
  bearer.headers.back().second = "Bearer nope";
  EXPECT_FALSE(auth.identify(bearer).authenticated);

  std::string session;
  EXPECT_EQ(auth.login("correct horse", "10.0.0.1", session), LoginResult::ok);
  ASSERT_EQ(session.size(), 64U);
  Request with_cookie = post("/jobs/x/run");
  with_cookie.headers.push_back({"cookie", std::string(kSessionCookie) + "=" + session});
  const auto who = auth.identify(with_cookie);
  ASSERT_TRUE(who.authenticated);
  EXPECT_FALSE(who.bearer);
  // POST: CSRF token and same origin, both needed.
  EXPECT_FALSE(auth.post_allowed(with_cookie, who));
  with_cookie.body = "csrf=" + who.csrf;
  EXPECT_FALSE(auth.post_allowed(with_cookie, who));  // no Origin / Sec-Fetch-Site
  with_cookie.headers.push_back({"origin", "http://evil.example"});
  EXPECT_FALSE(auth.post_allowed(with_cookie, who));
  with_cookie.headers.back().second = "http://127.0.0.1:8000";
  EXPECT_TRUE(auth.post_allowed(with_cookie, who));
  with_cookie.headers.push_back({"sec-fetch-site", "cross-site"});
  EXPECT_FALSE(auth.post_allowed(with_cookie, who));
  EXPECT_TRUE(auth.cookie_options().secure);
  EXPECT_TRUE(auth.cookie_options().http_only);
  EXPECT_EQ(auth.cookie_options().same_site, "Strict");

  // Five failures from one peer lock it out, even for the right password; others are not affected.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(auth.login("guess", "10.0.0.2", session), LoginResult::wrong);
  EXPECT_EQ(auth.login("correct horse", "10.0.0.2", session), LoginResult::rate_limited);
  EXPECT_GT(auth.retry_after("10.0.0.2"), 0);
  EXPECT_EQ(auth.login("correct horse", "10.0.0.3", session), LoginResult::ok);
}

TEST(ServeExposure, RefusesOpenNonLoopback) {
  ServeSettings s;
  EXPECT_TRUE(check_exposure("127.0.0.1", s, ""));
  EXPECT_TRUE(check_exposure("::1", s, ""));
  const auto refused = check_exposure("0.0.0.0", s, "");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("serve.password_hash_file"), std::string::npos);
  EXPECT_TRUE(check_exposure("0.0.0.0", s, "$y$j9T$abc$def"));
  s.token = Secret("t");
  EXPECT_TRUE(check_exposure("192.0.2.1", s, ""));
}

/// A dashboard over a real config file and state file, called through its router.
class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    token_file_ = dir_.write("agent.token", "agent-secret-token-value\n");
    config_path_ = dir_.write("hozo.yaml", R"(
settings:
  notifications:
    ntfy_topic: topic
    ntfy_token: ntfy-secret-token-value
jobs:
  - name: nightly
    description: "<script>alert('job')</script>"
    source_dataset: tank/data
    target_dataset: backup/data
    target_host: 127.0.0.1
    wol: false
    agent:
      url: http://127.0.0.1:9999
      token_file: )" + token_file_.string() + "\n");
    auto store = StateStore::open(dir_.path() / "state" / "state.json");
    ASSERT_TRUE(store);
    auto run = store->begin_run("nightly");
    ASSERT_TRUE(run);
    run->outcome = RunOutcome::success;
    run->stages.push_back(StageTiming{"sync", run->started, 2.5, true, "ok", {}});
    run_id_ = run->run_id;
    ASSERT_TRUE(store->finish_run(*run));
    std::filesystem::create_directories(std::filesystem::path(run->log_file).parent_path());
    std::ofstream(run->log_file) << "line one\n<img src=x onerror=alert(1)>\n";
    auto config = load_config(config_path_);
    ASSERT_TRUE(config) << config.error().message;
    dashboard_ = std::make_unique<Dashboard>(std::move(*config), "",
                                             DashboardOptions{config_path_, store->path(), "/bin/false",
                                                              DashboardOptions::Runner::process});
    router_ = dashboard_->routes();
  }

  Response call(Request req) {
    if (req.target.empty()) req.target = req.path;
    if (req.peer.empty()) req.peer = "127.0.0.1";
    const auto q = req.target.find('?');
    if (q != std::string::npos) {
      req.path = req.target.substr(0, q);
      req.query = http::parse_query(req.target.substr(q + 1));
    }
    const auto m = router_.match(req.method, req.path);
    if (m.handler == nullptr) return Response::text(m.status, "");
    req.params = m.params;
    if (m.options->guard) {
      if (auto refused = m.options->guard(req)) return *refused;
    }
    return (*m.handler)(req);
  }

  Response get(const std::string& target) {
    Request r;
    r.method = "GET";
    r.target = target;
    r.path = target;
    r.headers = {{"host", "127.0.0.1:8000"}};
    return call(r);
  }

  test::TempDir dir_;
  std::filesystem::path token_file_;
  std::filesystem::path config_path_;
  std::string run_id_;
  std::unique_ptr<Dashboard> dashboard_;
  http::Router router_;
};

bool has_header(const Response& r, const std::string& name, const std::string& value) {
  return std::any_of(r.headers.begin(), r.headers.end(), [&](const auto& kv) { return kv.first == name && kv.second == value; });
}

TEST_F(DashboardTest, PagesEscapeAndMaskAndCarryTheCsp) {
  for (const std::string& target : std::vector<std::string>{"/", "/jobs/nightly", "/jobs/nightly/runs/" + run_id_}) {
    const auto r = get(target);
    ASSERT_EQ(r.status, 200) << target << r.body;
    EXPECT_TRUE(has_header(r, "Content-Security-Policy",
                           "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"));
    EXPECT_EQ(r.body.find("<script>alert"), std::string::npos) << target;
    EXPECT_EQ(r.body.find("<img src=x"), std::string::npos) << target;
    EXPECT_EQ(r.body.find("<script>"), std::string::npos) << target;  // no inline script at all
    EXPECT_EQ(r.body.find("secret-token-value"), std::string::npos) << target;
    EXPECT_EQ(r.body.find(" style="), std::string::npos) << target;
  }
  EXPECT_NE(get("/").body.find("&lt;script&gt;alert(&#39;job&#39;)"), std::string::npos);
  EXPECT_NE(get("/jobs/nightly/runs/" + run_id_).body.find("&lt;img src=x onerror=alert(1)&gt;"), std::string::npos);
  EXPECT_NE(get("/jobs/nightly").body.find("********"), std::string::npos);
}

TEST_F(DashboardTest, ApiDocumentsAndValidation) {
  auto r = get("/api/v1/jobs");
  ASSERT_EQ(r.status, 200);
  auto j = nlohmann::json::parse(r.body);
  ASSERT_EQ(j.size(), 1U);
  EXPECT_EQ(j[0]["last"]["outcome"], "success");
  r = get("/api/v1/jobs/nightly/runs?page=1&per_page=1");
  ASSERT_EQ(r.status, 200);
  j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["total"], 1);
  EXPECT_EQ(j["runs"][0]["run_id"], run_id_);
  r = get("/api/v1/jobs/nightly/runs/" + run_id_ + "/log?offset=5&length=3");
  ASSERT_EQ(r.status, 200) << r.body;
  j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["text"], "one");
  EXPECT_EQ(j["next_offset"], 8);
  EXPECT_EQ(get("/api/v1/jobs/nightly/config").body.find("secret-token-value"), std::string::npos);
  EXPECT_EQ(get("/api/v1/jobs/nosuch").status, 404);
  EXPECT_EQ(get("/api/v1/jobs/nightly/runs/..%2F..%2Fetc%2Fpasswd").status, 400);
  EXPECT_EQ(get("/jobs/nightly/runs/..").status, 400);
  EXPECT_EQ(get("/jobs/nightly/runs/20990101T000000Z-1").status, 404);
  EXPECT_EQ(get("/healthz").status, 200);
  r = get("/metrics");
  EXPECT_EQ(r.content_type, std::string(kMetricsContentType));
  EXPECT_NE(r.body.find("hozo_last_run_success{job=\"nightly\"} 1"), std::string::npos);
}

TEST_F(DashboardTest, PostsNeedCsrfAndSameOrigin) {
  auto page = get("/jobs/nightly");
  const std::regex token_re("name=\"csrf\" value=\"([0-9a-f]{64})\"");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(page.body, m, token_re));
  const std::string csrf = m[1];
  auto req = post("/jobs/nightly/dry-run");
  EXPECT_EQ(call(req).status, 403);  // no token
  req.body = "csrf=" + csrf;
  EXPECT_EQ(call(req).status, 403);  // no Origin
  req.headers.push_back({"origin", "http://attacker.example"});
  EXPECT_EQ(call(req).status, 403);
  req.headers.back().second = "http://127.0.0.1:8000";
  const auto ok = call(req);
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_NE(ok.body.find("Dry run"), std::string::npos);
  req.body = "csrf=" + std::string(64, '0');
  EXPECT_EQ(call(req).status, 403);
  req.body = "csrf=" + csrf;
  req.path = req.target = "/jobs/nightly/format-disk";
  EXPECT_EQ(call(req).status, 404);
}

}  // namespace
}  // namespace hozo::serve
