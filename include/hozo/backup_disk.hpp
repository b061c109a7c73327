#pragma once
// The orchestrator's side of the backup disk (job.backup_device): wait until the disk is there,
// spin it up when it sleeps, and wait until it is active — either through backupd
// (GET /disk/{dev}, POST /disk/{dev}/spinup) or over SSH (`test -b`, `hdparm -C`, a 4 KiB
// O_DIRECT read with dd). The waiting logic is one function over a small DiskControl interface,
// so it is unit-tested with a fake and proven in the lab with the real backupd and sshd.

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "hozo/agent.hpp"
#include "hozo/command.hpp"
#include "hozo/disk.hpp"
#include "hozo/util/result.hpp"
#include "hozo/util/time.hpp"

namespace hozo {

/// One look at the disk.
struct DiskObservation {
  bool present = false;                 ///< the device exists on the box
  SpinState state = SpinState::unknown;  ///< meaningful only when present
  std::string detail;                   ///< why not present / why unknown (for messages)
};

/// What the orchestrator can do with the backup disk. Errors are for failures of the channel
/// itself (SSH command failed to run, agent unreachable); a missing disk is an observation.
class DiskControl {
 public:
  virtual ~DiskControl() = default;
  /// Is the disk there, and is it spinning?
  virtual Result<DiskObservation> observe() = 0;
  /// Issues a small read that makes a sleeping disk spin up (returns when the read is done
  /// or was started; the caller polls observe() for the result).
  virtual Result<void> spin_up() = 0;
  /// "backupd at http://..." or "hdparm over SSH" (for messages).
  [[nodiscard]] virtual std::string describe() const = 0;
};

/// The outcome of ensure_disk_ready.
struct DiskReadiness {
  SpinState initial = SpinState::unknown;  ///< state at the first observation where present
  SpinState final_state = SpinState::unknown;
  bool spun_up = false;  ///< a spin-up read was issued
  Millis waited{0};      ///< from the first observation until ready
  std::string message;   ///< one line for the stage record
};

/// Waits until the disk is present and active (or in an unknown state after one spin-up read:
/// drives behind some USB bridges and NVMe never report standby), up to `timeout`.
/// A disk in standby/sleeping gets a spin-up read, repeated every `respin` while it stays asleep.
/// Errors: the disk never appeared / never became active (with the last observation), the
/// channel failed, or `cancel` was set (code interrupted).
Result<DiskReadiness> ensure_disk_ready(DiskControl& disk, Clock& clock, std::chrono::seconds timeout,
                                        const std::atomic<bool>* cancel, Millis poll = Millis(1000),
                                        Millis respin = Millis(10000));

/// DiskControl over SSH: `test -b DEV`, `hdparm -C DEV`, `dd if=DEV of=/dev/null bs=4096 count=1
/// iflag=direct`. `device` must be a validated /dev/... path (config check_device). A box without
/// hdparm reports state unknown (then one read is issued and the disk is taken as ready).
std::unique_ptr<DiskControl> make_ssh_disk_control(CommandRunner& remote, std::string device,
                                                   std::chrono::seconds command_timeout);

/// DiskControl through backupd. `device` is "/dev/NAME" (kernel name) or "/dev/disk/by-id/ID";
/// other forms are an Error here (use the SSH control for those).
Result<std::unique_ptr<DiskControl>> make_agent_disk_control(std::shared_ptr<AgentClient> agent, std::string device);

/// A DiskControl that uses `primary` until it fails as a channel (an Error from observe or
/// spin_up other than an interrupt), then — with a warning, once — `fallback` for good.
/// (backupd unreachable or rejecting the token → hdparm over SSH.)
std::unique_ptr<DiskControl> make_fallback_disk_control(std::unique_ptr<DiskControl> primary,
                                                        std::unique_ptr<DiskControl> fallback);

/// True when backupd can address `device` (a kernel name under /dev or a /dev/disk/by-id name).
bool agent_can_address(std::string_view device);

}  // namespace hozo
