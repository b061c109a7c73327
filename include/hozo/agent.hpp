#pragma once
// The orchestrator's client for backupd (the agent on the backup box): libcurl with short
// timeouts, the bearer token in a header (never in a URL or a message), and strict JSON
// parsing: garbage from the remote side becomes an Error, never a crash.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hozo/disk.hpp"
#include "hozo/util/result.hpp"
#include "hozo/util/secret.hpp"

namespace hozo {

/// GET /ping.
struct AgentPing {
  std::string status;        ///< "ok"
  std::int64_t uptime = 0;   ///< seconds the daemon has been running
  std::string version;
};

/// One pool of GET /status.
struct AgentPool {
  std::string name;
  std::string health;  ///< ONLINE, DEGRADED, ...
  std::uint64_t size = 0;
  std::uint64_t alloc = 0;
  std::uint64_t free = 0;
  std::string state;
  std::string scan;
  std::string errors;
};

/// GET /status.
struct AgentStatus {
  std::vector<AgentPool> pools;
  std::optional<double> uptime;  ///< box uptime in seconds
  std::vector<double> load;      ///< 1, 5, 15 minute load averages
  bool receive_running = false;
  std::string version;
  /// The pool with this name, or nullptr.
  [[nodiscard]] const AgentPool* find_pool(std::string_view name) const;
};

/// GET /disk/{dev}.
struct AgentDiskState {
  std::string device;  ///< kernel name
  std::string path;    ///< device node on the box
  SpinState state = SpinState::unknown;
  std::string state_error;  ///< why the state is unknown, if the agent said
  std::optional<bool> rotational;
  std::optional<std::uint64_t> reads;  ///< reads completed since boot
};

/// POST /disk/{dev}/spinup.
struct AgentSpinup {
  std::string device;
  SpinState before = SpinState::unknown;
  SpinState state = SpinState::unknown;
  std::int64_t waited_ms = 0;
};

/// Parsers for the agent's JSON bodies (exposed for tests). Errors say what was wrong.
Result<AgentPing> parse_agent_ping(std::string_view body);
/// See parse_agent_ping.
Result<AgentStatus> parse_agent_status(std::string_view body);
/// See parse_agent_ping.
Result<AgentDiskState> parse_agent_disk(std::string_view body);
/// See parse_agent_ping.
Result<AgentSpinup> parse_agent_spinup(std::string_view body);

/// Timeouts of one AgentClient.
struct AgentClientOptions {
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds request_timeout{15000};  ///< whole request (spinup adds its own timeout)
  std::size_t max_response = 1 << 20;                ///< bytes; larger answers are an Error
};

/// HTTP client for one backupd. Each call is one request on a fresh connection; safe to use
/// from one thread at a time. Error codes: unavailable (connection refused, timeout),
/// tempfail (409: a zfs receive is running), failure (401, other HTTP errors, bad JSON).
class AgentClient {
 public:
  /// `url` like "http://192.0.2.10:9999" (a trailing '/' is fine); `token` may be empty
  /// (then only ping() can succeed).
  AgentClient(std::string url, Secret token, AgentClientOptions options = {});

  /// GET /ping (no token needed).
  Result<AgentPing> ping();
  /// GET /status.
  Result<AgentStatus> status();
  /// GET /disk/{dev}; `dev` is a kernel name ("sda") or "/dev/disk/by-id/NAME".
  Result<AgentDiskState> disk_state(std::string_view dev);
  /// As disk_state, but a device backupd does not know (HTTP 400: no such block device, which
  /// is how a disk that has not appeared yet answers) is nullopt, not an Error.
  Result<std::optional<AgentDiskState>> find_disk(std::string_view dev);
  /// POST /disk/{dev}/spinup?timeout=S; waits up to `timeout` (plus the request timeout).
  Result<AgentSpinup> spinup(std::string_view dev, std::chrono::seconds timeout);
  /// POST /shutdown[?force=1]; ok on 202. A running zfs receive is an Error with code tempfail.
  Result<void> shutdown(bool force = false);

  /// The base URL (no token in it).
  [[nodiscard]] const std::string& url() const noexcept { return url_; }

 private:
  struct Response {
    long status = 0;
    std::string body;
  };
  Result<Response> request(const char* method, const std::string& path_and_query, bool auth,
                           std::chrono::milliseconds extra_timeout = std::chrono::milliseconds(0));
  Result<std::string> disk_path(std::string_view dev) const;

  std::string url_;
  Secret token_;
  AgentClientOptions options_;
};

}  // namespace hozo
