#include "hozo/backup_disk.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "hozo/util/strings.hpp"

namespace hozo {

namespace {

bool asleep(SpinState s) { return s == SpinState::standby || s == SpinState::sleeping; }

std::string describe(const DiskObservation& o) {
  if (!o.present) return o.detail.empty() ? std::string("not present") : "not present: " + o.detail;
  std::string s(to_string(o.state));
  if (!o.detail.empty()) s += " (" + o.detail + ")";
  return s;
}

/// The first non-empty line of a command's output, for messages.
std::string first_line(const CommandOutput& out) {
  for (const auto* text : {&out.err, &out.out}) {
    for (const auto& line : split_lines(*text)) {
      if (!trim(line).empty()) return printable(trim(line));
    }
  }
  return {};
}

class SshDiskControl final : public DiskControl {
 public:
  SshDiskControl(CommandRunner& remote, std::string device, std::chrono::seconds timeout)
      : remote_(remote), device_(std::move(device)), timeout_(timeout) {}

  Result<DiskObservation> observe() override {
    DiskObservation o;
    auto exists = remote_.run({"test", "-b", device_}, timeout_);
    if (!exists) return exists.error();
    if (exists->exit_status != 0) {
      o.detail = fmt::format("{} is not a block device on {}", device_, remote_.where());
      return o;
    }
    o.present = true;
    auto hd = remote_.run(hdparm_state_argv(device_), timeout_);
    if (!hd) return hd.error();
    if (hd->exit_status == 127) {
      o.detail = "hdparm is not installed on the box";
      return o;
    }
    auto state = parse_hdparm_state(hd->out + "\n" + hd->err);
    if (!state) {
      o.detail = state.error().message;
      return o;
    }
    o.state = *state;
    return o;
  }

  Result<void> spin_up() override {
    auto read = remote_.run({"dd", "if=" + device_, "of=/dev/null", "bs=4096", "count=1", "iflag=direct"}, timeout_);
    if (!read) return read.error();
    if (read->exit_status != 0) {
      return make_error("spin-up read of {} failed (dd exited with status {}): {}", device_, read->exit_status,
                        first_line(*read));
    }
    return ok();
  }

  [[nodiscard]] std::string describe() const override { return fmt::format("hdparm over SSH ({})", remote_.where()); }

 private:
  CommandRunner& remote_;
  std::string device_;
  std::chrono::seconds timeout_;
};

class AgentDiskControl final : public DiskControl {
 public:
  AgentDiskControl(std::shared_ptr<AgentClient> agent, std::string device)
      : agent_(std::move(agent)), device_(std::move(device)) {}

  Result<DiskObservation> observe() override {
    DiskObservation o;
    // Only "no such device" (HTTP 400) means the disk is not there (yet); anything else (agent
    // unreachable, token rejected, an error or an older backupd) is a channel Error.
    auto st = agent_->find_disk(device_);
    if (!st) return st.error();
    if (!*st) {
      o.detail = fmt::format("backupd at {} knows no device {}", agent_->url(), device_);
      return o;
    }
    o.present = true;
    o.state = (*st)->state;
    o.detail = (*st)->state_error;
    return o;
  }

  Result<void> spin_up() override {
    // backupd's spin-up waits on its side; a short wait keeps our polling loop in charge.
    auto r = agent_->spinup(device_, std::chrono::seconds(2));
    if (!r) return r.error();
    return ok();
  }

  [[nodiscard]] std::string describe() const override { return fmt::format("backupd at {}", agent_->url()); }

 private:
  std::shared_ptr<AgentClient> agent_;
  std::string device_;
};

class FallbackDiskControl final : public DiskControl {
 public:
  FallbackDiskControl(std::unique_ptr<DiskControl> primary, std::unique_ptr<DiskControl> fallback)
      : primary_(std::move(primary)), fallback_(std::move(fallback)) {}

  Result<DiskObservation> observe() override { return call([](DiskControl& d) { return d.observe(); }); }
  Result<void> spin_up() override { return call([](DiskControl& d) { return d.spin_up(); }); }
  [[nodiscard]] std::string describe() const override {
    return switched_ ? fallback_->describe() : primary_->describe();
  }

 private:
  template <typename Fn>
  auto call(Fn&& fn) -> decltype(fn(std::declval<DiskControl&>())) {
    if (!switched_) {
      auto r = fn(*primary_);
      if (r || r.error().code == ExitCode::interrupted) return r;
      spdlog::warn("backup disk: {}: {}; using {} instead", primary_->describe(), r.error().message,
                   fallback_->describe());
      switched_ = true;
    }
    return fn(*fallback_);
  }

  std::unique_ptr<DiskControl> primary_;
  std::unique_ptr<DiskControl> fallback_;
  bool switched_ = false;
};

}  // namespace

std::unique_ptr<DiskControl> make_fallback_disk_control(std::unique_ptr<DiskControl> primary,
                                                        std::unique_ptr<DiskControl> fallback) {
  return std::make_unique<FallbackDiskControl>(std::move(primary), std::move(fallback));
}

bool agent_can_address(std::string_view device) {
  static constexpr std::string_view kById = "/dev/disk/by-id/";
  if (starts_with(device, kById)) return validate_disk_id(device.substr(kById.size())).ok();
  if (!starts_with(device, "/dev/")) return false;
  return validate_block_device_name(device.substr(5)).ok();
}

Result<std::unique_ptr<DiskControl>> make_agent_disk_control(std::shared_ptr<AgentClient> agent, std::string device) {
  if (!agent_can_address(device)) {
    return make_error("backupd addresses disks as /dev/NAME or /dev/disk/by-id/ID, not {}", printable(device));
  }
  return std::unique_ptr<DiskControl>(std::make_unique<AgentDiskControl>(std::move(agent), std::move(device)));
}

std::unique_ptr<DiskControl> make_ssh_disk_control(CommandRunner& remote, std::string device,
                                                   std::chrono::seconds command_timeout) {
  return std::make_unique<SshDiskControl>(remote, std::move(device), command_timeout);
}

Result<DiskReadiness> ensure_disk_ready(DiskControl& disk, Clock& clock, std::chrono::seconds timeout,
                                        const std::atomic<bool>* cancel, Millis poll, Millis respin) {
  DiskReadiness r;
  const auto t0 = clock.steady_now();
  const auto deadline = t0 + timeout;
  bool seen_present = false;
  std::optional<std::chrono::steady_clock::time_point> last_spinup;
  DiskObservation last;
  for (;;) {
    if (cancel != nullptr && cancel->load()) return Error{"interrupted by signal", ExitCode::interrupted};
    auto o = disk.observe();
    if (!o) return make_error(o.error().code, "backup disk: {}", o.error().message);
    last = *o;
    if (o->present) {
      if (!seen_present) r.initial = o->state;
      seen_present = true;
      const bool spun_once = r.spun_up;
      if (o->state == SpinState::active || (o->state == SpinState::unknown && spun_once)) {
        r.final_state = o->state;
        r.waited = std::chrono::duration_cast<Millis>(clock.steady_now() - t0);
        break;
      }
      const auto now = clock.steady_now();
      if (!last_spinup || (asleep(o->state) && now - *last_spinup >= respin && now < deadline)) {
        spdlog::info("backup disk is {}; issuing a spin-up read via {}", describe(*o), disk.describe());
        if (auto s = disk.spin_up(); !s) {
          // A read that fails on a disk that is still spinning up is not final; the deadline is.
          spdlog::warn("backup disk: {}", s.error().message);
        }
        r.spun_up = true;
        last_spinup = now;
        continue;  // look again right away: many disks answer the read only once they spin
      }
    }
    if (clock.steady_now() >= deadline) {
      const auto waited = fmt::format("{}s", timeout.count());
      if (!seen_present) return make_error("backup disk did not appear within {} (disk_spinup_timeout): {}", waited, describe(last));
      return make_error("backup disk did not spin up within {} (disk_spinup_timeout): {}", waited, describe(last));
    }
    clock.sleep_for(poll);
  }
  r.message = fmt::format("{}{} via {}", r.spun_up ? fmt::format("{} → ", to_string(r.initial)) : std::string(),
                          to_string(r.final_state), disk.describe());
  if (r.spun_up) r.message += fmt::format(" after {}", format_duration(std::chrono::duration<double>(r.waited)));
  return r;
}

}  // namespace hozo
