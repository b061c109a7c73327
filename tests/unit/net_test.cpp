#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "hozo/net.hpp"

using namespace hozo;
using namespace std::chrono_literals;

namespace {

using Steady = std::chrono::steady_clock;

double ms_between(Steady::time_point a, Steady::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

/// A TCP server on loopback. The socket is bound at construction; listen() may be delayed,
/// and until then connections are refused (bound but not listening).
class TestServer {
 public:
  enum class After { keep_open, close };

  TestServer(int family, std::string payload, After after) : family_(family), payload_(std::move(payload)), after_(after) {
    fd_ = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    const int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof(sockaddr_in);
    } else {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_loopback;
      len = sizeof(sockaddr_in6);
    }
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
    port_ = family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port)
                              : ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;
  ~TestServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (const int c : clients_) ::close(c);
    if (fd_ >= 0) ::close(fd_);
  }

  [[nodiscard]] bool ok() const { return fd_ >= 0; }
  [[nodiscard]] int port() const { return port_; }

  /// Starts listening and serving; returns the moment listen() returned.
  Steady::time_point start(int backlog = 16) {
    ::listen(fd_, backlog);
    const auto t = Steady::now();
    thread_ = std::thread([this] { serve(); });
    return t;
  }

  /// Listens but never accepts (to fill the backlog).
  void listen_only(int backlog) { ::listen(fd_, backlog); }

 private:
  void serve() {
    while (!stop_) {
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, 10) <= 0) continue;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      if (!payload_.empty()) (void)!::send(c, payload_.data(), payload_.size(), MSG_NOSIGNAL);
      if (after_ == After::close) {
        ::close(c);
      } else {
        clients_.push_back(c);
      }
    }
  }

  int family_;
  std::string payload_;
  After after_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<int> clients_;
};

ProbeTimeouts fast_timeouts() {
  ProbeTimeouts t;
  t.connect = 500ms;
  t.banner = 300ms;
  t.resolve = 2000ms;
  return t;
}

/// Steady time that only moves when someone sleeps.
class FakeClock final : public Clock {
 public:
  SystemTime now() const override { return SystemTime(std::chrono::duration_cast<SystemTime::duration>(t_.time_since_epoch())); }
  Steady::time_point steady_now() const override { return t_; }
  void sleep_for(Millis d) override { t_ += d; }
  void advance(Steady::duration d) { t_ += d; }

 private:
  Steady::time_point t_{std::chrono::hours(1000)};
};

ProbeResult refused_probe() {
  ProbeResult r;
  r.state = ProbeState::refused;
  r.detail = "Connection refused";
  return r;
}

}  // namespace

TEST(ProbeSsh, UpOnSsh2Banner) {
  TestServer server(AF_INET, "SSH-2.0-Test\r\n", TestServer::After::keep_open);
  ASSERT_TRUE(server.ok());
  server.start();
  const auto r = probe_ssh("127.0.0.1", server.port(), fast_timeouts());
  EXPECT_EQ(r.state, ProbeState::up) << r.describe();
  EXPECT_EQ(r.banner, "SSH-2.0-Test");
  EXPECT_LT(r.elapsed, 300ms);
}

TEST(ProbeSsh, KeepSocketLeavesTheBannerUnreadForTheSession) {
  TestServer server(AF_INET, "SSH-2.0-Test\r\n", TestServer::After::keep_open);
  ASSERT_TRUE(server.ok());
  server.start();
  const auto r = probe_ssh("127.0.0.1", server.port(), fast_timeouts(), KeepSocket::yes);
  ASSERT_EQ(r.state, ProbeState::up) << r.describe();
  EXPECT_EQ(r.banner, "SSH-2.0-Test");
  ASSERT_TRUE(r.socket && r.socket->open());
  // The session that takes the socket over reads the version line itself.
  char buf[64] = {};
  const ssize_t got = ::recv(r.socket->get(), buf, sizeof buf, 0);
  EXPECT_EQ(std::string(buf, got > 0 ? static_cast<std::size_t>(got) : 0), "SSH-2.0-Test\r\n");
  // Without KeepSocket nothing is kept.
  EXPECT_FALSE(probe_ssh("127.0.0.1", server.port(), fast_timeouts()).socket);
}

TEST(ProbeSsh, KeepSocketKeepsNothingWhenLinesComeBeforeTheBanner) {
  // libssh expects the version line first: such a server gets a connection of its own.
  TestServer server(AF_INET, "Welcome\r\nSSH-2.0-Late\r\n", TestServer::After::keep_open);
  ASSERT_TRUE(server.ok());
  server.start();
  const auto r = probe_ssh("127.0.0.1", server.port(), fast_timeouts(), KeepSocket::yes);
  EXPECT_EQ(r.state, ProbeState::up) << r.describe();
  EXPECT_EQ(r.banner, "SSH-2.0-Late");
  EXPECT_FALSE(r.socket);
}

TEST(ProbeSsh, UpOverIpv6AndByName) {
  TestServer v6(AF_INET6, "SSH-2.0-Six\r\n", TestServer::After::keep_open);
  if (!v6.ok()) GTEST_SKIP() << "no IPv6 loopback";
  v6.start();
  const auto r6 = probe_ssh("::1", v6.port(), fast_timeouts());
  EXPECT_EQ(r6.state, ProbeState::up) << r6.describe();
  EXPECT_EQ(r6.banner, "SSH-2.0-Six");

  // "localhost" may resolve to ::1 and 127.0.0.1; only IPv4 listens here. Addresses are tried in parallel.
  TestServer v4(AF_INET, "SSH-2.0-Four\r\n", TestServer::After::keep_open);
  ASSERT_TRUE(v4.ok());
  v4.start();
  const auto rn = probe_ssh("localhost", v4.port(), fast_timeouts());
  EXPECT_EQ(rn.state, ProbeState::up) << rn.describe();
}

TEST(ProbeSsh, AcceptsSsh199AndLinesBeforeTheBanner) {
  TestServer server(AF_INET, "Welcome\r\nauthorised use only\r\nSSH-1.99-Old\n", TestServer::After::close);
  ASSERT_TRUE(server.ok());
  server.start();
  const auto r = probe_ssh("127.0.0.1", server.port(), fast_timeouts());
  EXPECT_EQ(r.state, ProbeState::up) << r.describe();
  EXPECT_EQ(r.banner, "SSH-1.99-Old");
}

TEST(ProbeSsh, JunkIsNoBanner) {
  TestServer server(AF_INET, "HTTP/1.1 400 Bad Request\r\n\r\n", TestServer::After::close);
  ASSERT_TRUE(server.ok());
  server.start();
  const auto r = probe_ssh("127.0.0.1", server.port(), fast_timeouts());
  EXPECT_EQ(r.state, ProbeState::no_banner);
  EXPECT_NE(r.describe().find("HTTP/1.1 400"), std::string::npos) << r.describe();
}

TEST(ProbeSsh, OldProtocolIsNoBanner) {
  TestServer server(AF_INET, "SSH-1.5-Ancient\r\n", TestServer::After::keep_open);
  ASSERT_TRUE(server.ok());
  server.start();
  const auto r = probe_ssh("127.0.0.1", server.port(), fast_timeouts());
  EXPECT_EQ(r.state, ProbeState::no_banner) << r.describe();
}

TEST(ProbeSsh, SilentServerIsNoBannerAfterTheDeadline) {
  TestServer server(AF_INET, "", TestServer::After::keep_open);
  ASSERT_TRUE(server.ok());
  server.start();
  const auto r = probe_ssh("127.0.0.1", server.port(), fast_timeouts());
  EXPECT_EQ(r.state, ProbeState::no_banner) << r.describe();
  EXPECT_GE(r.elapsed, 290ms);
  EXPECT_LT(r.elapsed, 600ms);
  std::printf("silent server: no_banner after %.0f ms (banner deadline 300 ms)\n",
              std::chrono::duration<double, std::milli>(r.elapsed).count());
}

TEST(ProbeSsh, ClosedPortIsRefused) {
  TestServer server(AF_INET, "", TestServer::After::keep_open);  // bound, never listening
  ASSERT_TRUE(server.ok());
  const auto r = probe_ssh("127.0.0.1", server.port(), fast_timeouts());
  EXPECT_EQ(r.state, ProbeState::refused) << r.describe();
  EXPECT_LT(r.elapsed, 100ms);
}

TEST(ProbeSsh, FullBacklogIsConnectTimeout) {
  TestServer server(AF_INET, "", TestServer::After::keep_open);
  ASSERT_TRUE(server.ok());
  server.listen_only(0);
  // Fill the accept queue; once it is full the kernel drops further SYNs.
  std::vector<int> fillers;
  bool full = false;
  for (int i = 0; i < 8 && !full; ++i) {
    const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(server.port()));
    ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);
    fillers.push_back(c);
    pollfd pfd{c, POLLOUT, 0};
    full = ::poll(&pfd, 1, 100) == 0;
  }
  if (!full) {
    for (const int c : fillers) ::close(c);
    GTEST_SKIP() << "could not fill the listen backlog on this kernel";
  }
  ProbeTimeouts t = fast_timeouts();
  t.connect = 200ms;
  const auto r = probe_ssh("127.0.0.1", server.port(), t);
  for (const int c : fillers) ::close(c);
  EXPECT_EQ(r.state, ProbeState::timeout) << r.describe();
  EXPECT_GE(r.elapsed, 190ms);
  EXPECT_LT(r.elapsed, 500ms);
}

TEST(ProbeSsh, UnresolvableNameIsUnreachable) {
  const auto r = probe_ssh("no-such-host.invalid", 22, fast_timeouts());
  EXPECT_EQ(r.state, ProbeState::unreachable) << r.describe();
  EXPECT_LT(r.elapsed, 2500ms);
}

TEST(WaitUntilUp, DetectsListenerWithinOnePollInterval) {
  TestServer server(AF_INET, "SSH-2.0-Late\r\n", TestServer::After::keep_open);
  ASSERT_TRUE(server.ok());
  std::mutex m;
  Steady::time_point listening_at{};
  std::thread starter([&] {
    std::this_thread::sleep_for(1100ms);  // deliberately not a multiple of the poll interval
    const auto t = server.start();
    const std::lock_guard lock(m);
    listening_at = t;
  });

  WaitOptions options;
  options.host = "127.0.0.1";
  options.port = server.port();
  options.timeout = 10s;
  options.probe = fast_timeouts();
  options.poll_interval = 250ms;
  options.resend_interval = 0ms;
  SystemClock clock;
  const auto began = Steady::now();
  const auto outcome = wait_until_up(options, clock, nullptr, nullptr);
  const auto detected_at = Steady::now();
  starter.join();
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  EXPECT_EQ(outcome->last.state, ProbeState::up);
  EXPECT_FALSE(outcome->was_up_before);
  const double lag = ms_between(listening_at, detected_at);
  std::printf("listener up after %.0f ms; detected %.1f ms after listen() (poll interval 250 ms, %d probes)\n",
              ms_between(began, listening_at), lag, outcome->probes);
  EXPECT_GE(lag, 0.0);
  EXPECT_LT(lag, 250.0 + 100.0);  // one poll interval plus scheduling slack
  EXPECT_GE(outcome->probes, 3);
}

TEST(WaitUntilUp, TimeoutIsUnavailableWithAClearMessage) {
  FakeClock clock;
  WaitOptions options;
  options.host = "backup-box";
  options.port = 22;
  options.timeout = 2min;
  options.probe_function = [](const std::string&, int, const ProbeTimeouts&) { return refused_probe(); };
  const auto outcome = wait_until_up(options, clock, nullptr, nullptr);
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.error().code, ExitCode::unavailable);
  EXPECT_EQ(to_int(outcome.error().code), 69);
  EXPECT_EQ(outcome.error().message.rfind(
                "host backup-box:22 did not answer with an SSH banner within 2m 0s; last probe: connection refused", 0),
            0u)
      << outcome.error().message;
}

TEST(WaitUntilUp, RealTimeoutAgainstAClosedPort) {
  TestServer server(AF_INET, "", TestServer::After::keep_open);  // bound, never listening
  ASSERT_TRUE(server.ok());
  WaitOptions options;
  options.host = "127.0.0.1";
  options.port = server.port();
  options.timeout = 600ms;
  options.poll_interval = 100ms;
  SystemClock clock;
  const auto began = Steady::now();
  const auto outcome = wait_until_up(options, clock, nullptr, nullptr);
  const double took = ms_between(began, Steady::now());
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.error().code, ExitCode::unavailable);
  EXPECT_NE(outcome.error().message.find("connection refused"), std::string::npos) << outcome.error().message;
  EXPECT_GE(took, 590.0);
  EXPECT_LT(took, 900.0);
}

TEST(WaitUntilUp, ResendsAtTheConfiguredPeriod) {
  FakeClock clock;
  const auto start = clock.steady_now();
  WaitOptions options;
  options.host = "backup-box";
  options.timeout = 2min;
  options.poll_interval = 250ms;
  options.resend_interval = 10s;
  options.probe_function = [&](const std::string&, int, const ProbeTimeouts&) {
    clock.advance(20ms);  // a probe takes a little time
    if (clock.steady_now() - start >= 35s) {
      ProbeResult r;
      r.state = ProbeState::up;
      r.banner = "SSH-2.0-Fake";
      return r;
    }
    return refused_probe();
  };
  std::vector<double> resend_at;
  const auto outcome = wait_until_up(
      options, clock, [&] { resend_at.push_back(std::chrono::duration<double>(clock.steady_now() - start).count()); },
      nullptr);
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  ASSERT_EQ(resend_at.size(), 3u);
  EXPECT_EQ(outcome->resends, 3);
  for (std::size_t i = 0; i < resend_at.size(); ++i) {
    const double due = 10.0 * static_cast<double>(i + 1);
    EXPECT_GE(resend_at[i], due);
    EXPECT_LT(resend_at[i], due + 0.3) << "resend " << i << " late";
  }
  EXPECT_GE(outcome->elapsed, 35s);
  EXPECT_LT(outcome->elapsed, 35s + 300ms);
}

TEST(WaitUntilUp, ResendsInRealTime) {
  TestServer server(AF_INET, "", TestServer::After::keep_open);  // refused
  ASSERT_TRUE(server.ok());
  WaitOptions options;
  options.host = "127.0.0.1";
  options.port = server.port();
  options.timeout = 1100ms;
  options.poll_interval = 50ms;
  options.resend_interval = 250ms;
  SystemClock clock;
  std::vector<Steady::time_point> at;
  const auto began = Steady::now();
  const auto outcome = wait_until_up(options, clock, [&] { at.push_back(Steady::now()); }, nullptr);
  ASSERT_FALSE(outcome.ok());
  ASSERT_EQ(at.size(), 4u);  // at 250, 500, 750, 1000 ms
  for (std::size_t i = 0; i < at.size(); ++i) {
    const double t = ms_between(began, at[i]);
    EXPECT_GE(t, 250.0 * static_cast<double>(i + 1));
    EXPECT_LT(t, 250.0 * static_cast<double>(i + 1) + 150.0);
  }
}

TEST(WaitUntilUp, CancelIsInterrupted) {
  TestServer server(AF_INET, "", TestServer::After::keep_open);  // refused
  ASSERT_TRUE(server.ok());
  WaitOptions options;
  options.host = "127.0.0.1";
  options.port = server.port();
  options.timeout = 30s;
  options.poll_interval = 2s;  // the cancel must be noticed during the sleep, not after it
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(300ms);
    cancel = true;
  });
  SystemClock clock;
  const auto began = Steady::now();
  const auto outcome = wait_until_up(options, clock, nullptr, &cancel);
  const double took = ms_between(began, Steady::now());
  canceller.join();
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.error().code, ExitCode::interrupted);
  EXPECT_LT(took, 450.0);
}

TEST(WaitForSsh, AlreadyUpSendsNothing) {
  TestServer server(AF_INET, "SSH-2.0-Awake\r\n", TestServer::After::keep_open);
  ASSERT_TRUE(server.ok());
  server.start();
  WaitOptions options;
  options.host = "127.0.0.1";
  options.port = server.port();
  options.probe = fast_timeouts();
  SystemClock clock;
  int wakes = 0;
  const auto outcome = wait_for_ssh(options, clock, [&] { ++wakes; }, nullptr);
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  EXPECT_TRUE(outcome->was_up_before);
  EXPECT_EQ(outcome->probes, 1);
  EXPECT_EQ(wakes, 0);
  EXPECT_EQ(outcome->last.banner, "SSH-2.0-Awake");
}

TEST(WaitForSsh, WakesOnceAfterTheInitialProbeThenResends) {
  FakeClock clock;
  const auto start = clock.steady_now();
  std::vector<std::string> events;
  WaitOptions options;
  options.host = "backup-box";
  options.timeout = 1min;
  options.resend_interval = 10s;
  options.probe_function = [&](const std::string&, int, const ProbeTimeouts&) {
    events.emplace_back("probe");
    if (clock.steady_now() - start >= 25s) {
      ProbeResult r;
      r.state = ProbeState::up;
      return r;
    }
    return refused_probe();
  };
  const auto outcome = wait_for_ssh(options, clock, [&] { events.emplace_back("wake"); }, nullptr);
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events[0], "probe");  // nothing is sent before the initial probe
  EXPECT_EQ(events[1], "wake");
  EXPECT_FALSE(outcome->was_up_before);
  EXPECT_EQ(outcome->resends, 3);  // first packet + resends at 10 s and 20 s
  EXPECT_EQ(outcome->probes, static_cast<int>(std::count(events.begin(), events.end(), "probe")));
}

// A refused connection means the host is up and sshd is about to listen: probe every ~25 ms there,
// and at the gentle poll_interval while the host does not answer at all.
TEST(WaitUntilUp, ProbesFasterWhileRefusedThanWhileUnreachable) {
  int refused = 0;
  int unreachable = 0;
  for (auto [state, counter] : {std::pair{ProbeState::refused, &refused}, std::pair{ProbeState::timeout, &unreachable}}) {
    FakeClock clock;
    WaitOptions options;
    options.host = "backup-box";
    options.timeout = 2s;
    options.poll_interval = 250ms;
    options.resend_interval = 0ms;
    options.probe_function = [state = state, counter = counter](const std::string&, int, const ProbeTimeouts&) {
      ++*counter;
      ProbeResult r;
      r.state = state;
      return r;
    };
    (void)wait_until_up(options, clock, nullptr, nullptr);
  }
  EXPECT_GE(refused, 70);  // 2 s / 25 ms
  EXPECT_LE(refused, 85);
  EXPECT_GE(unreachable, 7);  // 2 s / 250 ms
  EXPECT_LE(unreachable, 10);
}
