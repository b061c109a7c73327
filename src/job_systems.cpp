// The real JobSystems: Wake-on-LAN (direct or relay), banner probes, libssh, local processes,
// backupd over HTTP, notifications over libcurl.
#include <thread>

#include <spdlog/spdlog.h>

#include "hozo/job.hpp"
#include "hozo/notify.hpp"
#include "hozo/ssh.hpp"
#include "hozo/ssh_api.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/wol.hpp"

namespace hozo {

namespace {

constexpr Millis kPoweroffConfirmTimeout{60000};
constexpr Millis kPoweroffConnectTimeout{60000};
constexpr std::chrono::seconds kDiskCommandTimeout{60};
/// A probe's connection older than this is not taken over (sshd's LoginGraceTime may be short).
constexpr Millis kProbeSocketMaxAge{5000};

std::shared_ptr<AgentClient> agent_for(const Job& job) {
  AgentClientOptions o;
  o.connect_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(job.ssh_connect_timeout);
  return std::make_shared<AgentClient>(job.agent->url, job.agent->token, o);
}

WaitOptions wait_options_for(const Job& job) {
  WaitOptions w;
  w.host = job.target_host;
  w.port = job.ssh_port;
  w.timeout = std::chrono::duration_cast<Millis>(job.ssh_timeout);
  return w;
}

class RealSystems final : public JobSystems {
 public:
  explicit RealSystems(const std::atomic<bool>* cancel) : local_(cancel) {}

  ProbeResult probe(const Job& job) override {
    // libssh loads while the probe waits for sshd's banner. Started here, on the early contact's
    // thread, and not before: a dlopen in progress holds the loader lock, which pthread_create
    // needs, so starting it earlier delayed the creation of this very thread.
    libssh::preload();
    auto w = wait_options_for(job);
    w.keep_socket = KeepSocket::yes;
    auto result = initial_probe(w);
    keep_probe_socket(result);
    return result;
  }

  Result<int> wake(const Job& job) override {
    auto mac = parse_mac(job.mac_address);
    if (!mac) return mac.error();
    if (job.wol_relay) return wake_via_relay(job, *mac);
    WolOptions w;
    w.mac = *mac;
    if (!job.wol_password.empty()) {
      auto pw = parse_secureon_password(job.wol_password.reveal());
      if (!pw) return pw.error();
      w.password = *pw;
    }
    w.broadcast = job.wol_broadcast;
    w.port = job.wol_port;
    w.interface_name = job.wol_interface;
    w.repeat = job.wol_repeat;
    return send_magic_packet(w);
  }

  Result<WaitOutcome> wait_up(const Job& job, const std::function<void()>& resend,
                              const std::atomic<bool>* cancel) override {
    auto w = wait_options_for(job);
    w.keep_socket = KeepSocket::yes;
    auto outcome = wait_until_up(w, clock_, resend, cancel);
    if (outcome) keep_probe_socket(outcome->last);
    return outcome;
  }

  Result<std::unique_ptr<CommandRunner>> connect(const Job& job) override {
    auto options = ssh_options_for(job);
    // The probe that found sshd left its connection open: one sshd fork instead of two.
    if (probe_socket_ && probe_socket_->open() && clock_.steady_now() - probe_socket_at_ < kProbeSocketMaxAge) {
      options.socket = probe_socket_;
    }
    probe_socket_.reset();
    auto session = SshSession::connect(options);
    if (!session && options.socket && session.error().code == ExitCode::unavailable) {
      spdlog::debug("ssh: the probe's connection failed ({}); connecting again", session.error().message);
      options.socket.reset();
      session = SshSession::connect(options);
    }
    if (!session) return session.error();
    return std::unique_ptr<CommandRunner>(std::make_unique<SshCommandRunner>(std::move(*session)));
  }

  CommandRunner& local() override { return local_; }

  Result<ProcessResult> run_syncoid(const std::vector<std::string>& argv, std::chrono::seconds timeout,
                                    const LineCallback& on_stdout, const LineCallback& on_stderr,
                                    const std::atomic<bool>* cancel) override {
    ProcessOptions p;
    p.argv = argv;
    p.timeout = std::chrono::duration_cast<Millis>(timeout);
    p.on_stdout_line = on_stdout;
    p.on_stderr_line = on_stderr;
    p.capture_stdout = Capture::no;
    p.capture_stderr = Capture::no;
    p.cancel = cancel;
    // syncoid runs `zfs` (and mbuffer, pv, lzop) by name: give it the sbin directories cron leaves out.
    p.env["PATH"] = tool_search_path();
    return run_process(p);
  }

  Result<void> power_off(const Job& job) override {
    last_power_off_.clear();
    if (job.agent) {
      auto agent = agent_for(job);
      auto requested = agent->shutdown();
      if (requested) {
        spdlog::info("[{}] backupd at {} accepted the shutdown (it exports the pools first)", job.name, agent->url());
        if (auto confirmed = confirm_port_closed(job, "backupd POST /shutdown"); !confirmed) return confirmed;
        last_power_off_ = "backupd POST /shutdown (pools exported); SSH port closed";
        return ok();
      }
      // A running zfs receive is exactly when the box must stay on: no fallback.
      if (requested.error().code == ExitCode::tempfail) return requested.error();
      spdlog::warn("[{}] {}; falling back to \"{}\" over SSH", job.name, requested.error().message, job.shutdown_command);
    }
    if (auto sent = power_off_over_ssh(job); !sent) return sent;
    last_power_off_ = fmt::format("\"{}\" sent{}; SSH port closed", job.shutdown_command,
                                  job.agent ? " over SSH (backupd refused or did not answer)" : "");
    return ok();
  }

  [[nodiscard]] std::string last_power_off_detail() const override { return last_power_off_; }

  std::vector<NotificationResult> notify(const Job& job, const RunRecord& record) override {
    return notify_run(job, record);
  }

  std::vector<NotificationResult> notify_start(const Job& job) override { return ::hozo::notify_start(job); }

  Clock& clock() override { return clock_; }

 private:
  /// Holds the socket of a probe that found sshd, for connect() (the last one wins).
  void keep_probe_socket(const ProbeResult& probe) {
    if (!probe.socket) return;
    probe_socket_ = probe.socket;
    probe_socket_at_ = clock_.steady_now();
  }

  Result<void> power_off_over_ssh(const Job& job) {
    // The link may just have come back (or the box be busy): keep trying to log in for a while.
    const auto connect_deadline = clock_.steady_now() + kPoweroffConnectTimeout;
    auto session = SshSession::connect(ssh_options_for(job));
    while (!session && session.error().code == ExitCode::unavailable && clock_.steady_now() < connect_deadline) {
      // Refused (not timed out): the box answers but its sshd is gone, i.e. it is already going
      // down (a killed run's shutdown was under way). The port check below decides.
      if (session.error().message.find("onnection refused") != std::string::npos) {
        spdlog::info("[{}] {} refuses SSH: it is already going down", job.name, job.target_host);
        return confirm_port_closed(job, "an earlier shutdown");
      }
      spdlog::warn("[{}] cannot reach {} to power it off ({}); retrying", job.name, job.target_host,
                   session.error().message);
      clock_.sleep_for(Millis(2000));
      session = SshSession::connect(ssh_options_for(job));
    }
    if (!session) return session.error();
    spdlog::info("[{}] sending \"{}\" to {}", job.name, job.shutdown_command, job.target_host);
    {
      SshSession s = std::move(*session);
      auto sent = s.exec_ignoring_disconnect(job.shutdown_command, Millis(30000));
      if (!sent) return sent.error();
      if (sent->outcome == SendOutcome::completed && sent->output.exit_status != 0) {
        return make_error("\"{}\" exited with status {} on {}: {}", job.shutdown_command, sent->output.exit_status,
                          job.target_host, printable(trim(sent->output.err)));
      }
      spdlog::debug("[{}] shutdown command: {}", job.name, sent->detail);
    }
    return confirm_port_closed(job, fmt::format("\"{}\"", job.shutdown_command));
  }

  /// The SSH port must stop answering within kPoweroffConfirmTimeout.
  Result<void> confirm_port_closed(const Job& job, const std::string& what) {
    const auto deadline = clock_.steady_now() + kPoweroffConfirmTimeout;
    WaitOptions w = wait_options_for(job);
    while (clock_.steady_now() < deadline) {
      const auto probe = probe_ssh(w.host, w.port, w.probe);
      if (probe.state != ProbeState::up) {
        spdlog::info("[{}] {}:{} stopped answering ({})", job.name, job.target_host, job.ssh_port, probe.describe());
        return ok();
      }
      clock_.sleep_for(Millis(250));
    }
    return make_error("{}:{} still answers on SSH {} after {}", job.target_host, job.ssh_port,
                      format_duration(kPoweroffConfirmTimeout), what);
  }

  Result<int> wake_via_relay(const Job& job, const MacAddress& mac) {
    const auto& relay = *job.wol_relay;
    auto argv = relay_wake_argv(relay, mac, job.wol_broadcast, job.wol_port);
    if (!argv) return argv.error();
    SshOptions opts = ssh_options_for(job);
    opts.host = relay.host;
    opts.port = relay.port;
    opts.user = relay.user;
    if (!relay.ssh_key.empty()) opts.identity_file = relay.ssh_key;
    auto session = SshSession::connect(opts);
    if (!session) return make_error(session.error().code, "WOL relay {}: {}", relay.host, session.error().message);
    SshCommandRunner runner(std::move(*session));
    auto out = runner.run(*argv, std::chrono::seconds(30));
    if (!out) return make_error(out.error().code, "WOL relay {}: {}", relay.host, out.error().message);
    if (out->exit_status != 0) {
      return make_error("WOL relay {}: \"{}\" exited with status {}: {}", relay.host, shell_join(*argv),
                        out->exit_status, printable(trim(out->err)));
    }
    return 1;
  }

  SystemClock clock_;
  LocalCommandRunner local_;
  std::shared_ptr<Fd> probe_socket_;  ///< see keep_probe_socket
  std::chrono::steady_clock::time_point probe_socket_at_{};
  std::string last_power_off_;
};

}  // namespace

std::unique_ptr<DiskControl> JobSystems::disk_control(const Job& job, CommandRunner& remote) {
  auto over_ssh = make_ssh_disk_control(remote, job.backup_device, kDiskCommandTimeout);
  if (job.agent && agent_can_address(job.backup_device)) {
    if (auto c = make_agent_disk_control(agent_for(job), job.backup_device)) {
      return make_fallback_disk_control(std::move(*c), std::move(over_ssh));
    }
  }
  return over_ssh;
}

Result<std::optional<AgentStatus>> JobSystems::agent_status(const Job& job) {
  if (!job.agent) return std::optional<AgentStatus>();
  auto st = agent_for(job)->status();
  if (!st) return st.error();
  return std::optional<AgentStatus>(std::move(*st));
}

std::unique_ptr<JobSystems> make_real_systems(const std::atomic<bool>* cancel) {
  return std::make_unique<RealSystems>(cancel);
}

}  // namespace hozo
