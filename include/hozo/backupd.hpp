#pragma once
// backupd: the small HTTP agent on the remote backup box (see man/backupd.8).
//
// Endpoints (JSON): GET /ping (no auth), GET /status, POST /shutdown[?force=1],
// GET /disk/{dev} (or /disk/by-id?id=ID), POST /disk/{dev}/spinup[?timeout=S].
// Everything but /ping needs `Authorization: Bearer <token>`. HTTP: hozo/http/server.hpp.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hozo/command.hpp"
#include "hozo/disk.hpp"
#include "hozo/util/result.hpp"
#include "hozo/util/secret.hpp"

namespace hozo {

/// Runs backupd with its command line; returns the process exit code.
int run_backupd(int argc, char** argv);

/// backupd's configuration (/etc/hozo/backupd.yaml) with defaults resolved.
struct BackupdConfig {
  std::string listen_host = "127.0.0.1";
  int listen_port = 9999;  ///< 0 = pick a free port (tests)
  std::filesystem::path token_file;          ///< empty = $CREDENTIALS_DIRECTORY/backupd-token
  std::vector<std::string> export_pools;     ///< exported (in order) before the shutdown command
  std::vector<std::string> shutdown_command{"shutdown", "-h", "now"};
  std::chrono::seconds shutdown_delay{5};    ///< between the 202 answer and the export
  std::chrono::seconds command_timeout{60};  ///< per zpool / hdparm / shutdown command
  std::chrono::seconds spinup_timeout{60};   ///< default (and maximum) for POST .../spinup
  // HTTP limits (see http/server.hpp; libmicrohttpd enforces most of them itself).
  std::size_t payload_max = 16 * 1024;       ///< request body bytes; larger → 413 (or closed, if chunked)
  std::chrono::seconds read_timeout{5};      ///< longest silence on a connection (reading, writing, idle)
  std::chrono::seconds request_timeout{10};  ///< whole request (line, headers, body) must arrive in this
  std::size_t keep_alive_max = 20;           ///< requests per connection
  std::size_t max_connections = 32;          ///< open connections (each has a thread); more are closed at once
  std::size_t max_connections_per_ip = 8;    ///< from one address
  std::size_t connection_memory = 32 * 1024; ///< per connection: request line + headers + read buffer
  /// Keys still accepted from older configs but without effect (named in --check's warnings).
  std::vector<std::string> ignored_keys;
  DiskPaths disk;                   ///< sysfs and /dev roots
  std::filesystem::path proc_root = "/proc";
};

/// Parses backupd.yaml text; unknown keys and bad values are errors (code 78), one per line.
Result<BackupdConfig> parse_backupd_config(std::string_view yaml, std::string_view file_name);

/// The same, collecting every problem in `problems` and returning what could be parsed (the
/// keys that were valid), so that --check can go on to check the token too.
BackupdConfig parse_backupd_config_all(std::string_view yaml, std::string_view file_name,
                                       std::vector<std::string>& problems);

/// Reads and parses a config file.
Result<BackupdConfig> load_backupd_config(const std::filesystem::path& path);

/// Splits "HOST:PORT" / "[V6]:PORT" / "HOST" (port 9999). Messages name no key: callers add it.
Result<std::pair<std::string, int>> parse_listen_address(std::string_view text);

/// Splits a command string into argv the way hozo.yaml's commands read ("shutdown -h now",
/// 'quoted words' and "double quoted" ones), without a shell: no variables, globs, pipes or
/// redirections (those characters outside quotes are an error).
Result<std::vector<std::string>> split_command(std::string_view text);

/// What `backupd --check` found: problems (exit 78) and warnings (exit 0, printed loudly).
struct BackupdCheck {
  std::vector<std::string> problems;
  std::vector<std::string> warnings;
};

/// Checks a loaded config and its token for --check and start-up: no token (a problem for
/// --check), a token file readable by group or others, a non-loopback listen address over
/// plain HTTP, ignored keys.
BackupdCheck check_backupd(const BackupdConfig& config, const Result<Secret>& token);

/// The token: token_file if set, else $CREDENTIALS_DIRECTORY/backupd-token if present; an
/// empty Secret when neither exists (protected routes are then disabled). A configured file
/// that cannot be read, or an empty file, is an Error.
Result<Secret> load_backupd_token(const BackupdConfig& config);

/// Constant-time check of an Authorization header value against the token (http::bearer_matches).
bool bearer_matches(std::string_view header_value, const Secret& token) noexcept;

/// True when a NUL-separated /proc/PID/cmdline is a `zfs receive`/`zfs recv` (directly, or
/// as a shell command string containing one).
bool cmdline_is_zfs_receive(std::string_view cmdline);

/// Scans PROC_ROOT/[0-9]*/cmdline for a running zfs receive (ignores this process).
bool zfs_receive_running(const std::filesystem::path& proc_root);

/// Which device a /disk request is about, or why it is refused (400).
/// `path_part` is the {dev} part of the path; `id_param` the ?id= value (for "by-id").
Result<BlockDevice> resolve_disk_request(const DiskPaths& paths, std::string_view path_part,
                                         const std::optional<std::string>& id_param);

/// One pool as the /status endpoint reports it.
struct PoolStatus {
  std::string name;
  std::string health;
  std::uint64_t size = 0;
  std::uint64_t alloc = 0;
  std::uint64_t free = 0;
  std::string state;   ///< from zpool status
  std::string scan;    ///< "scrub: ..." / "scan: ..." line of zpool status
  std::string errors;  ///< "errors: ..." line of zpool status
};

/// Parses `zpool list -H [-p] -o name,health,size,allocated,free` output. Sizes are exact
/// bytes with -p, or human ("250M", "1.5T", "-") without it (zfs-fuse has no -p).
Result<std::vector<PoolStatus>> parse_zpool_list(std::string_view output);

/// Parses a human zpool size ("250M", "2.81M", "1.00T", "512", "-" = 0) into bytes.
std::optional<std::uint64_t> parse_zpool_size(std::string_view text);

/// Fills state/scan/errors of `pool` from `zpool status POOL` output.
void apply_zpool_status(PoolStatus& pool, std::string_view output);

/// What the server calls out to; everything has a real default, tests inject fakes.
struct BackupdDeps {
  CommandRunner* runner = nullptr;              ///< zpool, hdparm, shutdown (required)
  std::function<bool()> receive_running;        ///< default: zfs_receive_running(proc_root)
  std::function<Result<void>(const BlockDevice&)> spinup_read;  ///< default: direct_read_4k
  std::function<void(std::chrono::milliseconds)> sleep;        ///< default: this_thread::sleep_for
};

/// The HTTP server (on the http module). Construct, then start(); stop() or the destructor end it.
class BackupdServer {
 public:
  /// `token` empty: protected routes answer 401 and a warning is logged at start().
  /// `listen_fd` >= 0: serve that listening socket (systemd socket activation), not config.listen_*.
  BackupdServer(BackupdConfig config, Secret token, BackupdDeps deps, int listen_fd = -1);
  ~BackupdServer();
  BackupdServer(const BackupdServer&) = delete;
  BackupdServer& operator=(const BackupdServer&) = delete;

  /// Binds (or takes the socket) and serves on the server's threads; returns the bound port.
  Result<int> start();
  /// Stops serving and joins the background and shutdown threads.
  void stop();
  /// True once a POST /shutdown was accepted.
  [[nodiscard]] bool shutdown_requested() const noexcept;
  /// Blocks until the shutdown sequence (export + command) has finished, or `timeout`.
  bool wait_shutdown_done(std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hozo
