// The http module: routing, message helpers, and a live libmicrohttpd server on loopback with
// the features `hozo serve` will build on (HTML, cookies, form bodies, streamed responses).
#include "hozo/http/server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "hozo/util/strings.hpp"
#include "test_support.hpp"

namespace hozo::http {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string roundtrip(int port, const std::string& request, std::chrono::milliseconds limit = 3000ms) {
  return test::http_exchange(port, request, limit);
}

TEST(HttpRouter, MethodsParamsAndRest) {
  Router router;
  router.get("/ping", [](const Request&) { return Response::text(200, "pong"); });
  router.get("/disk/{dev}", [](const Request&) { return Response::text(200, "one"); });
  router.post("/disk/{dev}/spinup", [](const Request&) { return Response::text(200, "spin"); });
  // First match wins: the more specific pattern goes first.
  router.get("/files/{path*}/meta", [](const Request&) { return Response::text(200, "meta"); });
  router.get("/files/{path*}", [](const Request&) { return Response::text(200, "rest"); });
  auto m = router.match("GET", "/disk/sda");
  ASSERT_NE(m.handler, nullptr);
  EXPECT_EQ(m.params.at("dev"), "sda");
  m = router.match("GET", "/disk/..%2F..%2Fetc");
  ASSERT_NE(m.handler, nullptr);
  EXPECT_EQ(m.params.at("dev"), "../../etc");  // decoded after matching: one segment
  EXPECT_EQ(router.match("GET", "/disk/a/b").status, 404);
  m = router.match("GET", "/disk/sda/spinup");
  EXPECT_EQ(m.status, 405);
  EXPECT_EQ(m.allow, "POST");
  EXPECT_EQ(router.match("HEAD", "/ping").status, 200);
  m = router.match("GET", "/files/a/b/c");
  ASSERT_NE(m.handler, nullptr);
  EXPECT_EQ(m.params.at("path"), "a/b/c");
  m = router.match("GET", "/files/a/b/meta");
  EXPECT_EQ(m.params.at("path"), "a/b");
  EXPECT_EQ(router.match("GET", "/nope").status, 404);
}

TEST(HttpMessage, DecodingCookiesAndHeaders) {
  EXPECT_EQ(percent_decode("a%20b%2F"), std::optional<std::string>("a b/"));
  EXPECT_EQ(percent_decode("a+b", true), std::optional<std::string>("a b"));
  EXPECT_FALSE(percent_decode("%2").has_value());
  EXPECT_FALSE(percent_decode("%zz").has_value());
  const auto q = parse_query("a=1&b=x%20y&flag&c=%zz");
  ASSERT_EQ(q.size(), 4U);
  EXPECT_EQ(q[1].second, "x y");
  EXPECT_EQ(q[2].first, "flag");
  EXPECT_EQ(q[3].second, "%zz");
  const auto cookies = parse_cookies("session=abc; theme=\"dark\";bad; =x");
  ASSERT_EQ(cookies.size(), 2U);
  EXPECT_EQ(cookies[1].second, "dark");
  Response r = Response::html(200, "<p>x</p>");
  r.set_cookie("session", "abc123", CookieOptions{"/", 3600, true, true, "Strict"});
  r.set_cookie("bad name", "x");
  r.set_cookie("evil", "a;b");
  r.header("X-Injected", "a\r\nSet-Cookie: pwned=1");
  ASSERT_EQ(r.headers.size(), 1U);
  EXPECT_EQ(r.headers[0].second, "session=abc123; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Strict");
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abd", "abc"));
  EXPECT_FALSE(constant_time_equal("ab", "abc"));
  EXPECT_EQ(status_text(413), "Content Too Large");
}

class HttpServerTest : public ::testing::Test {
 protected:
  void start(Router router, Limits limits = {}) {
    ServerOptions options;
    options.limits = limits;
    options.access_log = [this](const AccessEntry& e) {
      std::lock_guard lock(mutex);
      log.push_back(e);
    };
    server = std::make_unique<Server>(std::move(router), std::move(options));
    auto started = server->start();
    ASSERT_TRUE(started.ok()) << started.error().message;
    port = *started;
  }
  std::vector<AccessEntry> entries() {
    std::lock_guard lock(mutex);
    return log;
  }
  std::unique_ptr<Server> server;
  int port = 0;
  std::mutex mutex;
  std::vector<AccessEntry> log;
};

TEST_F(HttpServerTest, HtmlCookiesFormsAndAccessLog) {
  Router router;
  router.get("/", [](const Request& req) {
    auto r = Response::html(200, "<h1>hello " + req.cookie("user").value_or("anon") + "</h1>");
    r.set_cookie("seen", "1");
    return r;
  });
  router.post("/login", [](const Request& req) {
    std::string user;
    for (const auto& [k, v] : req.form()) {
      if (k == "user") user = v;
    }
    return Response::json(200, nlohmann::json{{"user", user}, {"peer", req.peer}});
  });
  start(std::move(router));
  auto page = roundtrip(port, "GET / HTTP/1.1\r\nHost: x\r\nCookie: a=b; user=ann\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(test::http_status(page), 200) << page;
  EXPECT_NE(page.find("Content-Type: text/html; charset=utf-8"), std::string::npos) << page;
  EXPECT_NE(page.find("Set-Cookie: seen=1; Path=/; HttpOnly; SameSite=Strict"), std::string::npos) << page;
  EXPECT_NE(page.find("<h1>hello ann</h1>"), std::string::npos);
  const std::string body = "user=b%C3%B6b&x=1";
  auto login = roundtrip(port, "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                              "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
  EXPECT_EQ(test::http_status(login), 200) << login;
  EXPECT_NE(login.find(R"({"peer":"127.0.0.1","user":"böb"})"), std::string::npos) << login;
  std::this_thread::sleep_for(50ms);
  const auto e = entries();
  ASSERT_EQ(e.size(), 2U);
  EXPECT_EQ(e[0].method, "GET");
  EXPECT_EQ(e[0].peer, "127.0.0.1");
  EXPECT_EQ(e[1].path, "/login");
  EXPECT_EQ(e[1].status, 200);
}

TEST_F(HttpServerTest, StreamedBodyArrivesPieceByPiece) {
  Router router;
  router.get("/events", [](const Request&) {
    auto n = std::make_shared<int>(0);
    return Response::streamed(200, "text/event-stream", [n](std::string& out, std::size_t) {
      if (*n == 3) return false;
      std::this_thread::sleep_for(20ms);  // e.g. waiting for the next event
      out += "data: " + std::to_string((*n)++) + "\n\n";
      return true;
    });
  });
  start(std::move(router));
  const auto answer = roundtrip(port, "GET /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(test::http_status(answer), 200) << answer;
  EXPECT_NE(answer.find("Transfer-Encoding: chunked"), std::string::npos) << answer;
  EXPECT_NE(answer.find("data: 0\n\n"), std::string::npos);
  EXPECT_NE(answer.find("data: 2\n\n"), std::string::npos);
}

TEST_F(HttpServerTest, GuardRunsBeforeTheBodyAndLimitsHold) {
  std::atomic<int> handled{0};
  Router router;
  RouteOptions guarded;
  guarded.guard = [](const Request& req) -> std::optional<Response> {
    if (req.header("authorization") == std::optional<std::string>("Bearer ok")) return std::nullopt;
    return Response::json_error(401, "unauthorized");
  };
  guarded.max_body = 64;
  router.post("/act", [&](const Request& req) {
    handled.fetch_add(1);
    return Response::text(200, std::to_string(req.body.size()));
  }, guarded);
  Limits limits;
  limits.keep_alive_max = 2;
  start(std::move(router), limits);
  // 401 on the headers, with a huge declared body that is never sent.
  auto refused = roundtrip(port, "POST /act HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n");
  EXPECT_EQ(test::http_status(refused), 401) << refused;
  auto big = roundtrip(port, "POST /act HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ok\r\nContent-Length: 65\r\n\r\n" + std::string(65, 'a'));
  EXPECT_EQ(test::http_status(big), 413) << big;
  auto fine = roundtrip(port, "POST /act HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ok\r\nContent-Length: 64\r\nConnection: close\r\n\r\n" + std::string(64, 'a'));
  EXPECT_EQ(test::http_status(fine), 200) << fine;
  EXPECT_EQ(handled.load(), 1);
  // keep_alive_max 2: the second answer on a connection closes it.
  auto two = roundtrip(port, "POST /act HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ok\r\nContent-Length: 0\r\n\r\n"
                            "POST /act HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ok\r\nContent-Length: 0\r\n\r\n"
                            "POST /act HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ok\r\nContent-Length: 0\r\n\r\n");
  std::size_t answers = 0;
  for (auto pos = two.find("HTTP/1.1 200"); pos != std::string::npos; pos = two.find("HTTP/1.1 200", pos + 1)) ++answers;
  EXPECT_EQ(answers, 2U) << two;
  auto gz = roundtrip(port, "POST /act HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ok\r\nContent-Encoding: gzip\r\nContent-Length: 1\r\n\r\nx");
  EXPECT_EQ(test::http_status(gz), 415) << gz;
}

TEST_F(HttpServerTest, HandlerExceptionsAre500WithoutDetails) {
  Router router;
  router.get("/boom", [](const Request&) -> Response { throw std::runtime_error("secret detail"); });
  start(std::move(router));
  const auto answer = roundtrip(port, "GET /boom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(test::http_status(answer), 500);
  EXPECT_EQ(answer.find("secret detail"), std::string::npos);
}

TEST(HttpSocket, NotActivatedWithoutTheVariables) {
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  auto none = systemd_listen_socket();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ::setenv("LISTEN_PID", "1", 1);  // another process's sockets
  ::setenv("LISTEN_FDS", "1", 1);
  none = systemd_listen_socket();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
}

}  // namespace
}  // namespace hozo::http
