#include "hozo/agent.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <chrono>
#include <string>
#include <thread>

#include "hozo/http/server.hpp"

namespace hozo {
namespace {

using namespace std::chrono_literals;

TEST(AgentParse, Ping) {
  auto ping = parse_agent_ping(R"({"status":"ok","uptime":12,"version":"0.1.0"})");
  ASSERT_TRUE(ping.ok());
  EXPECT_EQ(ping->uptime, 12);
  EXPECT_EQ(ping->version, "0.1.0");
  EXPECT_FALSE(parse_agent_ping(R"({"status":1,"uptime":12})").ok());
  EXPECT_FALSE(parse_agent_ping(R"({"status":"ok"})").ok());
  EXPECT_FALSE(parse_agent_ping(R"({"status":"ok","uptime":"12"})").ok());
}

TEST(AgentParse, GarbageNeverCrashes) {
  const std::vector<std::string> garbage = {"",
                                            "not json",
                                            "<html>502 Bad Gateway</html>",
                                            "[]",
                                            "null",
                                            "42",
                                            "\"string\"",
                                            "{",
                                            R"({"pools":{}})",
                                            R"({"pools":[1,2]})",
                                            R"({"pools":[{"name":"x"}]})",
                                            R"({"pools":[{"name":"x","health":"ONLINE","size":-1,"alloc":0,"free":0}]})",
                                            R"({"pools":[],"load":["x"]})",
                                            R"({"pools":[],"receive_running":"yes"})",
                                            R"({"device":"sda","state":"spinning"})",
                                            R"({"device":5,"state":"active"})",
                                            std::string("\xff\xfe\x00\x01", 4),
                                            std::string(100000, '[')};
  for (const auto& body : garbage) {
    EXPECT_FALSE(parse_agent_status(body).ok()) << body.substr(0, 60);
    EXPECT_FALSE(parse_agent_disk(body).ok()) << body.substr(0, 60);
    EXPECT_FALSE(parse_agent_spinup(body).ok()) << body.substr(0, 60);
    EXPECT_FALSE(parse_agent_ping(body).ok()) << body.substr(0, 60);
  }
  // Valid for /spinup (extra fields are ignored), wrong for /disk.
  EXPECT_FALSE(parse_agent_disk(R"({"device":"sda","state":"active","rotational":"yes"})").ok());
  EXPECT_FALSE(parse_agent_disk(R"({"device":"sda","state":"active","reads":-5})").ok());
  auto err = parse_agent_status("<html>502 Bad Gateway</html>");
  EXPECT_NE(err.error().message.find("not JSON"), std::string::npos);
}

TEST(AgentParse, StatusDiskSpinup) {
  auto status = parse_agent_status(
      R"({"pools":[{"name":"backup","health":"ONLINE","size":262144000,"alloc":1,"free":2,"state":"ONLINE",)"
      R"("scan":"none requested","errors":"No known data errors"}],"uptime":12.5,"load":[0.1,0.2,0.3],)"
      R"("receive_running":false,"version":"0.1.0"})");
  ASSERT_TRUE(status.ok()) << status.error().message;
  ASSERT_NE(status->find_pool("backup"), nullptr);
  EXPECT_EQ(status->find_pool("backup")->size, 262144000U);
  EXPECT_EQ(status->find_pool("nope"), nullptr);
  EXPECT_EQ(status->load.size(), 3U);
  auto disk = parse_agent_disk(R"({"device":"sda","path":"/dev/sda","state":"standby","rotational":true,"reads":5})");
  ASSERT_TRUE(disk.ok());
  EXPECT_EQ(disk->state, SpinState::standby);
  EXPECT_EQ(disk->reads, std::optional<std::uint64_t>(5U));
  auto disk_nulls = parse_agent_disk(R"({"device":"sda","state":"unknown","rotational":null,"reads":null})");
  ASSERT_TRUE(disk_nulls.ok());
  EXPECT_FALSE(disk_nulls->rotational.has_value());
  auto spin = parse_agent_spinup(R"({"device":"sda","before":"standby","state":"active","waited_ms":4200})");
  ASSERT_TRUE(spin.ok());
  EXPECT_EQ(spin->waited_ms, 4200);
  EXPECT_EQ(spin->before, SpinState::standby);
}

/// A misbehaving "agent" on loopback (served by the http module).
class BadAgent : public ::testing::Test {
 protected:
  void SetUp() override {
    using http::Request;
    using http::Response;
    http::Router router;
    router.get("/ping", [](const Request&) { return Response::html(200, "<html>hello</html>"); });
    router.get("/status", [](const Request&) {
      auto res = Response::text(200, std::string(4 << 20, 'x'));
      res.content_type = "application/json";
      return res;
    });
    router.get("/disk/sda", [](const Request&) {
      std::this_thread::sleep_for(3s);
      return Response::json(200, nlohmann::json::object());
    });
    // 400 as backupd answers for a device that does not exist.
    router.get("/disk/sdz", [](const Request&) { return Response::json_error(400, "no block device sdz"); });
    router.get("/disk/sdy", [](const Request&) { return Response::json_error(503, "busy"); });
    router.get("/disk/sdb", [](const Request&) {
      return Response::json(200, nlohmann::json{{"device", "sdb"}, {"path", "/dev/sdb"}, {"state", "standby"}});
    });
    router.post("/shutdown", [this](const Request& req) {
      std::lock_guard lock(mutex);
      last_auth = req.header("authorization").value_or("");
      return Response::json_error(500, "disk on fire");
    });
    http::ServerOptions options;
    options.access_log = [](const http::AccessEntry&) {};
    server = std::make_unique<http::Server>(std::move(router), std::move(options));
    auto started = server->start();
    ASSERT_TRUE(started.ok()) << started.error().message;
    port = *started;
  }
  void TearDown() override { server->stop(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }

  std::unique_ptr<http::Server> server;
  int port = 0;
  std::mutex mutex;
  std::string last_auth;
};

TEST_F(BadAgent, HtmlInsteadOfJson) {
  AgentClient client(url(), Secret("tok-0123456789abcdef"));
  auto ping = client.ping();
  ASSERT_FALSE(ping.ok());
  EXPECT_NE(ping.error().message.find("not JSON"), std::string::npos) << ping.error().message;
}

TEST_F(BadAgent, HugeAnswerIsCapped) {
  AgentClient client(url(), Secret("tok-0123456789abcdef"));
  auto status = client.status();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().message.find("larger than"), std::string::npos) << status.error().message;
}

TEST_F(BadAgent, SlowAnswerTimesOut) {
  AgentClientOptions options;
  options.request_timeout = 500ms;
  AgentClient client(url(), Secret("tok-0123456789abcdef"), options);
  const auto t0 = std::chrono::steady_clock::now();
  auto disk = client.disk_state("sda");
  ASSERT_FALSE(disk.ok());
  EXPECT_EQ(disk.error().code, ExitCode::unavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

TEST_F(BadAgent, ServerErrorMessageAndTokenHandling) {
  AgentClient client(url() + "/", Secret("tok-0123456789abcdef"));
  auto down = client.shutdown(true);
  ASSERT_FALSE(down.ok());
  EXPECT_NE(down.error().message.find("HTTP 500: disk on fire"), std::string::npos) << down.error().message;
  EXPECT_EQ(down.error().message.find("tok-0123456789abcdef"), std::string::npos);
  EXPECT_EQ(last_auth, "Bearer tok-0123456789abcdef");
}

TEST_F(BadAgent, FindDiskTellsMissingFromBroken) {
  AgentClient client(url(), Secret("tok-0123456789abcdef"));
  auto missing = client.find_disk("sdz");
  ASSERT_TRUE(missing.ok()) << missing.error().message;
  EXPECT_FALSE(missing->has_value());
  auto broken = client.find_disk("sdy");  // anything but 400 is an Error (the caller falls back)
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.error().message.find("HTTP 503"), std::string::npos) << broken.error().message;
  auto there = client.find_disk("/dev/sdb");
  ASSERT_TRUE(there.ok()) << there.error().message;
  ASSERT_TRUE(there->has_value());
  EXPECT_EQ((*there)->state, SpinState::standby);
}

TEST(AgentClientTest, RefusedAndBadUrls) {
  // A port nothing listens on (bind, read the port, close).
  int free_port = 0;
  {
    http::Server probe(http::Router{}, http::ServerOptions{});
    auto started = probe.start();
    ASSERT_TRUE(started.ok());
    free_port = *started;
  }
  AgentClient client("http://127.0.0.1:" + std::to_string(free_port), Secret("tok-0123456789abcdef"));
  auto ping = client.ping();
  ASSERT_FALSE(ping.ok());
  EXPECT_EQ(ping.error().code, ExitCode::unavailable);
  EXPECT_FALSE(AgentClient("file:///etc/passwd", Secret()).ping().ok());
  EXPECT_FALSE(AgentClient("gopher://x", Secret()).ping().ok());
  // Protected calls without a token fail before any network traffic.
  auto no_token = AgentClient("http://127.0.0.1:1", Secret()).status();
  ASSERT_FALSE(no_token.ok());
  EXPECT_NE(no_token.error().message.find("no token"), std::string::npos);
  EXPECT_FALSE(client.disk_state("sda/../../x").ok());
  EXPECT_FALSE(client.spinup("/dev/disk/by-id/../../sda", 1s).ok());
}

}  // namespace
}  // namespace hozo
