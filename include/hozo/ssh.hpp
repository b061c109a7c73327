#pragma once
// SSH to the backup box with libssh 0.10: explicit options (never ~/.ssh/config, never an
// agent), OpenSSH-style host-key checking against an explicit known_hosts file, public-key
// authentication with an identity file, and command execution with our own deadlines.
//
// Error codes: connection problems (refused, unreachable, timeout, dropped) are
// ExitCode::unavailable; host-key problems and authentication failures are ExitCode::failure.

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hozo/command.hpp"
#include "hozo/config.hpp"
#include "hozo/util/fd.hpp"
#include "hozo/util/result.hpp"
#include "hozo/util/time.hpp"

namespace hozo {

/// How to reach and authenticate to one SSH server.
struct SshOptions {
  std::string host;
  int port = 22;
  /// Job name, only for hints in messages ("hozo hostkey JOB --accept"); may be empty.
  std::string job;
  std::string user = "root";
  /// Private key file; empty = the first of ~/.ssh/id_ed25519, id_ecdsa, id_rsa that exists.
  std::string identity_file;
  /// known_hosts file used for checking and recording host keys; empty = default_known_hosts_path().
  std::filesystem::path known_hosts;
  HostKeyPolicy host_key_policy = HostKeyPolicy::strict;
  /// Limit for the TCP connect and every blocking protocol step (key exchange, auth, channel open).
  Millis connect_timeout{10000};
  /// Default limit for one remote command (exec without an explicit timeout).
  Millis command_timeout{std::chrono::minutes(10)};
  /// Most bytes of stdout+stderr kept per command; more is an Error.
  std::size_t output_limit = std::size_t{64} << 20;
  /// A socket already connected to host:port whose SSH banner is still unread (a probe's, see
  /// KeepSocket): the session takes it over instead of connecting. Empty = connect.
  std::shared_ptr<Fd> socket;
};

/// The SSH options of a job (target_host, ssh_user, ssh_port, ssh_key, known_hosts,
/// host_key_policy, ssh_connect_timeout).
SshOptions ssh_options_for(const Job& job);

/// The identity file to use: options.identity_file (with "~/" expanded), else the first of
/// ~/.ssh/id_ed25519, id_ecdsa, id_rsa that exists; Error when there is none. syncoid gets the
/// same file as libssh.
Result<std::filesystem::path> resolve_identity_file(const SshOptions& options);

/// /var/lib/hozo/known_hosts as root ($STATE_DIRECTORY/known_hosts when systemd sets it),
/// otherwise ~/.ssh/known_hosts.
std::filesystem::path default_known_hosts_path();

/// "user@host:port".
std::string describe_target(const SshOptions& options);

/// How a server's host key relates to the known_hosts file.
enum class HostKeyState {
  known,    ///< recorded and matching
  unknown,  ///< no entry for this host (or no known_hosts file yet)
  changed,  ///< an entry of the same key type with a different key: possible attack
  other     ///< only entries of other key types: possible attack
};

/// "known", "unknown", "changed", "other key type recorded".
std::string_view to_string(HostKeyState state) noexcept;

/// A server's host key as seen during the key exchange.
struct HostKeyInfo {
  std::string host_entry;   ///< the known_hosts name: "host" for port 22, else "[host]:port"
  std::string key_type;     ///< "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa", ...
  std::string fingerprint;  ///< OpenSSH style: "SHA256:" + unpadded base64
  HostKeyState state = HostKeyState::unknown;
  /// Fingerprints of the recorded keys for this host when they differ (changed/other);
  /// hashed known_hosts entries cannot be matched and are not listed.
  std::vector<std::string> recorded_fingerprints;
};

/// Connects (no authentication, no command) and reports the server's host key and how it
/// relates to options.known_hosts; used by `hozo hostkey NAME`.
Result<HostKeyInfo> fetch_host_key(const SshOptions& options);

/// Records the server's host key in options.known_hosts (creating it 0600 and its directory
/// 0700) when it is unknown, regardless of the policy; does nothing when it is already known;
/// fails when a different key is recorded. Used by `hozo hostkey NAME --accept` and `hozo init`.
/// With `expected_fingerprint` ("SHA256:..."), a server presenting any other key (a new
/// connection may reach another machine than the one whose key was shown) is refused.
Result<void> pin_host_key(const SshOptions& options, std::string_view expected_fingerprint = {});

/// How exec_ignoring_disconnect ended.
enum class SendOutcome {
  completed,     ///< the command finished; exit status and output are valid
  disconnected,  ///< the connection dropped after the command was sent (expected for shutdown)
  no_answer      ///< the command was sent but nothing came back before the timeout
};

/// The result of a command sent with exec_ignoring_disconnect.
struct SentCommand {
  SendOutcome outcome = SendOutcome::completed;
  CommandOutput output;  ///< exit status meaningful only when outcome == completed
  std::string detail;    ///< why the connection ended, for logs
};

/// A connected, host-key-verified and authenticated SSH session (RAII over ssh_session).
class SshSession {
 public:
  /// Connects, checks the host key against options.known_hosts (recording it for
  /// accept_new), and authenticates with the identity file.
  static Result<SshSession> connect(const SshOptions& options);

  SshSession(SshSession&&) noexcept;
  SshSession& operator=(SshSession&&) noexcept;
  SshSession(const SshSession&) = delete;
  SshSession& operator=(const SshSession&) = delete;
  ~SshSession();

  /// Runs a command line (parsed by the remote user's shell; build it with shell_join) and
  /// collects its output. Errors: timeout (the remote command is sent SIGTERM, which sshd
  /// honours only for non-root logins, and the channel is closed), connection lost (ExitCode::unavailable), output over the limit, killed by a
  /// signal, no exit status. A non-zero exit status is a value. A timeout <= 0 means
  /// options().command_timeout.
  Result<CommandOutput> exec(std::string_view command, Millis timeout);
  /// exec with options().command_timeout.
  Result<CommandOutput> exec(std::string_view command);

  /// Sends a command whose success may take the connection down (shutdown): once the command
  /// was accepted by the server, a dropped connection or a timeout is a value, not an Error.
  /// Errors only when the command could not be sent at all.
  Result<SentCommand> exec_ignoring_disconnect(std::string_view command, Millis timeout);

  /// The options this session was made with.
  [[nodiscard]] const SshOptions& options() const noexcept;
  /// The server's host key (state is `known` once connected).
  [[nodiscard]] const HostKeyInfo& host_key() const noexcept;
  /// "user@host:port".
  [[nodiscard]] std::string where() const;

  struct Impl;  ///< implementation detail (libssh handles)

 private:
  explicit SshSession(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

/// Connects, authenticates and runs `true`: a login check with precise errors
/// (connection refused/timeout, host key unknown/changed, key rejected, ...).
Result<void> check_login(const SshOptions& options);

/// CommandRunner over a connected SshSession: run(argv) = exec(shell_join(argv)).
class SshCommandRunner final : public CommandRunner {
 public:
  /// Takes ownership of a connected session.
  explicit SshCommandRunner(SshSession session) : session_(std::move(session)) {}

  Result<CommandOutput> run(const std::vector<std::string>& argv, std::chrono::seconds timeout) override;
  /// "user@host:port".
  [[nodiscard]] std::string where() const override { return session_.where(); }

  /// The underlying session (for exec_ignoring_disconnect).
  SshSession& session() noexcept { return session_; }

 private:
  SshSession session_;
};

}  // namespace hozo
