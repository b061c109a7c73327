// The orchestrator's backup-disk logic: waiting for the device, spin-up reads, the timeout, and
// the SSH commands it sends. The real backupd and sshd paths run in the lab
// (tests/lab/test_agent_pipeline.sh).
#include <gtest/gtest.h>

#include <deque>

#include "hozo/backup_disk.hpp"

using namespace hozo;

namespace {

using Steady = std::chrono::steady_clock;

class FakeClock final : public Clock {
 public:
  SystemTime now() const override { return SystemTime(std::chrono::duration_cast<SystemTime::duration>(t_.time_since_epoch())); }
  Steady::time_point steady_now() const override { return t_; }
  void sleep_for(Millis d) override { t_ += d; }

 private:
  Steady::time_point t_{std::chrono::hours(1000)};
};

/// A disk that appears after `appears_after` observations, sleeps until `reads_to_wake` spin-up
/// reads happened, then reports active (or `final_state`).
class FakeDisk final : public DiskControl {
 public:
  int appears_after = 0;
  int reads_to_wake = 1;
  SpinState asleep_state = SpinState::standby;
  SpinState awake_state = SpinState::active;
  bool channel_broken = false;
  int observations = 0;
  int reads = 0;

  Result<DiskObservation> observe() override {
    if (channel_broken) return make_error(ExitCode::unavailable, "agent down");
    ++observations;
    DiskObservation o;
    if (observations <= appears_after) {
      o.detail = "no such device";
      return o;
    }
    o.present = true;
    o.state = reads >= reads_to_wake ? awake_state : asleep_state;
    return o;
  }
  Result<void> spin_up() override {
    ++reads;
    return ok();
  }
  [[nodiscard]] std::string describe() const override { return "fake"; }
};

TEST(BackupDisk, ActiveDiskNeedsNoRead) {
  FakeClock clock;
  FakeDisk disk;
  disk.reads_to_wake = 0;
  auto r = ensure_disk_ready(disk, clock, std::chrono::seconds(10), nullptr);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(disk.reads, 0);
  EXPECT_FALSE(r->spun_up);
  EXPECT_EQ(r->final_state, SpinState::active);
  EXPECT_EQ(r->message, "active via fake");
}

TEST(BackupDisk, StandbyDiskGetsOneReadAndBecomesActive) {
  FakeClock clock;
  FakeDisk disk;
  auto r = ensure_disk_ready(disk, clock, std::chrono::seconds(10), nullptr);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(disk.reads, 1);
  EXPECT_TRUE(r->spun_up);
  EXPECT_EQ(r->initial, SpinState::standby);
  EXPECT_EQ(r->final_state, SpinState::active);
  EXPECT_NE(r->message.find("standby → active via fake"), std::string::npos) << r->message;
}

TEST(BackupDisk, WaitsForTheDeviceToAppear) {
  FakeClock clock;
  FakeDisk disk;
  disk.appears_after = 5;  // five one-second polls
  const auto t0 = clock.steady_now();
  auto r = ensure_disk_ready(disk, clock, std::chrono::seconds(10), nullptr);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(clock.steady_now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(disk.reads, 1);
}

TEST(BackupDisk, DeviceThatNeverAppearsTimesOut) {
  FakeClock clock;
  FakeDisk disk;
  disk.appears_after = 1000;
  auto r = ensure_disk_ready(disk, clock, std::chrono::seconds(7), nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("did not appear within 7s"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("no such device"), std::string::npos) << r.error().message;
  EXPECT_EQ(disk.reads, 0);
}

TEST(BackupDisk, DiskThatStaysAsleepIsReReadThenTimesOut) {
  FakeClock clock;
  FakeDisk disk;
  disk.reads_to_wake = 1000;
  auto r = ensure_disk_ready(disk, clock, std::chrono::seconds(30), nullptr, Millis(1000), Millis(10000));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("did not spin up within 30s"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("standby"), std::string::npos) << r.error().message;
  EXPECT_EQ(disk.reads, 3);  // at 0 s, 10 s and 20 s (30 s is the deadline)
}

TEST(BackupDisk, SlowSpinUpSucceedsOnTheSecondRead) {
  FakeClock clock;
  FakeDisk disk;
  disk.reads_to_wake = 2;
  auto r = ensure_disk_ready(disk, clock, std::chrono::seconds(30), nullptr);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(disk.reads, 2);
  EXPECT_EQ(r->waited, Millis(10000));
}

TEST(BackupDisk, UnknownStateIsReadyAfterOneRead) {
  FakeClock clock;
  FakeDisk disk;
  disk.asleep_state = SpinState::unknown;
  disk.awake_state = SpinState::unknown;
  auto r = ensure_disk_ready(disk, clock, std::chrono::seconds(10), nullptr);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(disk.reads, 1);
  EXPECT_EQ(r->final_state, SpinState::unknown);
}

TEST(BackupDisk, ChannelFailureIsAnError) {
  FakeClock clock;
  FakeDisk disk;
  disk.channel_broken = true;
  auto r = ensure_disk_ready(disk, clock, std::chrono::seconds(10), nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ExitCode::unavailable);
  EXPECT_NE(r.error().message.find("agent down"), std::string::npos);
}

TEST(BackupDisk, CancelStopsTheWait) {
  FakeClock clock;
  FakeDisk disk;
  disk.appears_after = 1000;
  std::atomic<bool> cancel{true};
  auto r = ensure_disk_ready(disk, clock, std::chrono::seconds(100), &cancel);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ExitCode::interrupted);
  EXPECT_EQ(disk.observations, 0);
}

TEST(BackupDisk, SshControlSendsArgvOnly) {
  FakeClock clock;
  FakeCommandRunner remote;
  int hdparm_calls = 0;
  remote.on("test -b /dev/disk/by-id/ata-X_1", CommandOutput{0, "", ""});
  remote.on("dd if=/dev/disk/by-id/ata-X_1 of=/dev/null bs=4096 count=1 iflag=direct", CommandOutput{0, "", "1+0 records in\n"});
  remote.fallback([&](const std::vector<std::string>& argv) -> Result<CommandOutput> {
    if (argv.size() == 3 && argv[0] == "hdparm" && argv[1] == "-C") {
      ++hdparm_calls;
      return CommandOutput{0, hdparm_calls == 1 ? "\n" + argv[2] + ":\n drive state is:  standby\n"
                                                : "\n" + argv[2] + ":\n drive state is:  active/idle\n",
                           ""};
    }
    return make_error("unexpected {}", argv[0]);
  });
  auto control = make_ssh_disk_control(remote, "/dev/disk/by-id/ata-X_1", std::chrono::seconds(5));
  auto r = ensure_disk_ready(*control, clock, std::chrono::seconds(10), nullptr);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->spun_up);
  const std::vector<std::string> expected{"test -b /dev/disk/by-id/ata-X_1", "hdparm -C /dev/disk/by-id/ata-X_1",
                                          "dd if=/dev/disk/by-id/ata-X_1 of=/dev/null bs=4096 count=1 iflag=direct",
                                          "test -b /dev/disk/by-id/ata-X_1", "hdparm -C /dev/disk/by-id/ata-X_1"};
  EXPECT_EQ(remote.calls, expected);
}

TEST(BackupDisk, SshControlMissingDeviceAndMissingHdparm) {
  FakeCommandRunner remote;
  remote.on("test -b /dev/sdz", CommandOutput{1, "", ""});
  auto control = make_ssh_disk_control(remote, "/dev/sdz", std::chrono::seconds(5));
  auto o = control->observe();
  ASSERT_TRUE(o.ok());
  EXPECT_FALSE(o->present);
  EXPECT_NE(o->detail.find("not a block device"), std::string::npos);

  FakeCommandRunner remote2;
  remote2.on("test -b /dev/sdb", CommandOutput{0, "", ""});
  remote2.on("hdparm -C /dev/sdb", CommandOutput{127, "", "sh: 1: hdparm: not found\n"});
  auto control2 = make_ssh_disk_control(remote2, "/dev/sdb", std::chrono::seconds(5));
  auto o2 = control2->observe();
  ASSERT_TRUE(o2.ok());
  EXPECT_TRUE(o2->present);
  EXPECT_EQ(o2->state, SpinState::unknown);
  EXPECT_NE(o2->detail.find("hdparm is not installed"), std::string::npos);
}

TEST(BackupDisk, SshSpinUpReadFailureIsReported) {
  FakeCommandRunner remote;
  remote.on("dd if=/dev/sdb of=/dev/null bs=4096 count=1 iflag=direct",
            CommandOutput{1, "", "dd: failed to open '/dev/sdb': Permission denied\n"});
  auto control = make_ssh_disk_control(remote, "/dev/sdb", std::chrono::seconds(5));
  auto r = control->spin_up();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("Permission denied"), std::string::npos) << r.error().message;
}

TEST(BackupDisk, BrokenPrimaryChannelFallsBackOnceForGood) {
  FakeClock clock;
  auto primary = std::make_unique<FakeDisk>();
  primary->channel_broken = true;
  auto fallback = std::make_unique<FakeDisk>();
  FakeDisk* second = fallback.get();
  auto control = make_fallback_disk_control(std::move(primary), std::move(fallback));
  auto r = ensure_disk_ready(*control, clock, std::chrono::seconds(10), nullptr);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(second->reads, 1);
  EXPECT_GE(second->observations, 2);
}

TEST(BackupDisk, WorkingPrimaryIsKept) {
  FakeClock clock;
  auto primary = std::make_unique<FakeDisk>();
  FakeDisk* first = primary.get();
  auto fallback = std::make_unique<FakeDisk>();
  FakeDisk* second = fallback.get();
  auto control = make_fallback_disk_control(std::move(primary), std::move(fallback));
  ASSERT_TRUE(ensure_disk_ready(*control, clock, std::chrono::seconds(10), nullptr).ok());
  EXPECT_EQ(first->reads, 1);
  EXPECT_EQ(second->observations, 0);
}

TEST(BackupDisk, AgentAddressesKernelNamesAndById) {
  EXPECT_TRUE(agent_can_address("/dev/sdb"));
  EXPECT_TRUE(agent_can_address("/dev/nvme0n1"));
  EXPECT_TRUE(agent_can_address("/dev/disk/by-id/ata-WDC_WD40EFRX-68N32N0_WD-WCC7K1234567"));
  EXPECT_FALSE(agent_can_address("/dev/disk/by-uuid/1234"));
  EXPECT_FALSE(agent_can_address("/dev/mapper/backup"));
  EXPECT_FALSE(agent_can_address("sdb"));
  EXPECT_FALSE(agent_can_address("/dev/disk/by-id/../../sda"));
  auto bad = make_agent_disk_control(std::make_shared<AgentClient>("http://127.0.0.1:1", Secret()), "/dev/mapper/x");
  EXPECT_FALSE(bad.ok());
}

}  // namespace
