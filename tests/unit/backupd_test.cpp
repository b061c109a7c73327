#include "hozo/backupd.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "hozo/agent.hpp"
#include "hozo/util/strings.hpp"
#include "test_support.hpp"

namespace hozo {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kToken = "test-token-0123456789abcdef";

/// Thread-safe fake runner: records every argv and answers through `answer`.
class RecordingRunner final : public CommandRunner {
 public:
  std::function<CommandOutput(const std::vector<std::string>&)> answer;

  Result<CommandOutput> run(const std::vector<std::string>& argv, std::chrono::seconds /*timeout*/) override {
    {
      std::lock_guard lock(mutex_);
      calls_.push_back(join(argv, " "));
    }
    if (answer) return answer(argv);
    return CommandOutput{0, "", ""};
  }
  [[nodiscard]] std::string where() const override { return "recording"; }
  std::vector<std::string> calls() {
    std::lock_guard lock(mutex_);
    return calls_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> calls_;
};

long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (starts_with(line, "VmRSS:")) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

using test::connect_loopback;

/// Sends `request` verbatim and returns everything the server sent until it closed (or 5 s).
std::string raw_exchange(int port, const std::string& request) { return test::http_exchange(port, request, 5s); }

class BackupdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    namespace fs = std::filesystem;
    config.listen_host = "127.0.0.1";
    config.listen_port = 0;
    config.export_pools = {"tank", "backup"};
    config.shutdown_command = {"fake-shutdown", "-h", "now"};
    config.shutdown_delay = 0s;
    config.read_timeout = 1s;
    config.request_timeout = 2s;
    config.max_connections_per_ip = 64;
    config.spinup_timeout = 5s;
    config.disk.sys_block = dir.path() / "sys" / "block";
    config.disk.dev = dir.path() / "dev";
    config.disk.require_block_special = false;
    config.proc_root = dir.path() / "proc";
    fs::create_directories(config.disk.sys_block / "sda" / "queue");
    fs::create_directories(config.disk.dev / "disk" / "by-id");
    fs::create_directories(config.proc_root);
    put(config.disk.sys_block / "sda" / "queue" / "rotational", "1\n");
    put(config.disk.sys_block / "sda" / "stat", "   12345 0 0 0 0 0 0 0 0 0 0\n");
    put(config.disk.dev / "sda", "");
    fs::create_symlink("../../sda", config.disk.dev / "disk" / "by-id" / "ata-DISK_1");
    put(config.proc_root / "uptime", "1234.56 999.0\n");
    put(config.proc_root / "loadavg", "0.50 0.25 0.10 1/100 4242\n");

    runner.answer = [this](const std::vector<std::string>& argv) { return answer(argv); };
  }
  void TearDown() override {
    if (server) server->stop();
  }

  static void put(const std::filesystem::path& p, const std::string& content) {
    std::ofstream(p, std::ios::binary) << content;
  }

  CommandOutput answer(const std::vector<std::string>& argv) {
    const std::string cmd = join(argv, " ");
    if (starts_with(cmd, "zpool list -H -p")) return {2, "", "invalid option 'p'\nusage:\n\tlist [-H]\n"};
    if (starts_with(cmd, "zpool list -H")) return {0, "tank\tONLINE\t250M\t2.81M\t247M\nbackup\tDEGRADED\t1.00T\t512G\t512G\n", ""};
    if (starts_with(cmd, "zpool status")) {
      return {0, "  pool: " + argv[2] + "\n state: ONLINE\n scrub: none requested\nconfig:\n\nerrors: No known data errors\n", ""};
    }
    if (starts_with(cmd, "hdparm -C")) {
      const bool up = spun_up.load();
      return {0, "\n" + argv[2] + ":\n drive state is:  " + (up ? "active/idle" : "standby") + "\n", ""};
    }
    return {0, "", ""};
  }

  int start(Secret token = Secret(kToken)) {
    BackupdDeps deps;
    deps.runner = &runner;
    deps.receive_running = [this] { return receive_running.load(); };
    deps.spinup_read = [this](const BlockDevice& dev) -> Result<void> {
      spinup_reads.fetch_add(1);
      spun_up = dev.name == "sda";
      return ok();
    };
    deps.sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(std::min(d, std::chrono::milliseconds(50))); };
    server = std::make_unique<BackupdServer>(config, std::move(token), std::move(deps));
    auto port = server->start();
    EXPECT_TRUE(port.ok()) << (port.ok() ? "" : port.error().message);
    return port.ok() ? *port : 0;
  }

  std::string url(int port) const { return "http://127.0.0.1:" + std::to_string(port); }

  test::TempDir dir{"hozo-backupd"};
  BackupdConfig config;
  RecordingRunner runner;
  std::atomic<bool> receive_running{false};
  std::atomic<bool> spun_up{false};
  std::atomic<int> spinup_reads{0};
  std::unique_ptr<BackupdServer> server;
};

TEST_F(BackupdTest, PingNeedsNoToken) {
  const int port = start();
  AgentClient anon(url(port), Secret());
  auto ping = anon.ping();
  ASSERT_TRUE(ping.ok()) << ping.error().message;
  EXPECT_EQ(ping->status, "ok");
  EXPECT_FALSE(ping->version.empty());
  EXPECT_TRUE(runner.calls().empty());
}

TEST_F(BackupdTest, EveryProtectedRouteNeedsTheToken) {
  const int port = start();
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"GET", "/status"}, {"POST", "/shutdown"}, {"POST", "/shutdown?force=1"}, {"GET", "/disk/sda"},
      {"POST", "/disk/sda/spinup"}, {"GET", "/disk/by-id?id=ata-DISK_1"}, {"GET", "/disk/..%2f..%2fetc%2fpasswd"}};
  const std::vector<std::string> auth_headers = {
      "",
      "Authorization: Bearer wrong-token-0123456789abcd\r\n",
      std::string("Authorization: Bearer ") + std::string(kToken).substr(0, 10) + "\r\n",
      std::string("Authorization: Bearer ") + kToken + "x\r\n",
      std::string("Authorization: Basic ") + kToken + "\r\n",
      std::string("Authorization: ") + kToken + "\r\n",
      "Authorization: Bearer \r\n"};
  for (const auto& [method, path] : routes) {
    for (const auto& auth : auth_headers) {
      const auto answer = raw_exchange(
          port, method + " " + path + " HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 0\r\nConnection: close\r\n\r\n");
      EXPECT_EQ(test::http_status(answer), 401) << method << " " << path << " with '" << auth << "'";
    }
  }
  EXPECT_TRUE(runner.calls().empty());
  EXPECT_FALSE(server->shutdown_requested());
  // The AgentClient maps it to a clear error.
  AgentClient wrong(url(port), Secret("wrong-token-0123456789abcd"));
  auto status = wrong.status();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().message.find("401"), std::string::npos);
  EXPECT_EQ(status.error().message.find("wrong-token"), std::string::npos);
}

TEST_F(BackupdTest, NoTokenConfiguredDisablesProtectedRoutes) {
  const int port = start(Secret());
  AgentClient client(url(port), Secret(kToken));
  EXPECT_TRUE(client.ping().ok());
  auto status = client.status();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().message.find("401"), std::string::npos);
  EXPECT_FALSE(client.shutdown(true).ok());
  EXPECT_TRUE(runner.calls().empty());
}

TEST_F(BackupdTest, TraversalAndInjectionInDeviceAre400AndRunNothing) {
  const int port = start();
  const std::string auth = std::string("Authorization: Bearer ") + kToken + "\r\n";
  const std::vector<std::string> bad = {"/disk/..%2f..%2fetc%2fpasswd",
                                        "/disk/%2e%2e",
                                        "/disk/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
                                        "/disk/sda;reboot",
                                        "/disk/sda%3Breboot",
                                        "/disk/sda%00",
                                        "/disk/sda%0aX",
                                        "/disk/SDA",
                                        "/disk/" + std::string(300, 'a'),
                                        "/disk/",
                                        "/disk/sdz",
                                        "/disk/sda/../sda",
                                        "/disk/$(reboot)",
                                        "/disk/by-id",
                                        "/disk/by-id?id=../../etc/passwd",
                                        "/disk/by-id?id=..%2f..%2fsda",
                                        "/disk/by-id?id=ata-MISSING",
                                        "/disk/sda?id=ata-DISK_1"};
  for (const auto& path : bad) {
    const auto get = raw_exchange(port, "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + auth + "Connection: close\r\n\r\n");
    EXPECT_EQ(test::http_status(get), 400) << path << ": " << get.substr(0, 200);
    const auto q = path.find('?');
    const std::string spin = q == std::string::npos ? path + "/spinup" : path.substr(0, q) + "/spinup" + path.substr(q);
    const auto post = raw_exchange(
        port, "POST " + spin + " HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 0\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(test::http_status(post), 400) << spin << ": " << post.substr(0, 200);
  }
  // A raw `..` path never reaches a handler that could act on it.
  const auto raw = raw_exchange(port, "GET /disk/../../etc/passwd HTTP/1.1\r\nHost: x\r\n" + auth + "Connection: close\r\n\r\n");
  EXPECT_TRUE(test::http_status(raw) == 400 || test::http_status(raw) == 404) << raw;
  EXPECT_TRUE(runner.calls().empty());
  EXPECT_EQ(spinup_reads.load(), 0);
  // The client refuses bad names itself.
  AgentClient client(url(port), Secret(kToken));
  EXPECT_FALSE(client.disk_state("../../etc/passwd").ok());
  EXPECT_FALSE(client.disk_state("sda;reboot").ok());
  EXPECT_TRUE(runner.calls().empty());
}

TEST_F(BackupdTest, DiskStateAndSpinup) {
  const int port = start();
  AgentClient client(url(port), Secret(kToken));
  auto disk = client.disk_state("sda");
  ASSERT_TRUE(disk.ok()) << disk.error().message;
  EXPECT_EQ(disk->device, "sda");
  EXPECT_EQ(disk->state, SpinState::standby);
  EXPECT_EQ(disk->rotational, std::optional<bool>(true));
  EXPECT_EQ(disk->reads, std::optional<std::uint64_t>(12345U));
  auto by_id = client.disk_state("/dev/disk/by-id/ata-DISK_1");
  ASSERT_TRUE(by_id.ok()) << by_id.error().message;
  EXPECT_EQ(by_id->device, "sda");

  auto spin = client.spinup("sda", 3s);
  ASSERT_TRUE(spin.ok()) << spin.error().message;
  EXPECT_EQ(spin->before, SpinState::standby);
  EXPECT_EQ(spin->state, SpinState::active);
  EXPECT_EQ(spinup_reads.load(), 1);
  for (const auto& call : runner.calls()) {
    EXPECT_EQ(call, "hdparm -C " + (config.disk.dev / "sda").string());
  }
}

TEST_F(BackupdTest, SpinupTimesOutWhenTheDiskStaysDown) {
  const int port = start();
  runner.answer = [](const std::vector<std::string>& argv) {
    return CommandOutput{0, "\n" + argv[2] + ":\n drive state is:  standby\n", ""};
  };
  AgentClient client(url(port), Secret(kToken));
  const auto t0 = Clock::now();
  auto spin = client.spinup("sda", 1s);
  ASSERT_FALSE(spin.ok());
  EXPECT_NE(spin.error().message.find("504"), std::string::npos) << spin.error().message;
  EXPECT_LT(Clock::now() - t0, 4s);
}

TEST_F(BackupdTest, StatusFallsBackWithoutDashP) {
  const int port = start();
  AgentClient client(url(port), Secret(kToken));
  auto status = client.status();
  ASSERT_TRUE(status.ok()) << status.error().message;
  ASSERT_EQ(status->pools.size(), 2U);
  const auto* tank = status->find_pool("tank");
  ASSERT_NE(tank, nullptr);
  EXPECT_EQ(tank->health, "ONLINE");
  EXPECT_EQ(tank->size, 250ULL << 20);
  EXPECT_EQ(tank->state, "ONLINE");
  EXPECT_EQ(tank->scan, "none requested");
  EXPECT_EQ(tank->errors, "No known data errors");
  EXPECT_EQ(status->find_pool("backup")->health, "DEGRADED");
  EXPECT_EQ(status->uptime, std::optional<double>(1234.56));
  EXPECT_EQ(status->load.size(), 3U);
  // Second call goes straight to the fallback.
  ASSERT_TRUE(client.status().ok());
  std::size_t with_p = 0;
  for (const auto& c : runner.calls()) with_p += starts_with(c, "zpool list -H -p") ? 1 : 0;
  EXPECT_EQ(with_p, 1U);
}

TEST_F(BackupdTest, InternalErrorsLeakNothing) {
  const int port = start();
  runner.answer = [](const std::vector<std::string>&) -> CommandOutput {
    throw std::runtime_error("secret internal detail /var/lib/x");
  };
  const auto answer = raw_exchange(port, "GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                                             std::string(kToken) + "\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(test::http_status(answer), 500) << answer;
  EXPECT_EQ(answer.find("secret internal"), std::string::npos) << answer;
  EXPECT_NE(answer.find("internal error"), std::string::npos);
  // Invalid UTF-8 in command output is replaced, not an exception.
  runner.answer = [](const std::vector<std::string>& argv) -> CommandOutput {
    if (argv[1] == "list") return {0, "t\xff\xfe\tONLINE\t1\t1\t0\n", ""};
    return {0, "", ""};
  };
  AgentClient client(url(port), Secret(kToken));
  auto status = client.status();
  ASSERT_TRUE(status.ok()) << status.error().message;
  ASSERT_EQ(status->pools.size(), 1U);
  EXPECT_TRUE(client.ping().ok());
}

TEST_F(BackupdTest, OversizeBodyIsRefusedAndServerKeepsAnswering) {
  config.payload_max = 1024;
  const int port = start();
  const std::string auth = std::string("Authorization: Bearer ") + kToken + "\r\n";
  const auto big = raw_exchange(port, "POST /shutdown HTTP/1.1\r\nHost: x\r\n" + auth +
                                          "Content-Length: 1048576\r\n\r\n" + std::string(1 << 20, 'x'));
  // 413 at once, or the server closed the connection while we were still sending: both fine.
  EXPECT_TRUE(test::http_status(big) == 413 || test::http_status(big) == 0) << big.substr(0, 200);
  EXPECT_FALSE(server->shutdown_requested());
  // A chunked body has no Content-Length: it is counted and the connection closed past the limit.
  std::string chunked = "POST /shutdown HTTP/1.1\r\nHost: x\r\n" + auth + "Transfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 64; ++i) chunked += "400\r\n" + std::string(1024, 'y') + "\r\n";
  chunked += "0\r\n\r\n";
  const auto chunked_answer = raw_exchange(port, chunked);
  EXPECT_TRUE(test::http_status(chunked_answer) == 413 || test::http_status(chunked_answer) == 0) << chunked_answer.substr(0, 200);
  EXPECT_FALSE(server->shutdown_requested());
  // A body within the limit is fine; Content-Encoding is refused (bodies are never decompressed).
  const auto gz = raw_exchange(port, "POST /shutdown HTTP/1.1\r\nHost: x\r\n" + auth +
                                         "Content-Encoding: gzip\r\nContent-Length: 2\r\nConnection: close\r\n\r\nxx");
  EXPECT_EQ(test::http_status(gz), 415) << gz;
  EXPECT_FALSE(server->shutdown_requested());
  const auto answer = raw_exchange(port, "POST /shutdown HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                                             std::string(kToken) + "\r\nContent-Length: 99999999\r\n\r\nxx");
  EXPECT_EQ(test::http_status(answer), 413) << answer;
  EXPECT_FALSE(server->shutdown_requested());
  AgentClient client(url(port), Secret());
  EXPECT_TRUE(client.ping().ok());
  EXPECT_TRUE(runner.calls().empty());
}

TEST_F(BackupdTest, ThousandRapidRequestsAllAnswered) {
  const int port = start();
  const long rss_before = rss_kib();
  std::atomic<int> good{0};
  std::atomic<int> bad{0};
  std::vector<std::thread> clients;
  const auto t0 = Clock::now();
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      for (int i = 0; i < 125; ++i) {
        const bool protected_route = (i + t) % 5 == 0;
        const auto answer = raw_exchange(port, protected_route
                                                   ? "GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\nConnection: close\r\n\r\n"
                                                   : "GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        const int status = test::http_status(answer);
        if (status == 200 || status == 401) {
          good.fetch_add(1);
        } else {
          bad.fetch_add(1);
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  const long rss_after = rss_kib();
  EXPECT_EQ(good.load(), 1000);
  EXPECT_EQ(bad.load(), 0);
  AgentClient client(url(port), Secret());
  EXPECT_TRUE(client.ping().ok());
  std::printf("[ metrics  ] 1000 requests in %lld ms; RSS %ld KiB -> %ld KiB (test process incl. clients)\n",
              static_cast<long long>(elapsed.count()), rss_before, rss_after);
  EXPECT_LT(rss_after - rss_before, 64 * 1024);  // no runaway growth
}

TEST_F(BackupdTest, SlowlorisIsCutByTheRequestDeadline) {
  const int port = start();
  const int fd = connect_loopback(port);
  ASSERT_GE(fd, 0);
  const auto t0 = Clock::now();
  std::atomic<bool> closed{false};
  Clock::duration cut_after{};
  std::thread slow([&] {
    const std::string request = "GET /ping HTTP/1.1\r\nHost: slow\r\nX-Pad: " + std::string(200, 'a');
    for (std::size_t i = 0; i < request.size() && Clock::now() - t0 < 10s; ++i) {
      // One byte every 300 ms: always inside the 1 s read timeout, never a complete request.
      if (::send(fd, &request[i], 1, MSG_NOSIGNAL) < 0) break;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 300) > 0) {
        char c = 0;
        if (::recv(fd, &c, 1, 0) <= 0) break;
      }
    }
    cut_after = Clock::now() - t0;
    closed = true;
  });
  // Meanwhile the server keeps answering.
  AgentClient client(url(port), Secret());
  int pings = 0;
  while (!closed && Clock::now() - t0 < 12s) {
    ASSERT_TRUE(client.ping().ok());
    ++pings;
    std::this_thread::sleep_for(200ms);
  }
  slow.join();
  ::close(fd);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(cut_after).count();
  std::printf("[ metrics  ] slowloris cut after %lld ms (request_timeout 2 s); %d pings answered meanwhile\n",
              static_cast<long long>(ms), pings);
  EXPECT_GE(ms, 1900);
  EXPECT_LT(ms, 4000);
  EXPECT_GT(pings, 3);
}

TEST_F(BackupdTest, SilentPartialRequestIsCutByTheReadTimeout) {
  const int port = start();
  const auto t0 = Clock::now();
  const auto answer = raw_exchange(port, "GET /pi");
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  EXPECT_LT(ms, 3000);
  EXPECT_GE(ms, 900);
  (void)answer;
  EXPECT_TRUE(AgentClient(url(port), Secret()).ping().ok());
}

TEST_F(BackupdTest, FullServerClosesNewConnectionsAndRecovers) {
  config.max_connections = 3;
  const int port = start();
  // Three stalled connections take every slot; the next ones are closed at once.
  std::vector<int> stalled;
  for (int i = 0; i < 6; ++i) {
    const int fd = connect_loopback(port);
    ASSERT_GE(fd, 0);
    (void)::send(fd, "GET /pi", 7, MSG_NOSIGNAL);
    stalled.push_back(fd);
    std::this_thread::sleep_for(20ms);
  }
  int closed_at_once = 0;
  for (const int fd : stalled) {
    pollfd p{fd, POLLIN, 0};
    char c = 0;
    // Closed (EOF) or reset (the unread request bytes make the close an RST).
    if (::poll(&p, 1, 100) > 0 && ::recv(fd, &c, 1, MSG_DONTWAIT) <= 0) ++closed_at_once;
  }
  EXPECT_EQ(closed_at_once, 3);
  for (const int fd : stalled) ::close(fd);
  // Once the slots are free again, requests are served.
  const auto t0 = Clock::now();
  bool pinged = false;
  while (!pinged && Clock::now() - t0 < 8s) {
    pinged = AgentClient(url(port), Secret()).ping().ok();
    if (!pinged) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(pinged);
}

TEST_F(BackupdTest, PerAddressLimitClosesExtraConnectionsAtOnce) {
  config.max_connections_per_ip = 2;
  const int port = start();
  std::vector<int> fds;
  for (int i = 0; i < 4; ++i) {
    const int fd = connect_loopback(port);
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
    std::this_thread::sleep_for(20ms);
  }
  int closed_at_once = 0;
  for (const int fd : fds) {
    pollfd p{fd, POLLIN, 0};
    char c = 0;
    if (::poll(&p, 1, 200) > 0 && ::recv(fd, &c, 1, MSG_DONTWAIT) == 0) ++closed_at_once;
  }
  EXPECT_EQ(closed_at_once, 2);
  for (const int fd : fds) ::close(fd);
  const auto t0 = Clock::now();
  bool pinged = false;
  while (!pinged && Clock::now() - t0 < 5s) {
    pinged = AgentClient(url(port), Secret()).ping().ok();
    if (!pinged) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(pinged);
}

TEST_F(BackupdTest, ShutdownExportsPoolsThenRunsTheCommand) {
  const int port = start();
  AgentClient client(url(port), Secret(kToken));
  auto down = client.shutdown(false);
  ASSERT_TRUE(down.ok()) << down.error().message;
  ASSERT_TRUE(server->wait_shutdown_done(5000ms));
  EXPECT_EQ(runner.calls(), (std::vector<std::string>{"zpool export tank", "zpool export backup", "fake-shutdown -h now"}));
  // A second request does not run it again.
  EXPECT_TRUE(client.shutdown(false).ok());
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(runner.calls().size(), 3U);
}

TEST_F(BackupdTest, ShutdownRefusedWhileReceiveRunsUnlessForced) {
  receive_running = true;
  const int port = start();
  AgentClient client(url(port), Secret(kToken));
  auto refused = client.shutdown(false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ExitCode::tempfail);
  EXPECT_NE(refused.error().message.find("409"), std::string::npos);
  EXPECT_FALSE(server->shutdown_requested());
  EXPECT_TRUE(runner.calls().empty());
  auto forced = client.shutdown(true);
  ASSERT_TRUE(forced.ok()) << forced.error().message;
  ASSERT_TRUE(server->wait_shutdown_done(5000ms));
  EXPECT_EQ(runner.calls().back(), "fake-shutdown -h now");
}

TEST_F(BackupdTest, ShutdownDelayIsCancelledByStop) {
  config.shutdown_delay = 30s;
  const int port = start();
  AgentClient client(url(port), Secret(kToken));
  ASSERT_TRUE(client.shutdown(false).ok());
  const auto t0 = Clock::now();
  server->stop();
  EXPECT_LT(Clock::now() - t0, 5s);
  EXPECT_TRUE(runner.calls().empty());
}

// ---- pure functions -------------------------------------------------------------------------

TEST(BackupdPure, BearerMatches) {
  const Secret token(kToken);
  EXPECT_TRUE(bearer_matches(std::string("Bearer ") + kToken, token));
  EXPECT_TRUE(bearer_matches(std::string("bearer ") + kToken, token));
  EXPECT_FALSE(bearer_matches(std::string("Bearer ") + kToken + " ", token));
  EXPECT_FALSE(bearer_matches(kToken, token));
  EXPECT_FALSE(bearer_matches("Bearer ", token));
  EXPECT_FALSE(bearer_matches("", token));
  EXPECT_FALSE(bearer_matches("Bearer ", Secret()));
  EXPECT_FALSE(bearer_matches("Bearer x", Secret()));
}

TEST(BackupdPure, ZfsReceiveDetection) {
  using namespace std::string_literals;
  EXPECT_TRUE(cmdline_is_zfs_receive("zfs\0receive\0-s\0-F\0backup/data\0"s));
  EXPECT_TRUE(cmdline_is_zfs_receive("/usr/sbin/zfs\0recv\0backup/data\0"s));
  EXPECT_TRUE(cmdline_is_zfs_receive("sh\0-c\0 mbuffer -q | zfs receive -s -F 'backup/data'\0"s));
  EXPECT_TRUE(cmdline_is_zfs_receive("bash\0-c\0sudo zfs recv backup\0"s));
  EXPECT_FALSE(cmdline_is_zfs_receive("zfs\0list\0"s));
  EXPECT_FALSE(cmdline_is_zfs_receive("zfs\0send\0tank@a\0"s));
  EXPECT_FALSE(cmdline_is_zfs_receive("vim\0zfs-receive-notes.txt\0"s));
  EXPECT_FALSE(cmdline_is_zfs_receive(""));
  EXPECT_FALSE(cmdline_is_zfs_receive("grep\0zfs receiver\0"s));
}

TEST(BackupdPure, ZfsReceiveScanOfFakeProc) {
  test::TempDir proc("hozo-proc");
  std::filesystem::create_directories(proc.path() / "100");
  std::filesystem::create_directories(proc.path() / "self");
  std::ofstream(proc.path() / "100" / "cmdline") << std::string("sleep\0" "100\0", 10);
  EXPECT_FALSE(zfs_receive_running(proc.path()));
  std::filesystem::create_directories(proc.path() / "200");
  std::ofstream(proc.path() / "200" / "cmdline") << std::string("zfs\0recv\0backup\0", 16);
  EXPECT_TRUE(zfs_receive_running(proc.path()));
  EXPECT_FALSE(zfs_receive_running(proc.path() / "missing"));
}

TEST(BackupdPure, ZpoolParsing) {
  EXPECT_EQ(parse_zpool_size("250M"), std::optional<std::uint64_t>(250ULL << 20));
  EXPECT_EQ(parse_zpool_size("2.5G"), std::optional<std::uint64_t>(5ULL << 29));
  EXPECT_EQ(parse_zpool_size("123456"), std::optional<std::uint64_t>(123456U));
  EXPECT_EQ(parse_zpool_size("-"), std::optional<std::uint64_t>(0U));
  EXPECT_FALSE(parse_zpool_size("12X").has_value());
  EXPECT_FALSE(parse_zpool_size("").has_value());
  EXPECT_FALSE(parse_zpool_size("1.2.3M").has_value());
  EXPECT_FALSE(parse_zpool_size("99999999999999999999999E").has_value());
  auto exact = parse_zpool_list("tank\tONLINE\t262144000\t2946498\t259197502\n");
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ((*exact)[0].alloc, 2946498U);
  EXPECT_FALSE(parse_zpool_list("garbage line\n").ok());
  EXPECT_TRUE(parse_zpool_list("no pools available\n")->empty());
  PoolStatus pool;
  apply_zpool_status(pool, "  pool: tank\n state: DEGRADED\n  scan: scrub repaired 0B in 00:01:02\nerrors: 3 data errors\n");
  EXPECT_EQ(pool.state, "DEGRADED");
  EXPECT_EQ(pool.scan, "scrub repaired 0B in 00:01:02");
  EXPECT_EQ(pool.errors, "3 data errors");
}

TEST(BackupdPure, DiskRequestResolution) {
  DiskPaths paths;
  paths.sys_block = "/nonexistent/sys/block";
  EXPECT_FALSE(resolve_disk_request(paths, "sda", std::nullopt).ok());
  EXPECT_FALSE(resolve_disk_request(paths, "by-id", std::nullopt).ok());
  EXPECT_FALSE(resolve_disk_request(paths, "by-id", std::string("../x")).ok());
  EXPECT_FALSE(resolve_disk_request(paths, "../..", std::nullopt).ok());
}

TEST(BackupdConfigTest, DefaultsAndKeys) {
  auto empty = parse_backupd_config("", "t.yaml");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->listen_host, "127.0.0.1");
  EXPECT_EQ(empty->listen_port, 9999);
  EXPECT_EQ(empty->shutdown_command, (std::vector<std::string>{"shutdown", "-h", "now"}));
  auto full = parse_backupd_config(
      "listen: 10.0.0.2:8080\ntoken_file: /etc/hozo/backupd.token\nexport_pools: [backup]\n"
      "shutdown_command: [systemctl, poweroff]\nshutdown_delay: 10s\nmax_connections: 4\n",
      "t.yaml");
  ASSERT_TRUE(full.ok()) << full.error().message;
  EXPECT_EQ(full->listen_host, "10.0.0.2");
  EXPECT_EQ(full->listen_port, 8080);
  EXPECT_EQ(full->export_pools, std::vector<std::string>{"backup"});
  EXPECT_EQ(full->shutdown_delay, 10s);
  EXPECT_EQ(full->max_connections, 4U);
  EXPECT_TRUE(full->ignored_keys.empty());
  auto bad = parse_backupd_config("listne: x\nexport_pools: [\"a/b\"]\nshutdown_command: []\nmax_connections: 0\n", "t.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ExitCode::config);
  EXPECT_NE(bad.error().message.find("t.yaml:1:1: listne: unknown key (did you mean 'listen'?)"), std::string::npos)
      << bad.error().message;
  EXPECT_NE(bad.error().message.find("invalid pool name"), std::string::npos);
  EXPECT_NE(bad.error().message.find("shutdown_command"), std::string::npos);
  EXPECT_NE(bad.error().message.find("max_connections"), std::string::npos);
  EXPECT_FALSE(parse_backupd_config("[1, 2]", "t.yaml").ok());
  EXPECT_FALSE(parse_backupd_config("listen: [\n", "t.yaml").ok());
}

TEST(BackupdConfigTest, ShutdownCommandAsStringOrList) {
  auto text = parse_backupd_config("shutdown_command: systemctl poweroff --no-wall\n", "t.yaml");
  ASSERT_TRUE(text.ok()) << text.error().message;
  EXPECT_EQ(text->shutdown_command, (std::vector<std::string>{"systemctl", "poweroff", "--no-wall"}));
  auto quoted = parse_backupd_config("shutdown_command: '\"/opt/power off\" now'\n", "t.yaml");
  ASSERT_TRUE(quoted.ok()) << quoted.error().message;
  EXPECT_EQ(quoted->shutdown_command, (std::vector<std::string>{"/opt/power off", "now"}));
  EXPECT_EQ(*split_command("\"/opt/power off\" 'a b' c"), (std::vector<std::string>{"/opt/power off", "a b", "c"}));
  for (const char* bad : {"shutdown_command: \"shutdown -h now; rm -rf /\"\n", "shutdown_command: \"halt $(x)\"\n",
                          "shutdown_command: \"a | b\"\n", "shutdown_command: \"'open\"\n", "shutdown_command: \"\"\n"}) {
    auto parsed = parse_backupd_config(bad, "t.yaml");
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_NE(parsed.error().message.find("t.yaml:1:"), std::string::npos) << parsed.error().message;
  }
  EXPECT_EQ(*split_command("  a\tb  "), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(split_command("")->empty());
}

TEST(BackupdConfigTest, OneMessagePerProblemWithoutDoublePrefixes) {
  auto bad = parse_backupd_config("listen: 127.0.0.1:x\nthreads: 4\nmax_body: -1\n", "t.yaml");
  ASSERT_FALSE(bad.ok());
  const auto& msg = bad.error().message;
  EXPECT_NE(msg.find("t.yaml:1:9: listen: invalid port 'x'"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("listen: listen"), std::string::npos) << msg;
  EXPECT_NE(msg.find("t.yaml:3:11: max_body"), std::string::npos) << msg;
  // Old keys are accepted with a warning from check_backupd.
  auto old = parse_backupd_config("threads: 4\nwrite_timeout: 5s\n", "t.yaml");
  ASSERT_TRUE(old.ok()) << old.error().message;
  const auto check = check_backupd(*old, Result<Secret>(Secret("abcdefghijklmnop0123", "file x")));
  EXPECT_TRUE(check.problems.empty());
  ASSERT_EQ(check.warnings.size(), 2U);
  EXPECT_NE(check.warnings[0].find("threads"), std::string::npos);
}

TEST(BackupdConfigTest, CheckFindsEveryProblem) {
  test::TempDir dir("hozo-check");
  BackupdConfig config;
  config.listen_host = "0.0.0.0";
  config.token_file = dir.write("token", "abcdefghijklmnop0123\n");
  std::filesystem::permissions(config.token_file, std::filesystem::perms(0644));
  auto check = check_backupd(config, load_backupd_token(config));
  EXPECT_TRUE(check.problems.empty());
  ASSERT_EQ(check.warnings.size(), 2U);
  EXPECT_NE(check.warnings[0].find("readable by every user"), std::string::npos) << check.warnings[0];
  EXPECT_NE(check.warnings[0].find("chmod 600"), std::string::npos);
  EXPECT_NE(check.warnings[1].find("plain HTTP"), std::string::npos) << check.warnings[1];
  std::filesystem::permissions(config.token_file, std::filesystem::perms(0640));
  config.listen_host = "127.0.0.1";
  check = check_backupd(config, load_backupd_token(config));
  ASSERT_EQ(check.warnings.size(), 1U);
  EXPECT_NE(check.warnings[0].find("its group"), std::string::npos) << check.warnings[0];
  std::filesystem::permissions(config.token_file, std::filesystem::perms(0600));
  EXPECT_TRUE(check_backupd(config, load_backupd_token(config)).warnings.empty());
  // No token at all is a problem for --check.
  config.token_file.clear();
  ::unsetenv("CREDENTIALS_DIRECTORY");
  check = check_backupd(config, load_backupd_token(config));
  ASSERT_EQ(check.problems.size(), 1U);
  EXPECT_NE(check.problems[0].find("none configured"), std::string::npos);
}

TEST(BackupdConfigTest, ListenAddress) {
  EXPECT_EQ(*parse_listen_address("127.0.0.1:9999"), std::make_pair(std::string("127.0.0.1"), 9999));
  EXPECT_EQ(*parse_listen_address("[::1]:80"), std::make_pair(std::string("::1"), 80));
  EXPECT_EQ(*parse_listen_address("0.0.0.0"), std::make_pair(std::string("0.0.0.0"), 9999));
  EXPECT_FALSE(parse_listen_address("::1:80").ok());
  EXPECT_FALSE(parse_listen_address("host:99999").ok());
  EXPECT_FALSE(parse_listen_address(":80").ok());
  EXPECT_FALSE(parse_listen_address("").ok());
}

TEST(BackupdConfigTest, TokenLoading) {
  test::TempDir dir("hozo-token");
  BackupdConfig config;
  config.token_file = dir.write("token", "  abcdefghijklmnop0123  \n");
  auto token = load_backupd_token(config);
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(token->reveal(), "abcdefghijklmnop0123");
  EXPECT_EQ(fmt::format("{}", *token), "********");
  config.token_file = dir.write("short", "abc\n");
  EXPECT_FALSE(load_backupd_token(config).ok());
  config.token_file = dir.write("empty", "\n");
  EXPECT_FALSE(load_backupd_token(config).ok());
  config.token_file = dir.path() / "missing";
  EXPECT_FALSE(load_backupd_token(config).ok());
  config.token_file.clear();
  dir.write("backupd-token", "credential-token-0123456789\n");
  ::setenv("CREDENTIALS_DIRECTORY", dir.path().c_str(), 1);
  auto cred = load_backupd_token(config);
  ::unsetenv("CREDENTIALS_DIRECTORY");
  ASSERT_TRUE(cred.ok());
  EXPECT_EQ(cred->reveal(), "credential-token-0123456789");
  auto none = load_backupd_token(config);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

}  // namespace
}  // namespace hozo
