#include "hozo/ssh.hpp"

#include "hozo/ssh_api.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include <fmt/format.h>
#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <spdlog/spdlog.h>

#include "hozo/util/fs.hpp"
#include "hozo/util/strings.hpp"
#include "ssh_key.hpp"

namespace hozo {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr Millis kPollSlice{200};          // longest single wait inside the exec loop
constexpr Millis kMinConnectTimeout{100};  // libssh treats a zero timeout as "forever"

std::filesystem::path home_dir() {
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') return home;
  if (const passwd* pw = ::getpwuid(::geteuid()); pw != nullptr && pw->pw_dir != nullptr) return pw->pw_dir;
  return "/";
}

std::string session_error(ssh_session session) {
  const char* message = ssh_get_error(session);
  return printable(message != nullptr && *message != '\0' ? message : "unknown libssh error");
}

/// True when libssh has given up on the transport (peer closed, socket error).
bool connection_lost(ssh_session session) {
  return ssh_is_connected(session) == 0 || (ssh_get_status(session) & SSH_CLOSED_ERROR) != 0;
}

/// Acknowledges the peer's next packets at once instead of after the delayed-ACK timer. sshd sends
/// a command's small answers (channel confirmation, data, exit status) with Nagle's algorithm on,
/// so each one after the first waits for our ACK: up to 40 ms per round trip on Linux. The kernel
/// leaves quick-ACK mode again on its own, so this is set before every wait.
void ack_quickly(ssh_session session) {
  const socket_t fd = ssh_get_fd(session);
  if (fd == SSH_INVALID_SOCKET) return;
  const int on = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
}

std::string host_entry_for(const SshOptions& options) {
  if (options.port == 22) return options.host;
  return fmt::format("[{}]:{}", options.host, options.port);
}

std::string job_hint(const SshOptions& options) { return options.job.empty() ? std::string("JOB") : options.job; }

std::string timeout_text(Millis d) { return format_duration(std::chrono::duration<double>(d)); }

/// Frees an ssh_channel (closing it first when it is still open).
struct ChannelDeleter {
  void operator()(ssh_channel channel) const noexcept { ssh_channel_free(channel); }
};
using ChannelPtr = std::unique_ptr<std::remove_pointer_t<ssh_channel>, ChannelDeleter>;

std::string key_type_of(ssh_key key) {
  const char* name = ssh_key_type_to_char(ssh_key_type(key));
  return name != nullptr ? name : "unknown";
}

/// Fingerprints of the plain (unhashed) known_hosts entries naming `host_entry`.
std::vector<std::string> recorded_fingerprints(const std::filesystem::path& file, const std::string& host_entry) {
  std::vector<std::string> result;
  auto text = read_file(file);
  if (!text) return result;
  for (std::string_view line : split_lines(*text)) {
    line = trim(line);
    if (line.empty() || line.front() == '#' || line.front() == '@') continue;
    std::vector<std::string_view> fields;
    for (std::string_view field : split(line, ' ')) {
      if (!field.empty()) fields.push_back(field);
    }
    if (fields.size() < 3) continue;
    bool match = false;
    for (std::string_view pattern : split(fields[0], ',')) match = match || pattern == host_entry;
    if (!match) continue;
    ssh_key key = nullptr;
    const std::string type(fields[1]);
    const std::string blob(fields[2]);
    if (ssh_pki_import_pubkey_base64(blob.c_str(), ssh_key_type_from_name(type.c_str()), &key) != SSH_OK) continue;
    KeyPtr owned(key);
    std::string fp = fingerprint_of(key);
    if (!fp.empty()) result.push_back(fmt::format("{} {}", type, fp));
  }
  return result;
}

/// Loads the private key (unencrypted keys only: there is nobody to ask for a passphrase).
Result<KeyPtr> load_identity(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return make_error("SSH identity file {} does not exist", path.string());
  }
  if (::access(path.c_str(), R_OK) != 0) {
    return make_error("SSH identity file {} is not readable: {}", path.string(), std::strerror(errno));
  }
  ssh_key key = nullptr;
  const int rc = ssh_pki_import_privkey_file(path.c_str(), nullptr, nullptr, nullptr, &key);
  if (rc != SSH_OK || key == nullptr) {
    return make_error(
        "cannot load SSH identity file {}: not a private key, or protected by a passphrase "
        "(hozo runs unattended and needs a key without passphrase)",
        path.string());
  }
  return KeyPtr(key);
}

Result<void> set_option(ssh_session session, ssh_options_e option, const void* value, std::string_view name) {
  if (ssh_options_set(session, option, value) < 0) {
    return make_error(ExitCode::software, "libssh rejected option {}: {}", name, session_error(session));
  }
  return ok();
}

/// Creates the known_hosts file (0600) and its directory (0700) when missing.
Result<void> ensure_known_hosts_file(const std::filesystem::path& file) {
  if (file.has_parent_path()) {
    if (auto made = make_dirs(file.parent_path(), 0700); !made) return made;
  }
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    return make_error("cannot create known_hosts file {}: {}", file.string(), std::strerror(errno));
  }
  ::close(fd);
  return ok();
}

}  // namespace

/// "SHA256:<unpadded base64>" like `ssh-keygen -l`; empty on failure.
std::string fingerprint_of(ssh_key key) {
  unsigned char* hash = nullptr;
  size_t hash_len = 0;
  if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hash_len) != SSH_OK) return {};
  char* text = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hash_len);
  ssh_clean_pubkey_hash(&hash);
  if (text == nullptr) return {};
  std::string result(text);
  ssh_string_free_char(text);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Options

Result<std::filesystem::path> resolve_identity_file(const SshOptions& options) {
  if (!options.identity_file.empty()) return expand_home(options.identity_file);
  const std::filesystem::path dir = home_dir() / ".ssh";
  for (const char* name : {"id_ed25519", "id_ecdsa", "id_rsa"}) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(dir / name, ec)) return dir / name;
  }
  return make_error("no SSH identity for {}: ssh_key is not set and none of {}/id_ed25519, id_ecdsa, id_rsa exists",
                    describe_target(options), dir.string());
}

SshOptions ssh_options_for(const Job& job) {
  SshOptions options;
  options.job = job.name;
  options.host = job.target_host;
  options.port = job.ssh_port;
  options.user = job.ssh_user;
  options.identity_file = job.ssh_key;
  options.known_hosts = job.known_hosts.empty() ? default_known_hosts_path() : expand_home(job.known_hosts);
  options.host_key_policy = job.host_key_policy;
  options.connect_timeout = std::chrono::duration_cast<Millis>(job.ssh_connect_timeout);
  return options;
}

std::filesystem::path default_known_hosts_path() {
  if (const char* state = std::getenv("STATE_DIRECTORY"); state != nullptr && *state != '\0') {
    // systemd may list several directories separated by ':'; the first is ours.
    const std::string_view first = split(state, ':').front();
    if (!first.empty()) return std::filesystem::path(std::string(first)) / "known_hosts";
  }
  if (::geteuid() == 0) return "/var/lib/hozo/known_hosts";
  return home_dir() / ".ssh" / "known_hosts";
}

std::string describe_target(const SshOptions& options) {
  return fmt::format("{}@{}:{}", options.user, options.host, options.port);
}

std::string_view to_string(HostKeyState state) noexcept {
  switch (state) {
    case HostKeyState::known: return "known";
    case HostKeyState::unknown: return "unknown";
    case HostKeyState::changed: return "changed";
    case HostKeyState::other: return "other key type recorded";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// Session

struct SshSession::Impl {
  SshOptions options;
  HostKeyInfo host_key;
  ssh_session session = nullptr;

  /// A socket handed to libssh (SshOptions::socket): libssh 0.10 leaves such a socket open, so it
  /// is closed here after the session, unless libssh did close it (then the number may be reused:
  /// the inode tells whether it is still the same socket).
  int adopted_fd = -1;
  ino_t adopted_inode = 0;

  explicit Impl(SshOptions o) : options(std::move(o)) {}
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    if (session != nullptr) {
      ssh_disconnect(session);
      ssh_free(session);
    }
    struct stat st {};
    if (adopted_fd >= 0 && ::fstat(adopted_fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == adopted_inode) {
      ::close(adopted_fd);
    }
  }
};

namespace {

using Impl = SshSession::Impl;

/// Creates the session with explicit options and opens the transport (TCP + key exchange).
Result<std::unique_ptr<Impl>> open_transport(const SshOptions& options) {
  if (auto loaded = libssh::load(); !loaded) return std::move(loaded).error();
  if (options.host.empty()) return make_error(ExitCode::config, "SSH: no host given");
  if (options.port <= 0 || options.port > 65535) {
    return make_error(ExitCode::config, "SSH: invalid port {} for {}", options.port, options.host);
  }
  auto impl = std::make_unique<Impl>(options);
  if (impl->options.known_hosts.empty()) impl->options.known_hosts = default_known_hosts_path();
  impl->session = ssh_new();
  if (impl->session == nullptr) return make_error(ExitCode::software, "ssh_new failed (out of memory?)");
  ssh_session s = impl->session;
  const SshOptions& o = impl->options;

  // Never read ~/.ssh/config or /etc/ssh/ssh_config: it could override host, port, user,
  // known_hosts or StrictHostKeyChecking behind our back.
  const bool process_config = false;
  const int port = o.port;
  const int strict = 1;
  // Commands are small request/answer exchanges: with Nagle on, each waits for the peer's delayed
  // ACK (40 ms on Linux) -- every exec cost ~40 ms more than through OpenSSH, which sets it too.
  const int nodelay = 1;
  const Millis timeout = std::max(o.connect_timeout, kMinConnectTimeout);
  const long timeout_sec = static_cast<long>(timeout.count() / 1000);
  const long timeout_usec = static_cast<long>((timeout.count() % 1000) * 1000);
  const std::string known_hosts = o.known_hosts.string();
  // libssh takes ~ from the passwd entry; use $HOME like the identity lookup does. With
  // PROCESS_CONFIG off this only matters for defaults we override anyway.
  const std::string ssh_dir = (home_dir() / ".ssh").string();
  struct Setting {
    ssh_options_e option;
    const void* value;
    std::string_view name;
  };
  const Setting settings[] = {
      {SSH_OPTIONS_PROCESS_CONFIG, &process_config, "PROCESS_CONFIG"},
      {SSH_OPTIONS_SSH_DIR, ssh_dir.c_str(), "SSH_DIR"},
      {SSH_OPTIONS_HOST, o.host.c_str(), "HOST"},
      {SSH_OPTIONS_PORT, &port, "PORT"},
      {SSH_OPTIONS_USER, o.user.c_str(), "USER"},
      {SSH_OPTIONS_KNOWNHOSTS, known_hosts.c_str(), "KNOWNHOSTS"},
      {SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null", "GLOBAL_KNOWNHOSTS"},
      {SSH_OPTIONS_STRICTHOSTKEYCHECK, &strict, "STRICTHOSTKEYCHECK"},
      {SSH_OPTIONS_TIMEOUT, &timeout_sec, "TIMEOUT"},
      {SSH_OPTIONS_TIMEOUT_USEC, &timeout_usec, "TIMEOUT_USEC"},
      {SSH_OPTIONS_NODELAY, &nodelay, "NODELAY"},
  };
  for (const Setting& setting : settings) {
    if (auto set = set_option(s, setting.option, setting.value, setting.name); !set) return std::move(set).error();
  }

  if (o.socket && o.socket->open()) {
    // Closed by ~Impl. SSH_OPTIONS_NODELAY only reaches sockets libssh opens itself.
    const socket_t fd = o.socket->release();
    impl->adopted_fd = fd;
    if (struct stat st {}; ::fstat(fd, &st) == 0) impl->adopted_inode = st.st_ino;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof nodelay);
    if (auto set = set_option(s, SSH_OPTIONS_FD, &fd, "FD"); !set) return std::move(set).error();
    spdlog::debug("ssh: connecting to {} on the probe's connection (timeout {})", describe_target(o),
                  timeout_text(timeout));
  } else {
    spdlog::debug("ssh: connecting to {} (timeout {})", describe_target(o), timeout_text(timeout));
  }
  if (ssh_connect(s) != SSH_OK) {
    const std::string message = session_error(s);
    const std::string lower = to_lower(message);
    std::string what;
    if (lower.find("refused") != std::string::npos) {
      what = "connection refused";
    } else if (lower.find("timeout") != std::string::npos || lower.find("timed out") != std::string::npos) {
      what = fmt::format("timed out after {}", timeout_text(timeout));
    } else {
      what = "connection failed";
    }
    return make_error(ExitCode::unavailable, "SSH to {}: {} ({})", describe_target(o), what, message);
  }
  return impl;
}

/// Reads the server key and compares it with the known_hosts file (no policy applied).
Result<HostKeyInfo> inspect_host_key(Impl& impl) {
  ssh_key server_key = nullptr;
  if (ssh_get_server_publickey(impl.session, &server_key) != SSH_OK || server_key == nullptr) {
    return make_error("SSH to {}: could not read the server's host key: {}", describe_target(impl.options),
                      session_error(impl.session));
  }
  KeyPtr owned(server_key);
  HostKeyInfo info;
  info.host_entry = host_entry_for(impl.options);
  info.key_type = key_type_of(server_key);
  info.fingerprint = fingerprint_of(server_key);
  if (info.fingerprint.empty()) {
    return make_error("SSH to {}: could not compute the host key fingerprint", describe_target(impl.options));
  }
  switch (ssh_session_is_known_server(impl.session)) {
    case SSH_KNOWN_HOSTS_OK: info.state = HostKeyState::known; break;
    case SSH_KNOWN_HOSTS_NOT_FOUND:
    case SSH_KNOWN_HOSTS_UNKNOWN: info.state = HostKeyState::unknown; break;
    case SSH_KNOWN_HOSTS_CHANGED: info.state = HostKeyState::changed; break;
    case SSH_KNOWN_HOSTS_OTHER: info.state = HostKeyState::other; break;
    case SSH_KNOWN_HOSTS_ERROR:
    default:
      return make_error("SSH to {}: cannot check the host key against {}: {}", describe_target(impl.options),
                        impl.options.known_hosts.string(), session_error(impl.session));
  }
  if (info.state == HostKeyState::changed || info.state == HostKeyState::other) {
    info.recorded_fingerprints = recorded_fingerprints(impl.options.known_hosts, info.host_entry);
  }
  return info;
}

/// The error for a changed / other-type host key (policy does not matter).
Error mismatch_error(const Impl& impl, const HostKeyInfo& info) {
  const std::string file = impl.options.known_hosts.string();
  const std::string recorded =
      info.recorded_fingerprints.empty() ? std::string("a different key") : join(info.recorded_fingerprints, ", ");
  const std::string headline = info.state == HostKeyState::changed
                                   ? fmt::format("HOST KEY CHANGED for {}", info.host_entry)
                                   : fmt::format("HOST KEY TYPE MISMATCH for {}", info.host_entry);
  return make_error(ExitCode::failure,
                    "{}: the server offers {} {} but {} records {}. This may be a man-in-the-middle attack, or the "
                    "box was reinstalled. If the change is expected, remove the old entry with "
                    "`ssh-keygen -R '{}' -f {}` and run `hozo hostkey {} --accept`.",
                    headline, info.key_type, info.fingerprint, file, recorded, info.host_entry, file,
                    job_hint(impl.options));
}

/// Appends the server key to known_hosts and checks that it now matches.
Result<void> record_host_key(Impl& impl, const HostKeyInfo& info) {
  if (auto created = ensure_known_hosts_file(impl.options.known_hosts); !created) return created;
  if (ssh_session_update_known_hosts(impl.session) != SSH_OK) {
    return make_error("cannot record host key of {} in {}: {}", info.host_entry, impl.options.known_hosts.string(),
                      session_error(impl.session));
  }
  if (ssh_session_is_known_server(impl.session) != SSH_KNOWN_HOSTS_OK) {
    return make_error("recorded host key of {} in {}, but it does not match on re-reading", info.host_entry,
                      impl.options.known_hosts.string());
  }
  return ok();
}

/// Applies the host key policy: known passes, unknown fails (strict) or is recorded
/// (accept_new), changed/other always fail.
Result<HostKeyInfo> verify_host_key(Impl& impl) {
  auto inspected = inspect_host_key(impl);
  if (!inspected) return inspected;
  HostKeyInfo info = std::move(inspected).value();
  switch (info.state) {
    case HostKeyState::known: return info;
    case HostKeyState::changed:
    case HostKeyState::other: return mismatch_error(impl, info);
    case HostKeyState::unknown: break;
  }
  if (impl.options.host_key_policy == HostKeyPolicy::strict) {
    return make_error(ExitCode::failure,
                      "host key of {} is not known ({} {}; known_hosts: {}). Compare the fingerprint with "
                      "`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on the box, then trust it with "
                      "`hozo hostkey {} --accept` (or set host_key_policy: accept_new).",
                      info.host_entry, info.key_type, info.fingerprint, impl.options.known_hosts.string(),
                      job_hint(impl.options));
  }
  if (auto recorded = record_host_key(impl, info); !recorded) return std::move(recorded).error();
  spdlog::warn("ssh: new host key for {} recorded in {} (host_key_policy accept_new): {} {}", info.host_entry,
               impl.options.known_hosts.string(), info.key_type, info.fingerprint);
  info.state = HostKeyState::known;
  return info;
}

Result<void> authenticate(Impl& impl, const std::filesystem::path& identity, ssh_key key) {
  const std::string target = describe_target(impl.options);
  const int rc = ssh_userauth_publickey(impl.session, nullptr, key);
  switch (rc) {
    case SSH_AUTH_SUCCESS: return ok();
    case SSH_AUTH_DENIED:
      return make_error(ExitCode::failure,
                        "SSH to {}: public key authentication denied for user {} with key {} ({}); is its .pub "
                        "in ~{}/.ssh/authorized_keys on the box?",
                        target, impl.options.user, identity.string(), fingerprint_of(key), impl.options.user);
    case SSH_AUTH_PARTIAL:
      return make_error(ExitCode::failure,
                        "SSH to {}: key {} was accepted but the server requires further authentication "
                        "(unsupported for unattended backups)",
                        target, identity.string());
    default:
      if (connection_lost(impl.session)) {
        return make_error(ExitCode::unavailable, "SSH to {}: connection lost during authentication: {}", target,
                          session_error(impl.session));
      }
      return make_error(ExitCode::failure, "SSH to {}: authentication with key {} failed: {}", target,
                        identity.string(), session_error(impl.session));
  }
}

// ---------------------------------------------------------------------------------------------
// Running one command on a channel

/// What the channel callbacks collected.
struct ChannelState {
  std::string out;
  std::string err;
  std::size_t limit = 0;
  bool overflow = false;
  bool eof = false;
  bool closed = false;
  std::optional<int> exit_status;
  std::optional<std::string> exit_signal;
  bool core_dumped = false;
};

int on_data(ssh_session /*session*/, ssh_channel /*channel*/, void* data, uint32_t len, int is_stderr,
            void* userdata) {
  auto* state = static_cast<ChannelState*>(userdata);
  if (!state->overflow) {
    const std::size_t total = state->out.size() + state->err.size() + len;
    if (total > state->limit) {
      state->overflow = true;
    } else {
      (is_stderr != 0 ? state->err : state->out).append(static_cast<const char*>(data), len);
    }
  }
  return static_cast<int>(len);  // always consume, so the window keeps moving
}

void on_eof(ssh_session /*session*/, ssh_channel /*channel*/, void* userdata) {
  static_cast<ChannelState*>(userdata)->eof = true;
}

void on_close(ssh_session /*session*/, ssh_channel /*channel*/, void* userdata) {
  static_cast<ChannelState*>(userdata)->closed = true;
}

void on_exit_status(ssh_session /*session*/, ssh_channel /*channel*/, int status, void* userdata) {
  static_cast<ChannelState*>(userdata)->exit_status = status;
}

void on_exit_signal(ssh_session /*session*/, ssh_channel /*channel*/, const char* signal, int core,
                    const char* /*errmsg*/, const char* /*lang*/, void* userdata) {
  auto* state = static_cast<ChannelState*>(userdata);
  state->exit_signal = printable(signal != nullptr ? signal : "?");
  state->core_dumped = core != 0;
}

/// Moves the session's socket into an ssh_event for bounded waits; restores it on destruction.
class EventLoop {
 public:
  explicit EventLoop(ssh_session session) : session_(session), event_(ssh_event_new()) {
    if (event_ != nullptr && ssh_event_add_session(event_, session_) != SSH_OK) {
      ssh_event_free(event_);
      event_ = nullptr;
    }
  }
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;
  ~EventLoop() {
    if (event_ != nullptr) {
      ssh_event_remove_session(event_, session_);
      ssh_event_free(event_);
    }
  }
  [[nodiscard]] bool valid() const noexcept { return event_ != nullptr; }
  /// Waits up to `timeout` for traffic and processes it (callbacks run in here).
  int poll(Millis timeout) { return ssh_event_dopoll(event_, static_cast<int>(timeout.count())); }

 private:
  ssh_session session_;
  ssh_event event_;
};

/// How a channel run ended.
enum class RunEnd { finished, timed_out, disconnected, overflow };

/// A command running on its own channel.
struct ChannelRun {
  ChannelState state;
  ssh_channel_callbacks_struct callbacks{};
  ChannelPtr channel;
  bool exec_requested = false;  // the exec request went out (it may not have been confirmed)
  RunEnd end = RunEnd::finished;
  std::string detail;  // libssh's words for a disconnect
};

/// Makes a libssh request that waits for the server's answer (opening a channel, starting a
/// command) in non-blocking steps, pumping the connection here with ack_quickly before each wait.
/// Inside libssh's own blocking wait the kernel's delayed ACK stalls it: right after login sshd
/// sends a packet of its own (the host keys it offers), and with Nagle on its answer then waits
/// for our ACK of that packet, up to 40 ms. SSH_AGAIN means no answer within `timeout`.
template <typename Request>
int request_answered(Impl& impl, Millis timeout, Request&& request) {
  EventLoop loop(impl.session);
  if (!loop.valid()) return request();  // blocking, bounded by SSH_OPTIONS_TIMEOUT
  const auto deadline = SteadyClock::now() + timeout;
  ssh_set_blocking(impl.session, 0);
  int rc = request();
  while (rc == SSH_AGAIN && !connection_lost(impl.session)) {
    const auto now = SteadyClock::now();
    if (now >= deadline) break;
    ack_quickly(impl.session);
    (void)loop.poll(std::min(std::chrono::ceil<Millis>(deadline - now), kPollSlice));
    rc = request();
  }
  ssh_set_blocking(impl.session, 1);
  return rc;
}

/// Opens a channel, installs the callbacks and starts `command`. Errors are "not sent".
Result<void> start_command(Impl& impl, ChannelRun& run, std::string_view command) {
  const std::string target = describe_target(impl.options);
  auto lost_or = [&](std::string_view what) -> Error {
    if (connection_lost(impl.session)) {
      return make_error(ExitCode::unavailable, "SSH to {}: connection lost while {}: {}", target, what,
                        session_error(impl.session));
    }
    return make_error(ExitCode::failure, "SSH to {}: failed {}: {}", target, what, session_error(impl.session));
  };
  if (connection_lost(impl.session)) {
    return make_error(ExitCode::unavailable, "SSH to {}: not connected (connection lost earlier: {})", target,
                      session_error(impl.session));
  }
  run.state.limit = impl.options.output_limit;
  const Millis answer_timeout = std::max(impl.options.connect_timeout, kMinConnectTimeout);
  // A request and its answer; the caller's words for what it was doing name a failure.
  const auto answered = [&](std::string_view what, auto&& request) -> Result<void> {
    const int rc = request_answered(impl, answer_timeout, request);
    if (rc == SSH_OK) return ok();
    if (rc == SSH_AGAIN && !connection_lost(impl.session)) {
      return make_error(ExitCode::unavailable, "SSH to {}: no answer within {} while {}", target,
                        timeout_text(answer_timeout), what);
    }
    return lost_or(what);
  };
  run.channel.reset(ssh_channel_new(impl.session));
  if (!run.channel) return lost_or("creating a channel");
  auto opened = answered("opening a session channel", [&] { return ssh_channel_open_session(run.channel.get()); });
  if (!opened) return opened;

  run.callbacks.userdata = &run.state;
  run.callbacks.channel_data_function = on_data;
  run.callbacks.channel_eof_function = on_eof;
  run.callbacks.channel_close_function = on_close;
  run.callbacks.channel_exit_status_function = on_exit_status;
  run.callbacks.channel_exit_signal_function = on_exit_signal;
  ssh_callbacks_init(&run.callbacks);  // sets the struct size libssh checks
  if (ssh_set_channel_callbacks(run.channel.get(), &run.callbacks) != SSH_OK) {
    return make_error(ExitCode::software, "SSH to {}: cannot install channel callbacks", target);
  }
  const std::string line(command);
  spdlog::debug("ssh {}: {}", target, printable(line));
  run.exec_requested = true;
  return answered("starting the command", [&] { return ssh_channel_request_exec(run.channel.get(), line.c_str()); });
}

/// Pumps the connection until the command is done, the deadline passes, the connection
/// drops or the output limit is exceeded.
void wait_command(Impl& impl, ChannelRun& run, Millis timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  EventLoop loop(impl.session);
  ChannelState& st = run.state;
  while (true) {
    if (st.overflow) {
      run.end = RunEnd::overflow;
      return;
    }
    if (st.closed || (st.eof && (st.exit_status || st.exit_signal))) {
      run.end = RunEnd::finished;
      return;
    }
    if (connection_lost(impl.session)) {
      run.end = RunEnd::disconnected;
      run.detail = session_error(impl.session);
      return;
    }
    const auto now = SteadyClock::now();
    if (now >= deadline) {
      run.end = RunEnd::timed_out;
      return;
    }
    const auto remaining = std::chrono::ceil<Millis>(deadline - now);
    if (!loop.valid()) {
      // Fallback without an event context: plain bounded sleeps between non-blocking pumps.
      ssh_channel_poll(run.channel.get(), 0);
      ::usleep(static_cast<useconds_t>(std::min(remaining, Millis(20)).count() * 1000));
      continue;
    }
    ack_quickly(impl.session);
    if (loop.poll(std::min(remaining, kPollSlice)) == SSH_ERROR && !connection_lost(impl.session)) {
      // dopoll fails when the socket is gone from the poll set; libssh marks the session on
      // the next pump, so only count it as lost once libssh agrees (or time runs out).
      ::usleep(10000);
    }
  }
}

/// Best effort: stop the remote command and drop the channel.
void abandon(ChannelRun& run) {
  if (run.channel && !connection_lost(ssh_channel_get_session(run.channel.get()))) {
    ssh_channel_request_send_signal(run.channel.get(), "TERM");
    ssh_channel_close(run.channel.get());
  }
}

std::string describe_signal(const ChannelState& st) {
  return fmt::format("killed by signal SIG{}{}", *st.exit_signal, st.core_dumped ? " (core dumped)" : "");
}

}  // namespace

SshSession::SshSession(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
SshSession::SshSession(SshSession&&) noexcept = default;
SshSession& SshSession::operator=(SshSession&&) noexcept = default;
SshSession::~SshSession() = default;

Result<SshSession> SshSession::connect(const SshOptions& options) {
  if (auto loaded = libssh::load(); !loaded) return std::move(loaded).error();
  auto identity = resolve_identity_file(options);
  if (!identity) return std::move(identity).error();
  auto key = load_identity(*identity);
  if (!key) return std::move(key).error();

  auto transport = open_transport(options);
  if (!transport) return std::move(transport).error();
  std::unique_ptr<Impl> impl = std::move(transport).value();

  auto host_key = verify_host_key(*impl);
  if (!host_key) return std::move(host_key).error();
  impl->host_key = std::move(host_key).value();

  if (auto authed = authenticate(*impl, *identity, key->get()); !authed) return std::move(authed).error();
  spdlog::debug("ssh: logged in to {} ({} {})", describe_target(impl->options), impl->host_key.key_type,
                impl->host_key.fingerprint);
  return SshSession(std::move(impl));
}

const SshOptions& SshSession::options() const noexcept { return impl_->options; }
const HostKeyInfo& SshSession::host_key() const noexcept { return impl_->host_key; }
std::string SshSession::where() const { return describe_target(impl_->options); }

Result<CommandOutput> SshSession::exec(std::string_view command) { return exec(command, impl_->options.command_timeout); }

Result<CommandOutput> SshSession::exec(std::string_view command, Millis timeout) {
  if (timeout <= Millis::zero()) timeout = impl_->options.command_timeout;
  const std::string target = describe_target(impl_->options);
  ChannelRun run;
  if (auto started = start_command(*impl_, run, command); !started) return std::move(started).error();
  wait_command(*impl_, run, timeout);
  const ChannelState& st = run.state;
  const std::string shown = printable(command.substr(0, 200));
  switch (run.end) {
    case RunEnd::timed_out:
      abandon(run);
      return make_error(ExitCode::failure, "SSH {}: `{}` timed out after {}", target, shown, timeout_text(timeout));
    case RunEnd::overflow:
      abandon(run);
      return make_error(ExitCode::failure, "SSH {}: `{}` produced more than {} bytes of output", target, shown,
                        impl_->options.output_limit);
    case RunEnd::disconnected:
      return make_error(ExitCode::unavailable, "SSH {}: connection lost while running `{}`: {}", target, shown,
                        run.detail);
    case RunEnd::finished: break;
  }
  if (st.exit_signal) return make_error(ExitCode::failure, "SSH {}: `{}` {}", target, shown, describe_signal(st));
  if (!st.exit_status) {
    return make_error(ExitCode::failure, "SSH {}: `{}` ended without an exit status (channel closed by the server)",
                      target, shown);
  }
  return CommandOutput{*st.exit_status, st.out, st.err};
}

Result<SentCommand> SshSession::exec_ignoring_disconnect(std::string_view command, Millis timeout) {
  if (timeout <= Millis::zero()) timeout = impl_->options.command_timeout;
  ChannelRun run;
  auto started = start_command(*impl_, run, command);
  if (!started) {
    // The exec request itself was written before the server could confirm it; a connection
    // that drops right then is the command taking the box down.
    if (run.exec_requested && started.error().code == ExitCode::unavailable) {
      return SentCommand{SendOutcome::disconnected, {}, started.error().message};
    }
    return std::move(started).error();
  }
  wait_command(*impl_, run, timeout);
  SentCommand sent;
  sent.output.out = run.state.out;
  sent.output.err = run.state.err;
  sent.output.exit_status = run.state.exit_status.value_or(-1);
  switch (run.end) {
    case RunEnd::timed_out:
      abandon(run);
      sent.outcome = SendOutcome::no_answer;
      sent.detail = fmt::format("no answer within {}", timeout_text(timeout));
      return sent;
    case RunEnd::disconnected:
      sent.outcome = SendOutcome::disconnected;
      sent.detail = run.detail;
      return sent;
    case RunEnd::overflow:
      abandon(run);
      sent.outcome = SendOutcome::completed;
      sent.detail = "output over the limit; the rest was dropped";
      return sent;
    case RunEnd::finished: break;
  }
  if (run.state.exit_signal) {
    sent.outcome = SendOutcome::disconnected;
    sent.detail = describe_signal(run.state);
  } else if (!run.state.exit_status) {
    sent.outcome = SendOutcome::disconnected;
    sent.detail = "channel closed without an exit status";
  } else {
    sent.outcome = SendOutcome::completed;
  }
  return sent;
}

// ---------------------------------------------------------------------------------------------
// Host key commands, login check, runner

Result<HostKeyInfo> fetch_host_key(const SshOptions& options) {
  auto transport = open_transport(options);
  if (!transport) return std::move(transport).error();
  return inspect_host_key(**transport);
}

Result<void> pin_host_key(const SshOptions& options, std::string_view expected_fingerprint) {
  auto transport = open_transport(options);
  if (!transport) return std::move(transport).error();
  Impl& impl = **transport;
  auto inspected = inspect_host_key(impl);
  if (!inspected) return std::move(inspected).error();
  const HostKeyInfo& info = *inspected;
  if (!expected_fingerprint.empty() && info.fingerprint != expected_fingerprint) {
    return make_error("{} now presents {} {}, not the key {} that was shown; nothing was pinned", info.host_entry,
                      info.key_type, info.fingerprint, expected_fingerprint);
  }
  switch (info.state) {
    case HostKeyState::known:
      spdlog::info("host key of {} is already trusted: {} {}", info.host_entry, info.key_type, info.fingerprint);
      return ok();
    case HostKeyState::changed:
    case HostKeyState::other: return mismatch_error(impl, info);
    case HostKeyState::unknown: break;
  }
  if (auto recorded = record_host_key(impl, info); !recorded) return recorded;
  spdlog::info("trusted host key of {}: {} {} (recorded in {})", info.host_entry, info.key_type, info.fingerprint,
               impl.options.known_hosts.string());
  return ok();
}

Result<void> check_login(const SshOptions& options) {
  auto session = SshSession::connect(options);
  if (!session) return std::move(session).error();
  auto result = session->exec("true", std::max(options.connect_timeout, Millis(10000)));
  if (!result) return std::move(result).error();
  if (result->exit_status != 0) {
    return make_error(ExitCode::failure, "SSH {}: logged in, but `true` exited with status {}{}{}",
                      describe_target(options), result->exit_status, result->err.empty() ? "" : ": ",
                      printable(trim(result->err)));
  }
  return ok();
}

Result<CommandOutput> SshCommandRunner::run(const std::vector<std::string>& argv, std::chrono::seconds timeout) {
  if (argv.empty()) return make_error(ExitCode::software, "SSH {}: empty command", where());
  return session_.exec(shell_join(argv), std::chrono::duration_cast<Millis>(timeout));
}

}  // namespace hozo
