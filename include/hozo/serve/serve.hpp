#pragma once
// `hozo serve`: the dashboard, the JSON API (/api/v1/), /healthz and /metrics on the http
// module. A read-mostly view of the config and the state file: it never runs the pipeline in
// its own process; actions start `hozo` (or hozo@NAME.service) as separate processes.

#include <filesystem>
#include <memory>
#include <string>

#include "hozo/config.hpp"
#include "hozo/http/router.hpp"
#include "hozo/util/result.hpp"

namespace hozo::serve {

/// Where the dashboard reads from and how it starts actions.
struct DashboardOptions {
  std::filesystem::path config_path;  ///< re-read when its mtime changes
  std::filesystem::path state_path;   ///< the state file (re-read when it changes)
  std::filesystem::path hozo_binary;  ///< the hozo executable actions run (default /proc/self/exe)
  enum class Runner { automatic, systemd, process } runner = Runner::automatic;  ///< how "Run now" starts a run
};

/// True for 127.0.0.0/8, ::1 and localhost.
bool is_loopback_host(std::string_view host);

/// Refuses a listen address that is not loopback when no password and no token are configured.
/// The error names both keys.
Result<void> check_exposure(std::string_view host, const ServeSettings& settings, const std::string& password_hash);

/// Reads serve.password_hash_file: the first line, which must look like a crypt(3) hash ("$y$...").
Result<std::string> load_password_hash(const ServeSettings& settings);

/// The dashboard's request handling (routes, caches of config and state, auth, actions).
class Dashboard {
 public:
  /// Throws std::runtime_error when the state directory cannot be prepared (run_serve checks first).
  Dashboard(Config config, std::string password_hash, DashboardOptions options);
  ~Dashboard();
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;

  /// Every route; the Dashboard must outlive the router's server.
  http::Router routes();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// `hozo serve`: loads, checks the exposure, serves until SIGINT/SIGTERM. Returns the exit code.
int run_serve(const std::filesystem::path& config_path, const std::filesystem::path& state_path, const std::string& listen);

}  // namespace hozo::serve
