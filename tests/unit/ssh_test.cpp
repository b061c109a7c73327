// The SSH module against a real OpenSSH server on 127.0.0.1 (an ephemeral port, temporary
// host and client keys; never /etc/ssh or /root/.ssh). Needs root and /usr/sbin/sshd;
// otherwise the server tests are skipped.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "test_support.hpp"
#include <libssh/libssh.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "hozo/net.hpp"
#include "hozo/process.hpp"
#include "hozo/ssh.hpp"
#include "hozo/util/strings.hpp"

using namespace hozo;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr const char* kSshd = "/usr/sbin/sshd";

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

using TempDir = hozo::test::TempDir;

/// Sets an environment variable for the scope of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

/// Runs argv locally; empty optional on failure.
std::optional<std::string> run_local(const std::vector<std::string>& argv) {
  ProcessOptions options;
  options.argv = argv;
  options.timeout = Millis(30000);
  auto result = run_process(options);
  if (!result || result->exit_code != 0) return std::nullopt;
  return result->out;
}

/// A free TCP port on 127.0.0.1 (bind to 0, read it back, release it).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

/// Generates an unencrypted key pair; the private key is at `path`, the public at path.pub.
bool make_key(const fs::path& path, const std::string& type) {
  return run_local({"ssh-keygen", "-q", "-t", type, "-N", "", "-C", "hozo-test", "-f", path.string()}).has_value();
}

/// "SHA256:..." of a public key file, as ssh-keygen prints it.
std::string keygen_fingerprint(const fs::path& pub) {
  auto out = run_local({"ssh-keygen", "-l", "-E", "sha256", "-f", pub.string()});
  if (!out) return {};
  std::istringstream in(*out);
  std::string bits;
  std::string fp;
  in >> bits >> fp;
  return fp;
}

/// One sshd -D on 127.0.0.1:port with the given host key.
class Sshd {
 public:
  Sshd(fs::path dir, int port) : dir_(std::move(dir)), port_(port) {}
  Sshd(const Sshd&) = delete;
  Sshd& operator=(const Sshd&) = delete;
  ~Sshd() { stop(); }

  /// Starts the server and waits until it answers with a banner; false (with `why`) on failure.
  bool start(const fs::path& host_key, const fs::path& authorized_keys, std::string& why) {
    stop();
    const fs::path config = dir_ / "sshd_config";
    std::ostringstream cfg;
    cfg << "Port " << port_ << "\n"
        << "ListenAddress 127.0.0.1\n"
        << "HostKey " << host_key.string() << "\n"
        << "AuthorizedKeysFile " << authorized_keys.string() << "\n"
        << "PermitRootLogin prohibit-password\n"
        << "PubkeyAuthentication yes\n"
        << "PasswordAuthentication no\n"
        << "KbdInteractiveAuthentication no\n"
        << "StrictModes no\n"
        << "UsePAM no\n"
        << "PidFile none\n"
        << "LogLevel VERBOSE\n";
    write_text(config, cfg.str());
    log_ = dir_ / "sshd.log";
    pid_ = ::fork();
    if (pid_ < 0) {
      why = "fork failed";
      return false;
    }
    if (pid_ == 0) {
      const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      const std::string config_path = config.string();
      ::execl(kSshd, kSshd, "-D", "-e", "-f", config_path.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        why = "sshd exited: " + slurp(log_);
        return false;
      }
      if (probe_ssh("127.0.0.1", port_, Millis(200)).state == ProbeState::up) return true;
      std::this_thread::sleep_for(50ms);
    }
    why = "sshd did not answer: " + slurp(log_);
    stop();
    return false;
  }

  /// Stops the listener (sessions it forked live on until their connection ends).
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }

  [[nodiscard]] std::string log() const { return slurp(log_); }

 private:
  fs::path dir_;
  int port_;
  pid_t pid_ = -1;
  fs::path log_;
};

/// Per test: keys, an sshd, and SshOptions pointing at them.
class SshServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run sshd on 127.0.0.1";
    if (::access(kSshd, X_OK) != 0) GTEST_SKIP() << kSshd << " is not installed";
    if (!find_in_path("ssh-keygen")) GTEST_SKIP() << "ssh-keygen is not installed";
    ASSERT_FALSE(tmp_.path().empty());
    std::error_code ec;
    fs::create_directories("/run/sshd", ec);  // sshd's privilege separation directory
    dir_ = tmp_.path();
    host_key_ = dir_ / "host_ed25519";
    client_key_ = dir_ / "client_ed25519";
    authorized_keys_ = dir_ / "authorized_keys";
    ASSERT_TRUE(make_key(host_key_, "ed25519"));
    ASSERT_TRUE(make_key(client_key_, "ed25519"));
    fs::copy_file(fs::path(client_key_.string() + ".pub"), authorized_keys_);
    port_ = free_port();
    ASSERT_GT(port_, 0);
    sshd_ = std::make_unique<Sshd>(dir_, port_);
    std::string why;
    ASSERT_TRUE(sshd_->start(host_key_, authorized_keys_, why)) << why;
  }

  /// Options for the test server; known_hosts lives in a not-yet-existing directory.
  [[nodiscard]] SshOptions options(HostKeyPolicy policy = HostKeyPolicy::strict) const {
    SshOptions o;
    o.job = "testjob";
    o.host = "127.0.0.1";
    o.port = port_;
    o.user = "root";
    o.identity_file = client_key_.string();
    o.known_hosts = dir_ / "state" / "known_hosts";
    o.host_key_policy = policy;
    o.connect_timeout = Millis(5000);
    o.command_timeout = Millis(20000);
    return o;
  }

  /// Trusts the server's current host key.
  void pin() {
    auto pinned = pin_host_key(options());
    ASSERT_TRUE(pinned.ok()) << pinned.error().message;
  }

  /// A connected session (host key pinned first).
  std::optional<SshSession> session() {
    pin();
    auto s = SshSession::connect(options());
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
    if (!s.ok()) return std::nullopt;
    return std::move(s).value();
  }

  [[nodiscard]] std::string host_fingerprint() const { return keygen_fingerprint(host_key_.string() + ".pub"); }
  [[nodiscard]] std::string known_hosts_text() const { return slurp(dir_ / "state" / "known_hosts"); }

  TempDir tmp_;
  fs::path dir_;
  fs::path host_key_;
  fs::path client_key_;
  fs::path authorized_keys_;
  int port_ = 0;
  std::unique_ptr<Sshd> sshd_;
};

// --- options (no server needed) -------------------------------------------------------------

TEST(SshOptionsTest, FromJob) {
  Job job;
  job.name = "nightly";
  job.target_host = "192.0.2.10";
  job.ssh_user = "backup";
  job.ssh_port = 2222;
  job.ssh_key = "/etc/hozo/id_ed25519";
  job.known_hosts = "/etc/hozo/known_hosts";
  job.host_key_policy = HostKeyPolicy::accept_new;
  job.ssh_connect_timeout = 7s;
  const SshOptions o = ssh_options_for(job);
  EXPECT_EQ(o.job, "nightly");
  EXPECT_EQ(o.host, "192.0.2.10");
  EXPECT_EQ(o.user, "backup");
  EXPECT_EQ(o.port, 2222);
  EXPECT_EQ(o.identity_file, "/etc/hozo/id_ed25519");
  EXPECT_EQ(o.known_hosts, fs::path("/etc/hozo/known_hosts"));
  EXPECT_EQ(o.host_key_policy, HostKeyPolicy::accept_new);
  EXPECT_EQ(o.connect_timeout, Millis(7000));
  EXPECT_EQ(describe_target(o), "backup@192.0.2.10:2222");
}

TEST(SshOptionsTest, DefaultKnownHostsPath) {
  {
    ScopedEnv state("STATE_DIRECTORY", "/var/lib/hozo-unit:/var/lib/other");
    EXPECT_EQ(default_known_hosts_path(), fs::path("/var/lib/hozo-unit/known_hosts"));
  }
  ::unsetenv("STATE_DIRECTORY");
  if (::geteuid() == 0) {
    EXPECT_EQ(default_known_hosts_path(), fs::path("/var/lib/hozo/known_hosts"));
  } else {
    ScopedEnv home("HOME", "/home/someone");
    EXPECT_EQ(default_known_hosts_path(), fs::path("/home/someone/.ssh/known_hosts"));
  }
  Job job;
  job.target_host = "box";
  EXPECT_EQ(ssh_options_for(job).known_hosts, default_known_hosts_path());
}

// --- against sshd ---------------------------------------------------------------------------

TEST_F(SshServerTest, ExecReturnsStdoutStderrAndExitStatus) {
  auto s = session();
  ASSERT_TRUE(s);
  auto r = s->exec(shell_join({"sh", "-c", "echo out; echo err >&2; exit 3"}), Millis(10000));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_EQ(r->exit_status, 3);

  // The session is reusable, and larger output arrives complete.
  auto big = s->exec("head -c 3000000 /dev/zero | tr '\\0' x", Millis(20000));
  ASSERT_TRUE(big.ok()) << big.error().message;
  EXPECT_EQ(big->exit_status, 0);
  EXPECT_EQ(big->out.size(), 3000000U);
  EXPECT_EQ(big->out.find_first_not_of('x'), std::string::npos);
}

TEST_F(SshServerTest, SessionTakesOverTheProbesConnection) {
  pin();
  const auto probe = probe_ssh("127.0.0.1", port_, ProbeTimeouts{}, KeepSocket::yes);
  ASSERT_EQ(probe.state, ProbeState::up) << probe.describe();
  ASSERT_TRUE(probe.socket && probe.socket->open());
  const int fd = probe.socket->get();
  auto o = options();
  o.socket = probe.socket;
  {
    auto s = SshSession::connect(o);
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_FALSE(probe.socket->open());  // libssh owns it now
    auto r = s->exec("echo over-the-probe", Millis(10000));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->out, "over-the-probe\n");
  }
  // Closed with the session, not leaked.
  std::error_code ec;
  EXPECT_FALSE(fs::exists(fmt::format("/proc/self/fd/{}", fd), ec)) << fs::read_symlink(fmt::format("/proc/self/fd/{}", fd), ec);
}

TEST_F(SshServerTest, RunnerPassesMetacharactersLiterally) {
  auto s = session();
  ASSERT_TRUE(s);
  SshCommandRunner runner(std::move(*s));
  EXPECT_EQ(runner.where(), "root@127.0.0.1:" + std::to_string(port_));
  const std::string nasty = "a b; echo PWNED $(id) `id` 'q' \"d\" * \\ | & > /tmp/x $HOME ~ {1,2} !! \t\nline2";
  auto r = runner.run({"printf", "%s|", nasty, "-n", ""}, 10s);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->exit_status, 0);
  EXPECT_EQ(r->out, nasty + "|-n||");
  EXPECT_EQ(r->out.find("PWNED uid"), std::string::npos);

  auto failing = runner.run({"sh", "-c", "exit 42"}, 10s);
  ASSERT_TRUE(failing.ok());
  EXPECT_EQ(failing->exit_status, 42);
  EXPECT_FALSE(runner.run({}, 10s).ok());
}

TEST_F(SshServerTest, TimeoutIsAnErrorAfterTheDeadline) {
  auto s = session();
  ASSERT_TRUE(s);
  const fs::path pid_file = dir_ / "sleep.pid";
  const auto start = std::chrono::steady_clock::now();
  auto r = s->exec(fmt::format("echo $$ > {}; exec sleep 30", shell_quote(pid_file.string())), Millis(1000));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ExitCode::failure);
  EXPECT_NE(r.error().message.find("timed out after 1.0s"), std::string::npos) << r.error().message;
  EXPECT_GE(elapsed, 900ms);
  EXPECT_LT(elapsed, 4s);
  // The connection is still usable afterwards.
  auto again = s->exec("echo alive", Millis(10000));
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->out, "alive\n");
  // sshd refuses signal requests for root sessions (no post-auth privsep), so the remote
  // sleep may outlive the channel; end the one this test started.
  if (auto pid = parse_int(trim(slurp(pid_file))); pid && *pid > 1) ::kill(static_cast<pid_t>(*pid), SIGKILL);
}

TEST_F(SshServerTest, SilentCommandDoesNotTimeOutEarly) {
  // The command is quiet for longer than the connect timeout (which libssh applies to every
  // blocking call): the command deadline alone decides.
  SshOptions o = options();
  o.connect_timeout = Millis(500);
  pin();
  auto s = SshSession::connect(o);
  ASSERT_TRUE(s.ok()) << s.error().message;
  auto r = s->exec("sleep 1.5; echo done", Millis(10000));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->out, "done\n");
}

TEST_F(SshServerTest, SignalAndOutputLimitAreErrors) {
  auto s = session();
  ASSERT_TRUE(s);
  auto killed = s->exec("kill -TERM $$", Millis(10000));
  ASSERT_FALSE(killed.ok());
  EXPECT_NE(killed.error().message.find("signal SIGTERM"), std::string::npos) << killed.error().message;

  pin();
  SshOptions o = options();
  o.output_limit = 1000;
  auto small = SshSession::connect(o);
  ASSERT_TRUE(small.ok()) << small.error().message;
  auto r = small->exec("head -c 5000 /dev/zero", Millis(10000));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("more than 1000 bytes"), std::string::npos) << r.error().message;
}

TEST_F(SshServerTest, StrictRefusesUnknownHostWithFingerprint) {
  const std::string fp = host_fingerprint();
  ASSERT_TRUE(starts_with(fp, "SHA256:")) << fp;
  auto s = SshSession::connect(options(HostKeyPolicy::strict));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ExitCode::failure);
  EXPECT_NE(s.error().message.find(fp), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("hozo hostkey testjob --accept"), std::string::npos) << s.error().message;
  EXPECT_FALSE(fs::exists(dir_ / "state" / "known_hosts"));
  // We never authenticated, so nothing can have run.
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(sshd_->log().find("Accepted publickey"), std::string::npos) << sshd_->log();

  // check_login reports the same problem.
  auto login = check_login(options(HostKeyPolicy::strict));
  ASSERT_FALSE(login.ok());
  EXPECT_NE(login.error().message.find(fp), std::string::npos);
}

TEST_F(SshServerTest, AcceptNewPinsUnknownHost) {
  auto first = SshSession::connect(options(HostKeyPolicy::accept_new));
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->host_key().fingerprint, host_fingerprint());
  EXPECT_EQ(first->host_key().state, HostKeyState::known);

  const fs::path file = dir_ / "state" / "known_hosts";
  ASSERT_TRUE(fs::exists(file));
  EXPECT_EQ(fs::status(file).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(fs::status(file.parent_path()).permissions() & fs::perms::all, fs::perms::owner_all);
  // A non-standard port is recorded OpenSSH style.
  const std::string text = known_hosts_text();
  EXPECT_TRUE(starts_with(text, "[127.0.0.1]:" + std::to_string(port_) + " ssh-ed25519 ")) << text;
  EXPECT_EQ(split_lines(text).size(), 1U);
  // OpenSSH agrees with the entry.
  EXPECT_TRUE(run_local({"ssh-keygen", "-F", "[127.0.0.1]:" + std::to_string(port_), "-f", file.string()}));

  // Second connect, now strict, works without touching the file.
  auto second = SshSession::connect(options(HostKeyPolicy::strict));
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(known_hosts_text(), text);
  EXPECT_TRUE(check_login(options()).ok());
}

TEST_F(SshServerTest, ChangedHostKeyRefusedInBothPolicies) {
  pin();
  const std::string old_fp = host_fingerprint();
  const std::string before = known_hosts_text();
  const fs::path new_key = dir_ / "host2_ed25519";
  ASSERT_TRUE(make_key(new_key, "ed25519"));
  std::string why;
  ASSERT_TRUE(sshd_->start(new_key, authorized_keys_, why)) << why;
  const std::string new_fp = keygen_fingerprint(new_key.string() + ".pub");

  for (HostKeyPolicy policy : {HostKeyPolicy::strict, HostKeyPolicy::accept_new}) {
    auto s = SshSession::connect(options(policy));
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, ExitCode::failure);
    EXPECT_NE(s.error().message.find("CHANGED"), std::string::npos) << s.error().message;
    EXPECT_NE(s.error().message.find(new_fp), std::string::npos) << s.error().message;
    EXPECT_NE(s.error().message.find(old_fp), std::string::npos) << s.error().message;
  }
  EXPECT_FALSE(pin_host_key(options()).ok());
  EXPECT_EQ(known_hosts_text(), before);

  auto info = fetch_host_key(options());
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->state, HostKeyState::changed);
  EXPECT_EQ(info->fingerprint, new_fp);
  ASSERT_EQ(info->recorded_fingerprints.size(), 1U);
  EXPECT_EQ(info->recorded_fingerprints[0], "ssh-ed25519 " + old_fp);
}

TEST_F(SshServerTest, OtherKeyTypeRefused) {
  pin();
  const fs::path ecdsa = dir_ / "host_ecdsa";
  ASSERT_TRUE(make_key(ecdsa, "ecdsa"));
  std::string why;
  ASSERT_TRUE(sshd_->start(ecdsa, authorized_keys_, why)) << why;
  auto s = SshSession::connect(options(HostKeyPolicy::accept_new));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("HOST KEY"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find(keygen_fingerprint(ecdsa.string() + ".pub")), std::string::npos);
  EXPECT_EQ(split_lines(known_hosts_text()).size(), 1U);
}

TEST_F(SshServerTest, WrongClientKeyIsAnAuthError) {
  pin();
  const fs::path other = dir_ / "other_ed25519";
  ASSERT_TRUE(make_key(other, "ed25519"));
  SshOptions o = options();
  o.identity_file = other.string();
  auto s = SshSession::connect(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ExitCode::failure);
  EXPECT_NE(s.error().message.find("denied"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find(other.string()), std::string::npos) << s.error().message;
  // The private key never shows up in the message.
  const std::string private_text = slurp(other);
  const auto private_lines = split_lines(private_text);
  ASSERT_GT(private_lines.size(), 2U);
  EXPECT_EQ(s.error().message.find(std::string(private_lines[1])), std::string::npos);

  auto login = check_login(o);
  ASSERT_FALSE(login.ok());
  EXPECT_NE(login.error().message.find("denied"), std::string::npos);

  o.identity_file = (dir_ / "missing_key").string();
  auto missing = SshSession::connect(o);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("does not exist"), std::string::npos) << missing.error().message;

  // A passphrase-protected key cannot be used unattended.
  const fs::path locked = dir_ / "locked_ed25519";
  ASSERT_TRUE(run_local({"ssh-keygen", "-q", "-t", "ed25519", "-N", "secret-pass", "-f", locked.string()}));
  o.identity_file = locked.string();
  auto enc = SshSession::connect(o);
  ASSERT_FALSE(enc.ok());
  EXPECT_NE(enc.error().message.find("passphrase"), std::string::npos) << enc.error().message;
  EXPECT_EQ(enc.error().message.find("secret-pass"), std::string::npos);
}

TEST_F(SshServerTest, UserSshConfigIsIgnored) {
  pin();
  const fs::path home = dir_ / "home";
  fs::create_directories(home / ".ssh");
  write_text(home / ".ssh" / "config",
             "Host *\n  Port 1\n  User nobody\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n");
  ScopedEnv env("HOME", home.string());

  // Control: a bare libssh session with the same sshdir connects while config processing is
  // off, and is sent to port 1 by the file when it is on; so the file would matter.
  for (const bool process_config : {false, true}) {
    ssh_session raw = ssh_new();
    ASSERT_NE(raw, nullptr);
    const std::string sshdir = (home / ".ssh").string();
    const int port = port_;
    const long timeout = 3;
    ssh_options_set(raw, SSH_OPTIONS_SSH_DIR, sshdir.c_str());
    ssh_options_set(raw, SSH_OPTIONS_PROCESS_CONFIG, &process_config);
    ssh_options_set(raw, SSH_OPTIONS_HOST, "127.0.0.1");
    ssh_options_set(raw, SSH_OPTIONS_PORT, &port);
    ssh_options_set(raw, SSH_OPTIONS_TIMEOUT, &timeout);
    const int rc = ssh_connect(raw);
    if (process_config) {
      EXPECT_NE(rc, SSH_OK) << "the config file should have redirected this session";
      EXPECT_NE(to_lower(ssh_get_error(raw)).find("refused"), std::string::npos) << ssh_get_error(raw);
    } else {
      EXPECT_EQ(rc, SSH_OK) << ssh_get_error(raw);
      ssh_disconnect(raw);
    }
    ssh_free(raw);
  }

  auto s = SshSession::connect(options());
  ASSERT_TRUE(s.ok()) << s.error().message;
  auto r = s->exec("id -un; echo $SSH_CONNECTION", Millis(10000));
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto lines = split_lines(r->out);
  ASSERT_EQ(lines.size(), 2U) << r->out;
  EXPECT_EQ(lines[0], "root");
  EXPECT_NE(lines[1].find("127.0.0.1 " + std::to_string(port_)), std::string::npos) << r->out;
}

TEST_F(SshServerTest, DefaultIdentityFromHome) {
  pin();
  const fs::path home = dir_ / "home2";
  fs::create_directories(home / ".ssh");
  fs::copy_file(client_key_, home / ".ssh" / "id_ed25519");
  ScopedEnv env("HOME", home.string());
  SshOptions o = options();
  o.identity_file.clear();
  EXPECT_TRUE(check_login(o).ok());

  fs::remove(home / ".ssh" / "id_ed25519");
  auto none = check_login(o);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("id_ed25519"), std::string::npos) << none.error().message;
}

TEST_F(SshServerTest, FetchHostKeyMatchesSshKeygen) {
  auto info = fetch_host_key(options());
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->fingerprint, host_fingerprint());
  EXPECT_EQ(info->key_type, "ssh-ed25519");
  EXPECT_EQ(info->state, HostKeyState::unknown);
  EXPECT_EQ(info->host_entry, "[127.0.0.1]:" + std::to_string(port_));
  EXPECT_FALSE(fs::exists(dir_ / "state" / "known_hosts"));

  pin();
  pin();  // idempotent
  EXPECT_EQ(split_lines(known_hosts_text()).size(), 1U);
  auto known = fetch_host_key(options());
  ASSERT_TRUE(known.ok());
  EXPECT_EQ(known->state, HostKeyState::known);
}

TEST_F(SshServerTest, ExecIgnoringDisconnectCountsADroppedConnectionAsSent) {
  auto s = session();
  ASSERT_TRUE(s);
  // The remote shell's parent is the sshd process serving this connection.
  const auto start = std::chrono::steady_clock::now();
  auto r = s->exec_ignoring_disconnect("sleep 0.2; kill $PPID", Millis(10000));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->outcome, SendOutcome::disconnected) << r->detail;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 8s);

  // A plain exec on the dead connection is an unavailable-Error.
  auto after = s->exec("true", Millis(2000));
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.error().code, ExitCode::unavailable);

  // A command that just finishes is "completed" with its status.
  auto s2 = SshSession::connect(options());
  ASSERT_TRUE(s2.ok()) << s2.error().message;
  auto done = s2->exec_ignoring_disconnect("echo bye; exit 1", Millis(10000));
  ASSERT_TRUE(done.ok()) << done.error().message;
  EXPECT_EQ(done->outcome, SendOutcome::completed);
  EXPECT_EQ(done->output.exit_status, 1);
  EXPECT_EQ(done->output.out, "bye\n");
}

TEST_F(SshServerTest, ConnectionRefusedIsUnavailable) {
  SshOptions o = options();
  o.port = free_port();
  auto s = SshSession::connect(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ExitCode::unavailable);
  EXPECT_NE(s.error().message.find("connection refused"), std::string::npos) << s.error().message;
  auto info = fetch_host_key(o);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, ExitCode::unavailable);
}

TEST_F(SshServerTest, SilentServerIsAConnectTimeout) {
  // A listening socket nobody accepts from: TCP connects, but no SSH banner ever comes.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  SshOptions o = options();
  o.port = ntohs(addr.sin_port);
  o.connect_timeout = Millis(1000);
  const auto start = std::chrono::steady_clock::now();
  auto s = SshSession::connect(o);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ::close(fd);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ExitCode::unavailable);
  EXPECT_NE(s.error().message.find("timed out after 1.0s"), std::string::npos) << s.error().message;
  EXPECT_GE(elapsed, 900ms);
  EXPECT_LT(elapsed, 5s);
}

}  // namespace
