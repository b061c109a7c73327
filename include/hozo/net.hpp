#pragma once
// Is the box up? A TCP probe that only says "up" when sshd answers with an SSH-2.0 banner,
// and the wait loop run after the wake-on-LAN packet: probe fast, resend the packet now and
// then, give up after ssh_timeout.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "hozo/util/fd.hpp"
#include "hozo/util/result.hpp"
#include "hozo/util/time.hpp"

namespace hozo {

/// What one probe saw.
enum class ProbeState {
  refused,      ///< connection refused (host up, sshd not listening yet) — or RST
  unreachable,  ///< no route / host down / name did not resolve
  timeout,      ///< no answer to the connect within the connect timeout
  no_banner,    ///< connected, but no SSH-2.0 banner line before the banner deadline
  up            ///< sshd answered with "SSH-2.0-..." (or "SSH-1.99-...")
};

/// "connection refused", "unreachable", "connect timeout", "no SSH banner", "up".
std::string_view to_string(ProbeState state) noexcept;

/// The result of one probe.
struct ProbeResult {
  ProbeState state = ProbeState::unreachable;
  std::string banner;  ///< the SSH version line (printable, without CR LF) when up
  std::string detail;  ///< human detail: errno text, what was received instead of a banner...
  std::chrono::steady_clock::duration elapsed{};
  /// With KeepSocket::yes and state up: the connected socket, its banner still unread (peeked),
  /// for the SSH session to take over instead of connecting again (sshd forks once, not twice).
  std::shared_ptr<Fd> socket;
  /// "connection refused", or "no SSH banner (received \"HTTP/1.1 400\")".
  [[nodiscard]] std::string describe() const;
};

/// Time limits of one probe; a probe never takes longer than resolve + connect + banner.
struct ProbeTimeouts {
  Millis connect{500};  ///< TCP connect (all resolved addresses are tried in parallel)
  Millis banner{2000};  ///< from connected to the end of the version line
  Millis resolve{2000}; ///< host name lookup (literals skip it)
};

/// Whether a probe that finds sshd keeps its connection for the SSH session (ProbeResult::socket).
enum class KeepSocket { no, yes };

/// Connects to host:port (IPv4 or IPv6; names resolved with getaddrinfo) without blocking
/// longer than the timeouts, then reads lines until the SSH version line. With KeepSocket::yes a
/// version line that arrives first and whole is only peeked at, and the socket is kept.
ProbeResult probe_ssh(const std::string& host, int port, const ProbeTimeouts& timeouts,
                      KeepSocket keep = KeepSocket::no);

/// probe_ssh with the given connect timeout and the default banner/resolve timeouts.
ProbeResult probe_ssh(const std::string& host, int port, Millis connect_timeout);

/// A probe implementation (tests substitute a fake).
using ProbeFunction = std::function<ProbeResult(const std::string& host, int port, const ProbeTimeouts&)>;

/// How to wait for the box.
struct WaitOptions {
  std::string host;
  int port = 22;
  std::chrono::milliseconds timeout{std::chrono::minutes(2)};  ///< overall (job.ssh_timeout)
  ProbeTimeouts probe;                                          ///< per probe
  Millis poll_interval{250};                                    ///< pause between probes
  /// Pause after a refused connection: the host is up but sshd is not listening yet, and a refused
  /// connect costs nothing (one SYN, one RST), so sshd is seen within ~25 ms of listening.
  Millis refused_poll_interval{25};
  Millis resend_interval{10000};  ///< call resend() this often while waiting; 0 = never
  ProbeFunction probe_function;   ///< empty = probe_ssh
  KeepSocket keep_socket = KeepSocket::no;  ///< probe_ssh keeps the socket of the probe that finds sshd
};

/// What the wait saw.
struct WaitOutcome {
  bool was_up_before = false;  ///< the first probe (before any packet) already found sshd
  ProbeResult last;            ///< the final probe
  std::chrono::steady_clock::duration elapsed{};  ///< from the start of the wait
  int probes = 0;   ///< probes made (including the initial one for wait_for_ssh)
  int resends = 0;  ///< calls of the resend/wake callback
};

/// One probe with the options' timeouts; call it before sending any packet to learn
/// whether the box was already up.
ProbeResult initial_probe(const WaitOptions& options);

/// Probes every poll_interval until sshd answers; calls `resend` every resend_interval
/// (measured from the start; the caller has already sent the first packet). Errors:
/// ExitCode::unavailable after options.timeout ("host H:P did not answer with an SSH
/// banner within 2m 0s; last probe: connection refused"), ExitCode::interrupted when
/// *cancel becomes true. `resend` and `cancel` may be empty/null.
Result<WaitOutcome> wait_until_up(const WaitOptions& options, Clock& clock, const std::function<void()>& resend,
                                  const std::atomic<bool>* cancel);

/// initial_probe, then (if not up) `wake()` once and wait_until_up with `wake` as the resend
/// callback. outcome.was_up_before tells whether the box was already up (no packet sent).
Result<WaitOutcome> wait_for_ssh(const WaitOptions& options, Clock& clock, const std::function<void()>& wake,
                                 const std::atomic<bool>* cancel);

}  // namespace hozo
