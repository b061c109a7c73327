#include "hozo/net.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "hozo/util/fd.hpp"
#include "hozo/util/strings.hpp"

namespace hozo {
namespace {

using SteadyClock = std::chrono::steady_clock;
using SteadyTime = SteadyClock::time_point;

constexpr std::size_t kMaxAddresses = 8;
constexpr std::size_t kMaxLine = 1024;          // RFC 4253 allows 255; be lenient
constexpr std::size_t kMaxPreBanner = 8192;     // bytes of non-SSH lines we skip over
constexpr Millis kCancelSlice{50};              // how often sleeps look at the cancel flag

struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = AF_UNSPEC;
};


int remaining_ms(SteadyTime deadline) {
  const auto left = std::chrono::ceil<Millis>(deadline - SteadyClock::now()).count();
  if (left <= 0) return 0;
  return static_cast<int>(std::min<long long>(left, 60'000));
}

std::vector<Address> copy_addresses(const addrinfo* list) {
  std::vector<Address> out;
  for (const addrinfo* ai = list; ai != nullptr && out.size() < kMaxAddresses; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
    Address a;
    std::memcpy(&a.storage, ai->ai_addr, ai->ai_addrlen);
    a.length = ai->ai_addrlen;
    a.family = ai->ai_family;
    out.push_back(a);
  }
  return out;
}

std::string gai_text(int rc, int err) {
  return rc == EAI_SYSTEM ? std::string(std::strerror(err)) : std::string(gai_strerror(rc));
}

/// Shared between a probe and its (possibly abandoned) lookup thread.
struct Lookup {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  int rc = 0;
  int err = 0;
  std::vector<Address> addresses;
};

/// Resolves host:port; literals immediately, names in a helper thread bounded by `timeout`
/// (getaddrinfo itself cannot be interrupted; an abandoned lookup finishes on its own).
Result<std::vector<Address>> resolve(const std::string& host, int port, Millis timeout) {
  const std::string service = std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* list = nullptr;
  int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &list);
  if (rc == 0) {
    auto out = copy_addresses(list);
    freeaddrinfo(list);
    if (!out.empty()) return out;
    return make_error("no usable address");
  }
  if (rc != EAI_NONAME) return make_error("cannot resolve: {}", gai_text(rc, errno));

  auto lookup = std::make_shared<Lookup>();
  try {
    std::thread([lookup, host, service] {
      addrinfo name_hints{};
      name_hints.ai_family = AF_UNSPEC;
      name_hints.ai_socktype = SOCK_STREAM;
      name_hints.ai_flags = AI_NUMERICSERV;
      addrinfo* found = nullptr;
      const int lookup_rc = getaddrinfo(host.c_str(), service.c_str(), &name_hints, &found);
      const int lookup_err = errno;
      std::vector<Address> addresses;
      if (lookup_rc == 0) addresses = copy_addresses(found);
      if (found != nullptr) freeaddrinfo(found);
      const std::lock_guard lock(lookup->mutex);
      lookup->rc = lookup_rc;
      lookup->err = lookup_err;
      lookup->addresses = std::move(addresses);
      lookup->done = true;
      lookup->done_cv.notify_all();
    }).detach();
  } catch (const std::system_error& e) {
    return make_error("cannot start name lookup: {}", e.what());
  }
  std::unique_lock lock(lookup->mutex);
  if (!lookup->done_cv.wait_for(lock, timeout, [&] { return lookup->done; })) {
    return make_error("name lookup timed out after {}", format_duration(timeout));
  }
  if (lookup->rc != 0) return make_error("cannot resolve: {}", gai_text(lookup->rc, lookup->err));
  if (lookup->addresses.empty()) return make_error("no usable address");
  return lookup->addresses;
}

/// How much a failed connect says about the host: refused (host is up) beats unreachable
/// beats timeout.
int rank(ProbeState s) {
  switch (s) {
    case ProbeState::refused: return 3;
    case ProbeState::unreachable: return 2;
    case ProbeState::timeout: return 1;
    default: return 0;
  }
}

ProbeState classify_connect_errno(int err) {
  switch (err) {
    case ECONNREFUSED:
    case ECONNRESET: return ProbeState::refused;
    case ETIMEDOUT: return ProbeState::timeout;
    default: return ProbeState::unreachable;
  }
}

struct ConnectOutcome {
  Fd fd;
  ProbeState failure = ProbeState::timeout;
  std::string detail;
};

/// Connects to all addresses in parallel; the first to succeed wins.
ConnectOutcome connect_any(const std::vector<Address>& addresses, Millis timeout) {
  ConnectOutcome result;
  const SteadyTime deadline = SteadyClock::now() + timeout;
  std::vector<Fd> pending;
  int best_rank = -1;
  const auto note_failure = [&](ProbeState s, int err) {
    if (rank(s) > best_rank) {
      best_rank = rank(s);
      result.failure = s;
      result.detail = std::strerror(err);
    }
  };

  for (const auto& a : addresses) {
    Fd fd(::socket(a.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
      note_failure(ProbeState::unreachable, errno);
      continue;
    }
    int rc = 0;
    do {
      rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a.storage), a.length);
    } while (rc != 0 && errno == EINTR);
    if (rc == 0) {
      result.fd = std::move(fd);
      return result;
    }
    if (errno == EINPROGRESS || errno == EALREADY) {
      pending.push_back(std::move(fd));
    } else {
      note_failure(classify_connect_errno(errno), errno);
    }
  }

  while (!pending.empty()) {
    const int wait_ms = remaining_ms(deadline);
    if (wait_ms <= 0) break;
    std::vector<pollfd> pfds;
    pfds.reserve(pending.size());
    for (const auto& fd : pending) pfds.push_back(pollfd{fd.get(), POLLOUT, 0});
    const int n = ::poll(pfds.data(), pfds.size(), wait_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      note_failure(ProbeState::unreachable, errno);
      break;
    }
    std::vector<Fd> still;
    for (std::size_t i = 0; i < pending.size(); ++i) {
      if (pfds[i].revents == 0) {
        still.push_back(std::move(pending[i]));
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(pending[i].get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err == 0) {
        result.fd = std::move(pending[i]);
        return result;  // the others close as `pending`/`still` go out of scope
      }
      note_failure(classify_connect_errno(err), err);
    }
    pending = std::move(still);
  }
  if (!pending.empty() && best_rank < rank(ProbeState::timeout)) {
    result.failure = ProbeState::timeout;
    result.detail = fmt::format("no answer within {}", format_duration(timeout));
  }
  return result;
}

bool is_supported_version(std::string_view line) {
  return starts_with(line, "SSH-2.0-") || starts_with(line, "SSH-1.99-");
}

/// KeepSocket::yes: waits for the first data and peeks at it. True (result up) when it is a whole
/// supported SSH version line: libssh then reads it again from the same socket. Anything else
/// (lines before the banner, a line split over packets, an old version) is left for read_banner.
bool peek_banner(int fd, SteadyTime deadline, ProbeResult& result) {
  char chunk[512];
  for (;;) {
    const int wait_ms = remaining_ms(deadline);
    if (wait_ms <= 0) return false;
    pollfd pfd{fd, POLLIN, 0};
    const int n = ::poll(&pfd, 1, wait_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    const ssize_t got = ::recv(fd, chunk, sizeof chunk, MSG_PEEK);
    if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (got <= 0) return false;
    std::string_view seen(chunk, static_cast<std::size_t>(got));
    const std::size_t nl = seen.find('\n');
    if (nl == std::string_view::npos) return false;
    std::string_view line = seen.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!starts_with(line, "SSH-") || !is_supported_version(line)) return false;
    result.state = ProbeState::up;
    result.banner = printable(line);
    result.detail.clear();
    return true;
  }
}

/// Reads lines until the SSH version line (RFC 4253 4.2 allows other lines before it).
void read_banner(int fd, Millis timeout, ProbeResult& result) {
  const SteadyTime deadline = SteadyClock::now() + timeout;
  std::string buffer;
  std::string first_junk;
  std::size_t skipped = 0;
  char chunk[512];
  for (;;) {
    // Consume complete lines.
    for (std::size_t nl = buffer.find('\n'); nl != std::string::npos; nl = buffer.find('\n')) {
      std::string_view line(buffer.data(), nl);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (starts_with(line, "SSH-")) {
        if (is_supported_version(line)) {
          result.state = ProbeState::up;
          result.banner = printable(line);
          result.detail.clear();
        } else {
          result.state = ProbeState::no_banner;
          result.detail = fmt::format("unsupported SSH version \"{}\"", printable(line));
        }
        return;
      }
      if (first_junk.empty()) first_junk = printable(line.substr(0, 80));
      skipped += nl + 1;
      buffer.erase(0, nl + 1);
      if (skipped > kMaxPreBanner) {
        result.state = ProbeState::no_banner;
        result.detail = fmt::format("received \"{}\" and more, but no SSH version line", first_junk);
        return;
      }
    }
    if (buffer.size() > kMaxLine) {
      result.state = ProbeState::no_banner;
      result.detail = fmt::format("received an over-long line \"{}...\"", printable(buffer.substr(0, 80)));
      return;
    }
    const auto received = [&] {
      std::string seen = first_junk.empty() ? printable(std::string_view(buffer).substr(0, 80)) : first_junk;
      return seen.empty() ? std::string("nothing received") : fmt::format("received \"{}\"", seen);
    };

    const int wait_ms = remaining_ms(deadline);
    if (wait_ms <= 0) {
      result.state = ProbeState::no_banner;
      result.detail = fmt::format("no SSH version line within {}; {}", format_duration(timeout), received());
      return;
    }
    pollfd pfd{fd, POLLIN, 0};
    const int n = ::poll(&pfd, 1, wait_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      result.state = ProbeState::no_banner;
      result.detail = fmt::format("poll failed: {}", std::strerror(errno));
      return;
    }
    if (n == 0) continue;  // the deadline check above ends the loop
    const ssize_t got = ::recv(fd, chunk, sizeof chunk, 0);
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      result.state = ProbeState::no_banner;
      result.detail = fmt::format("connection failed before the SSH version line ({}); {}", std::strerror(errno),
                                  received());
      return;
    }
    if (got == 0) {
      result.state = ProbeState::no_banner;
      result.detail = fmt::format("connection closed before the SSH version line; {}", received());
      return;
    }
    buffer.append(chunk, static_cast<std::size_t>(got));
  }
}

std::string host_port(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", printable(host), port);
  return fmt::format("{}:{}", printable(host), port);
}

bool is_cancelled(const std::atomic<bool>* cancel) { return cancel != nullptr && cancel->load(); }

/// The probe/sleep/resend loop shared by wait_until_up and wait_for_ssh.
Result<WaitOutcome> wait_loop(const WaitOptions& options, Clock& clock, const std::function<void()>& resend,
                              const std::atomic<bool>* cancel, WaitOutcome outcome, SteadyTime start,
                              SteadyTime resend_epoch) {
  const ProbeFunction probe =
      options.probe_function
          ? options.probe_function
          : ProbeFunction([keep = options.keep_socket](const std::string& h, int p, const ProbeTimeouts& t) {
              return probe_ssh(h, p, t, keep);
            });
  const auto deadline = start + options.timeout;
  const auto interval = std::max(options.poll_interval, Millis(1));
  const bool resending = resend && options.resend_interval.count() > 0;
  auto next_resend = resend_epoch + options.resend_interval;
  const auto interrupted = [&] {
    return make_error(ExitCode::interrupted, "interrupted while waiting for {} to answer ({} probes, {} elapsed)",
                      host_port(options.host, options.port), outcome.probes,
                      format_duration(clock.steady_now() - start));
  };

  for (;;) {
    if (is_cancelled(cancel)) return interrupted();
    // The last probes never connect for longer than the time that is left (but get at least 50 ms).
    ProbeTimeouts timeouts = options.probe;
    const auto left = std::chrono::duration_cast<Millis>(deadline - clock.steady_now());
    timeouts.connect = std::clamp(left, Millis(50), std::max(timeouts.connect, Millis(50)));
    outcome.last = probe(options.host, options.port, timeouts);
    ++outcome.probes;
    auto now = clock.steady_now();
    outcome.elapsed = now - start;
    if (outcome.last.state == ProbeState::up) return outcome;
    if (now >= deadline) {
      return make_error(ExitCode::unavailable,
                        "host {} did not answer with an SSH banner within {}; last probe: {} ({} probes, {} wake "
                        "packet resends)",
                        host_port(options.host, options.port),
                        format_duration(options.timeout),
                        outcome.last.describe(), outcome.probes, outcome.resends);
    }
    if (resending && now >= next_resend) {
      resend();
      ++outcome.resends;
      while (next_resend <= now) next_resend += options.resend_interval;
    }
    // Sleep until the next probe in small slices so a cancel is noticed quickly.
    const auto pause = outcome.last.state == ProbeState::refused
                           ? std::clamp(options.refused_poll_interval, Millis(1), interval)
                           : interval;
    const auto wake_at = std::min(now + pause, deadline);
    while ((now = clock.steady_now()) < wake_at) {
      if (is_cancelled(cancel)) return interrupted();
      clock.sleep_for(std::min(std::chrono::duration_cast<Millis>(wake_at - now) + Millis(1), kCancelSlice));
    }
  }
}

}  // namespace

std::string_view to_string(ProbeState state) noexcept {
  switch (state) {
    case ProbeState::refused: return "connection refused";
    case ProbeState::unreachable: return "unreachable";
    case ProbeState::timeout: return "connect timeout";
    case ProbeState::no_banner: return "no SSH banner";
    case ProbeState::up: return "up";
  }
  return "unknown";
}

std::string ProbeResult::describe() const {
  if (state == ProbeState::up) return fmt::format("up ({})", banner);
  if (detail.empty() || state == ProbeState::refused) return std::string(to_string(state));
  return fmt::format("{} ({})", to_string(state), detail);
}

ProbeResult probe_ssh(const std::string& host, int port, const ProbeTimeouts& timeouts, KeepSocket keep) {
  const SteadyTime start = SteadyClock::now();
  ProbeResult result;
  const auto finish = [&]() -> ProbeResult {
    result.elapsed = SteadyClock::now() - start;
    return result;
  };
  if (port < 1 || port > 65535) {
    result.state = ProbeState::unreachable;
    result.detail = fmt::format("port {} out of range", port);
    return finish();
  }
  auto addresses = resolve(host, port, timeouts.resolve);
  if (!addresses) {
    result.state = ProbeState::unreachable;
    result.detail = addresses.error().message;
    return finish();
  }
  ConnectOutcome connected = connect_any(*addresses, timeouts.connect);
  if (connected.fd.get() < 0) {
    result.state = connected.failure;
    result.detail = std::move(connected.detail);
    return finish();
  }
  if (keep == KeepSocket::yes && peek_banner(connected.fd.get(), SteadyClock::now() + timeouts.banner, result)) {
    result.socket = std::make_shared<Fd>(std::move(connected.fd));
    return finish();
  }
  read_banner(connected.fd.get(), timeouts.banner, result);
  return finish();
}

ProbeResult probe_ssh(const std::string& host, int port, Millis connect_timeout) {
  ProbeTimeouts timeouts;
  timeouts.connect = connect_timeout;
  return probe_ssh(host, port, timeouts);
}

ProbeResult initial_probe(const WaitOptions& options) {
  if (options.probe_function) return options.probe_function(options.host, options.port, options.probe);
  return probe_ssh(options.host, options.port, options.probe, options.keep_socket);
}

Result<WaitOutcome> wait_until_up(const WaitOptions& options, Clock& clock, const std::function<void()>& resend,
                                  const std::atomic<bool>* cancel) {
  const auto start = clock.steady_now();
  return wait_loop(options, clock, resend, cancel, WaitOutcome{}, start, start);
}

Result<WaitOutcome> wait_for_ssh(const WaitOptions& options, Clock& clock, const std::function<void()>& wake,
                                 const std::atomic<bool>* cancel) {
  const auto start = clock.steady_now();
  WaitOutcome outcome;
  outcome.last = initial_probe(options);
  outcome.probes = 1;
  if (outcome.last.state == ProbeState::up) {
    outcome.was_up_before = true;
    outcome.elapsed = clock.steady_now() - start;
    return outcome;
  }
  if (is_cancelled(cancel)) {
    return make_error(ExitCode::interrupted, "interrupted before waking {}", host_port(options.host, options.port));
  }
  if (wake) {
    wake();
    ++outcome.resends;
  }
  const auto woken_at = clock.steady_now();
  return wait_loop(options, clock, wake, cancel, std::move(outcome), start, woken_at);
}

}  // namespace hozo
