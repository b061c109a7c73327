// Pipeline bookkeeping with fake systems: which stages run, what is recorded, who powers off.
// The real systems are exercised in the lab (tests/lab/test_pipeline.sh).
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>

#include "hozo/job.hpp"
#include "hozo/lock.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/util/strings.hpp"
#include "test_support.hpp"

using namespace hozo;

namespace {


/// zfs/zpool answers for one source dataset "tank/data" replicated to "backup/data".
class FakeZfs {
 public:
  std::uint64_t source_guid = 111;
  std::uint64_t target_guid = 111;
  bool target_imported = true;
  std::string health = "ONLINE";
  std::vector<std::string> import_argv;  ///< the last zpool import
  std::atomic<int> pool_listings{0};     ///< `zpool list` calls (the early contact's thread makes one)

  std::string newest = "s1";  ///< the newest snapshot on both sides

  /// Every `zfs hold|release` seen, space-joined (they come from two threads).
  std::vector<std::string> holds() {
    std::lock_guard lock(mutex_);
    return holds_;
  }

  Result<CommandOutput> answer(const std::vector<std::string>& argv) {
    const std::string cmd = argv.empty() ? "" : argv[0] + (argv.size() > 1 ? " " + argv[1] : "");
    if (cmd == "zfs hold" || cmd == "zfs release") {
      std::lock_guard lock(mutex_);
      holds_.push_back(hozo::join(argv, " "));
      return CommandOutput{0, "", ""};
    }
    if (cmd == "zpool list") {
      ++pool_listings;
      if (!target_imported) return CommandOutput{1, "", "cannot open 'backup': no such pool\n"};
      const std::string pool = argv.back();
      if (argv[4] == "name") return CommandOutput{0, pool + "\n", ""};
      return CommandOutput{0, pool + "\t" + health + "\n", ""};
    }
    if (cmd == "zpool import") {
      import_argv = argv;
      target_imported = true;
      return CommandOutput{0, "", ""};
    }
    if (cmd == "zfs get") {
      const std::string ds = argv.back();
      const auto guid = ds.starts_with("tank") ? source_guid : target_guid;
      std::string out = ds + "\tguid\t42\n" + ds + "\tcreatetxg\t1\n";
      out += ds + "@" + newest + "\tguid\t" + std::to_string(guid) + "\n" + ds + "@" + newest + "\tcreatetxg\t5\n";
      return CommandOutput{0, out, ""};
    }
    return make_error("unexpected command {}", argv[0]);
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> holds_;
};

/// A backup disk that is in standby until `reads_to_wake` spin-up reads happened.
class FakeDisk final : public DiskControl {
 public:
  explicit FakeDisk(int reads_to_wake, int& reads) : reads_to_wake_(reads_to_wake), reads_(reads) {}
  Result<DiskObservation> observe() override {
    DiskObservation o;
    o.present = true;
    o.state = reads_ >= reads_to_wake_ ? SpinState::active : SpinState::standby;
    return o;
  }
  Result<void> spin_up() override {
    ++reads_;
    return ok();
  }
  [[nodiscard]] std::string describe() const override { return "fake disk"; }

 private:
  int reads_to_wake_;
  int& reads_;
};

class FakeSystems final : public JobSystems {
 public:
  int disk_reads_to_wake = 1;
  int disk_reads = 0;
  std::optional<Result<std::optional<AgentStatus>>> agent_answer;  ///< unset: no agent
  std::string power_off_detail;

  bool up_before = false;
  bool wakes_up = true;
  std::deque<int> syncoid_exits{0};
  std::string syncoid_stderr;
  const std::atomic<bool>* set_cancel_during_sync = nullptr;
  std::atomic<bool>* cancel_flag = nullptr;
  int wakes = 0;
  std::atomic<int> probes{0};    ///< also called from the run's early-contact thread
  std::atomic<int> connects{0};  ///< likewise
  int power_offs = 0;
  int syncoid_runs = 0;
  FakeZfs zfs;
  FakeCommandRunner local_runner;

  FakeSystems() {
    local_runner.fallback([this](const std::vector<std::string>& argv) { return zfs.answer(argv); });
  }

  ProbeResult probe(const Job&) override {
    ++probes;
    ProbeResult p;
    p.state = up_before ? ProbeState::up : ProbeState::refused;
    p.banner = up_before ? "SSH-2.0-Fake" : "";
    return p;
  }
  Result<int> wake(const Job&) override {
    ++wakes;
    return 3;
  }
  Result<WaitOutcome> wait_up(const Job& job, const std::function<void()>& resend, const std::atomic<bool>*) override {
    if (!wakes_up) {
      resend();
      return make_error(ExitCode::unavailable, "host {}:22 did not answer with an SSH banner within 1s",
                        job.target_host);
    }
    WaitOutcome w;
    w.probes = 2;
    return w;
  }
  Result<std::unique_ptr<CommandRunner>> connect(const Job&) override {
    ++connects;
    spdlog::debug("fake ssh: logged in");
    auto remote = std::make_unique<FakeCommandRunner>();
    remote->fallback([this](const std::vector<std::string>& argv) { return zfs.answer(argv); });
    return std::unique_ptr<CommandRunner>(std::move(remote));
  }
  CommandRunner& local() override { return local_runner; }
  Result<ProcessResult> run_syncoid(const std::vector<std::string>& argv, std::chrono::seconds, const LineCallback& out,
                                    const LineCallback& err, const std::atomic<bool>*) override {
    ++syncoid_runs;
    EXPECT_EQ(argv.back(), "root@192.0.2.10:backup/data");
    out(syncoid_stdout.empty() ? std::string("Sending incremental tank/data@s0 ... s1") : syncoid_stdout);
    if (!syncoid_stderr.empty()) err(syncoid_stderr);
    for (const auto& line : syncoid_stderr_lines) err(line);
    ProcessResult r;
    if (cancel_flag != nullptr) {
      cancel_flag->store(true);
      r.cancelled = true;
      r.term_signal = 15;
      return r;
    }
    r.exit_code = syncoid_exits.empty() ? 0 : syncoid_exits.front();
    if (!syncoid_exits.empty()) syncoid_exits.pop_front();
    return r;
  }
  std::string syncoid_stdout;  ///< what the fake syncoid prints on stdout (default: a progress line)
  std::vector<std::string> syncoid_stderr_lines;  ///< more stderr lines (pv's counts), after syncoid_stderr
  Result<void> power_off(const Job&) override {
    ++power_offs;
    return ok();
  }
  [[nodiscard]] std::string last_power_off_detail() const override { return power_off_detail; }
  std::unique_ptr<DiskControl> disk_control(const Job&, CommandRunner&) override {
    ++disk_controls;
    return std::make_unique<FakeDisk>(disk_reads_to_wake, disk_reads);
  }
  Result<std::optional<AgentStatus>> agent_status(const Job&) override {
    if (!agent_answer) return std::optional<AgentStatus>();
    return *agent_answer;
  }
  int disk_controls = 0;
  std::vector<NotificationResult> notify(const Job&, const RunRecord& record) override {
    ++notifies;
    notified = record;
    return notify_results;
  }
  std::vector<NotificationResult> notify_start(const Job&) override {
    ++notify_starts;
    return notify_start_results;
  }
  Clock& clock() override { return clock_; }

  int notifies = 0;
  int notify_starts = 0;
  RunRecord notified;  ///< what the notifier was given
  std::vector<NotificationResult> notify_results;
  std::vector<NotificationResult> notify_start_results;

 private:
  SystemClock clock_;
};

Job test_job() {
  Job job;
  job.name = "data";
  job.datasets = {DatasetPair{"tank/data", "backup/data", false}};
  job.target_host = "192.0.2.10";
  job.mac_address = "00:11:22:33:44:55";
  job.ssh_key = "/nonexistent/id_ed25519";
  job.known_hosts = "/nonexistent/known_hosts";
  job.syncoid.path = "sh";  // preflight only checks that the program exists
  job.retry_delay = std::chrono::seconds(0);
  job.retries = 2;
  return job;
}

struct Fixture : ::testing::Test {
  test::TempDir dir{"hozo-job-test"};
  StateStore store = StateStore::open(dir.path() / "state.json").value();
  FakeSystems systems;
  std::atomic<bool> cancel{false};
  RunOptions options;
  Job job = test_job();

  Fixture() { options.cancel = &cancel; }

  RunRecord run() {
    auto r = run_job(job, store, systems, options);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : RunRecord{};
  }
  static std::string stage_message(const RunRecord& r, std::string_view name) {
    for (const auto& s : r.stages) {
      if (s.name == name) return s.message;
    }
    return "(no stage " + std::string(name) + ")";
  }
  static std::vector<std::string> stage_names(const RunRecord& r) {
    std::vector<std::string> names;
    for (const auto& s : r.stages) names.push_back(s.name);
    return names;
  }
};

}  // namespace

using Pipeline = Fixture;

TEST_F(Pipeline, BoxOffFullRunWakesSyncsVerifiesAndPowersOff) {
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.woke_host);
  EXPECT_FALSE(r.was_up_before);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(r.shutdown.outcome, ShutdownOutcome::done);
  EXPECT_EQ(systems.power_offs, 1);
  EXPECT_EQ(stage_names(r), (std::vector<std::string>{"preflight", "lock", "wake", "wait", "connect", "pool", "sync",
                                                       "verify", "shutdown"}));
  ASSERT_EQ(r.datasets.size(), 1u);
  EXPECT_TRUE(r.datasets[0].guid_match);
  EXPECT_EQ(r.datasets[0].newest_source_snapshot, "tank/data@s1");
  // Recorded in the state file, with the woken marker cleared after the power-off.
  const auto stored = store.job("data").value();
  ASSERT_NE(stored.last(), nullptr);
  EXPECT_EQ(stored.last()->outcome, RunOutcome::success);
  auto lease = HostLease::acquire(store.dir(), job.target_host, HostSharing::concurrent, Millis(1000)).value();
  EXPECT_FALSE(lease.woken_by_hozo().value());
  EXPECT_TRUE(std::filesystem::exists(r.log_file));
}

TEST_F(Pipeline, ThePreviousHoldIsReleasedByTheNextRunWhileItSyncs) {
  systems.up_before = true;
  const auto first = run();
  ASSERT_EQ(first.outcome, RunOutcome::success);
  EXPECT_EQ(first.datasets[0].held_snapshot, "s1");
  EXPECT_EQ(first.datasets[0].release_pending, "");
  EXPECT_EQ(systems.zfs.holds(), (std::vector<std::string>{"zfs hold hozo:data tank/data@s1", "zfs hold hozo:data backup/data@s1"}));

  systems.zfs.newest = "s2";
  const auto second = run();
  EXPECT_EQ(second.datasets[0].held_snapshot, "s2");
  EXPECT_EQ(second.datasets[0].release_pending, "s1");  // still held: the next run releases it
  EXPECT_EQ(systems.zfs.holds().size(), 4U);            // two more holds, no release yet
  EXPECT_EQ(stage_message(second, "sync").find("released"), std::string::npos) << stage_message(second, "sync");

  systems.zfs.newest = "s3";
  const auto third = run();
  EXPECT_EQ(third.datasets[0].held_snapshot, "s3");
  EXPECT_EQ(third.datasets[0].release_pending, "s2");
  auto holds = systems.zfs.holds();
  ASSERT_EQ(holds.size(), 8U);
  // s1 released on both sides during the sync stage (before the new holds), s2 kept.
  std::sort(holds.begin() + 4, holds.begin() + 6);
  EXPECT_EQ(holds[4], "zfs release hozo:data backup/data@s1");
  EXPECT_EQ(holds[5], "zfs release hozo:data tank/data@s1");
  EXPECT_NE(stage_message(third, "sync").find("previous hold(s) released (hozo:data)"), std::string::npos)
      << stage_message(third, "sync");
}

TEST_F(Pipeline, BoxAlreadyUpIsLeftOn) {
  systems.up_before = true;
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success);
  EXPECT_TRUE(r.was_up_before);
  EXPECT_FALSE(r.woke_host);
  EXPECT_EQ(systems.wakes, 0);
  EXPECT_EQ(systems.power_offs, 0);
  EXPECT_EQ(r.shutdown.outcome, ShutdownOutcome::skipped_not_woken);
}

TEST_F(Pipeline, BoxAlreadyUpIsProbedAndLoggedInOnceDuringPreflight) {
  systems.up_before = true;
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success) << r.error;
  EXPECT_EQ(systems.probes.load(), 1);
  EXPECT_EQ(systems.connects.load(), 1);
}

TEST_F(Pipeline, BoxAlreadyUpHasItsPoolListedByTheEarlyContact) {
  systems.up_before = true;
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success) << r.error;
  EXPECT_EQ(systems.zfs.pool_listings.load(), 1);  // on the early session, not again in the pool stage
  EXPECT_EQ(stage_message(r, "pool"), "backup ONLINE");
}

TEST_F(Pipeline, PoolListedEarlyAsMissingIsStillImported) {
  systems.up_before = true;
  systems.zfs.target_imported = false;
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success) << r.error;
  EXPECT_FALSE(systems.zfs.import_argv.empty());
  EXPECT_EQ(stage_message(r, "pool"), "backup imported, backup ONLINE");
}

TEST_F(Pipeline, BackupDiskMeansThePoolIsListedOnlyAfterTheDiskStage) {
  systems.up_before = true;
  job.backup_device = "/dev/disk/by-id/fake";
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success) << r.error;
  EXPECT_EQ(systems.zfs.pool_listings.load(), 1);  // in the pool stage only
}

TEST_F(Pipeline, RunLogHasTheLinesLoggedBeforeTheRunWasRecorded) {
  // The early contact logs in while begin_run still writes the state: its lines are buffered.
  systems.up_before = true;
  const auto r = run();
  const auto text = read_file(r.log_file);
  ASSERT_TRUE(text) << text.error().message;
  EXPECT_NE(text->find("fake ssh: logged in"), std::string::npos) << *text;
  EXPECT_NE(text->find("run " + r.run_id + " started"), std::string::npos) << *text;
}

TEST_F(Pipeline, SleepingBoxIsNotLoggedInBeforeItIsWoken) {
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success) << r.error;
  EXPECT_EQ(systems.wakes, 1);
  EXPECT_EQ(systems.probes.load(), 1);    // the early one: refused, so no login then
  EXPECT_EQ(systems.connects.load(), 1);  // after the wait
}

TEST_F(Pipeline, BusyHostLeaseMeansAFreshProbeAndLogin) {
  // Another job holds the host: what the early contact saw may be gone when the lease is ours.
  systems.up_before = true;
  job.host_sharing = HostSharing::wait;
  auto other = HostLease::acquire(store.dir(), job.target_host, HostSharing::wait, Millis(1000));
  ASSERT_TRUE(other) << other.error().message;
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    other = make_error("released");
  });
  const auto r = run();
  release.join();
  EXPECT_EQ(r.outcome, RunOutcome::success) << r.error;
  EXPECT_EQ(systems.probes.load(), 2);
  EXPECT_EQ(systems.connects.load(), 2);
}

TEST_F(Pipeline, AlreadyUpButShutdownOnlyIfWokenOffPowersOff) {
  systems.up_before = true;
  job.shutdown_only_if_woken = false;
  const auto r = run();
  EXPECT_EQ(r.shutdown.outcome, ShutdownOutcome::done);
  EXPECT_EQ(systems.power_offs, 1);
}

TEST_F(Pipeline, BoxNeverWakesExits69AtWait) {
  systems.wakes_up = false;
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::failed);
  EXPECT_EQ(r.exit_code, 69);
  EXPECT_EQ(r.failed_stage, "wait");
  EXPECT_EQ(systems.power_offs, 0);
  EXPECT_EQ(systems.syncoid_runs, 0);
  EXPECT_GE(systems.wakes, 2);  // first packet + a resend
}

TEST_F(Pipeline, BoxThatCameUpLateAfterHozosWakeIsPoweredOffByTheNextRun) {
  systems.wakes_up = false;  // the wake worked, but the box took longer than ssh_timeout
  auto first = run();
  EXPECT_EQ(first.failed_stage, "wait");
  EXPECT_EQ(systems.power_offs, 0);
  systems.up_before = true;  // it is up by the next run
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success) << r.error;
  EXPECT_EQ(r.shutdown.outcome, ShutdownOutcome::done) << r.shutdown.message;
  EXPECT_EQ(systems.power_offs, 1);
  EXPECT_NE(r.stages[2].message.find("woken late by an earlier run"), std::string::npos) << r.stages[2].message;
}

TEST_F(Pipeline, StaleMarkerOfAnotherKindOfRunIsCleared) {
  {
    auto lease = HostLease::acquire(store.dir(), job.target_host, HostSharing::concurrent, Millis(1000)).value();
    ASSERT_TRUE(lease.mark_woken("20260101T000000Z-1").ok());  // a run that crashed (not in the state)
  }
  systems.up_before = true;
  const auto r = run();
  EXPECT_EQ(r.shutdown.outcome, ShutdownOutcome::skipped_not_woken);
  EXPECT_EQ(systems.power_offs, 0);
}

TEST_F(Pipeline, TransientSyncoidFailureIsRetried) {
  systems.syncoid_exits = {1, 0};
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success);
  EXPECT_EQ(r.attempts, 2);
}

TEST_F(Pipeline, CriticalSyncoidFailureStopsButStillPowersOff) {
  systems.syncoid_exits = {2, 0};
  systems.syncoid_stderr = "CRITICAL ERROR: ... cannot receive: permission denied";
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::failed);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.failed_stage, "sync");
  EXPECT_EQ(r.attempts, 1);
  EXPECT_NE(r.error.find("permission denied"), std::string::npos);
  EXPECT_EQ(r.shutdown.outcome, ShutdownOutcome::done);
  EXPECT_EQ(systems.power_offs, 1);
}

TEST_F(Pipeline, TransferFiguresAreRecordedPerDatasetPair) {
  systems.syncoid_stdout = "INFO: Sending oldest full snapshot tank/data@s1 (~ 3.0 MB) to new target filesystem:";
  systems.syncoid_stderr_lines = {"1048576", "2097152", "3162920"};
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success);
  ASSERT_EQ(r.transfers.size(), 1u);
  const auto& t = r.transfers[0];
  EXPECT_EQ(t.source, "tank/data");
  EXPECT_EQ(t.target, "backup/data");
  EXPECT_EQ(t.bytes, 3162920);
  EXPECT_EQ(t.estimated_bytes, 3145728);
  EXPECT_EQ(t.bytes_from, "pv");
  EXPECT_EQ(t.sends, 1);
  EXPECT_GE(t.seconds, 0.0);
  EXPECT_EQ(r.bytes_sent, 3162920);
  // Stored in the run file and in the summary's last run.
  EXPECT_EQ(store.job("data").value().last()->transfers, r.transfers);
  EXPECT_EQ(store.summaries().value().at("data").last->bytes_sent, 3162920);
  // The progress file is gone once the run has finished.
  EXPECT_FALSE(store.read_progress("data", r.run_id));
  const auto sync = std::find_if(r.stages.begin(), r.stages.end(), [](const StageTiming& s) { return s.name == "sync"; });
  ASSERT_NE(sync, r.stages.end());
  EXPECT_NE(sync->message.find("3.0 MiB sent"), std::string::npos) << sync->message;
}

TEST_F(Pipeline, PvCountsStayOutOfTheError) {
  systems.syncoid_exits = {2};
  systems.syncoid_stderr_lines = {"CRITICAL ERROR: zfs send failed: 256", "524288"};
  const auto r = run();
  EXPECT_EQ(r.failed_stage, "sync");
  EXPECT_EQ(r.error.find("524288"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("zfs send failed"), std::string::npos) << r.error;
  ASSERT_EQ(r.transfers.size(), 1u);  // a failed pair is recorded with what was sent
  EXPECT_EQ(r.transfers[0].bytes, 524288);
}

TEST_F(Pipeline, RetriesAreBounded) {
  systems.syncoid_exits = {1, 1, 1, 1, 1};
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::failed);
  EXPECT_EQ(r.attempts, 3);  // retries: 2
}

TEST_F(Pipeline, GuidMismatchFailsVerify) {
  systems.zfs.target_guid = 999;
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::failed);
  EXPECT_EQ(r.failed_stage, "verify");
  ASSERT_EQ(r.datasets.size(), 1u);
  EXPECT_FALSE(r.datasets[0].guid_match);
  EXPECT_EQ(systems.power_offs, 1);
}

TEST_F(Pipeline, ExportedTargetPoolIsImported) {
  systems.zfs.target_imported = false;
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success);
  EXPECT_TRUE(systems.zfs.target_imported);
}

TEST_F(Pipeline, FaultedPoolIsRefused) {
  systems.zfs.health = "FAULTED";
  const auto r = run();
  EXPECT_EQ(r.failed_stage, "pool");
  EXPECT_EQ(systems.syncoid_runs, 0);
}

TEST_F(Pipeline, SignalDuringSyncRecordsInterruptedAndPowersOff) {
  systems.cancel_flag = &cancel;
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::interrupted);
  EXPECT_EQ(r.exit_code, 130);
  EXPECT_EQ(r.failed_stage, "sync");
  EXPECT_EQ(systems.power_offs, 1);
}

TEST_F(Pipeline, MissingSyncoidIsUnavailableBeforeWaking) {
  job.syncoid.path = "hozo-no-such-syncoid";
  const auto r = run();
  EXPECT_EQ(r.exit_code, 69);
  EXPECT_EQ(r.failed_stage, "preflight");
  EXPECT_EQ(systems.wakes, 0);
}

TEST_F(Pipeline, SecondJobOnTheSameHostDoesNotPowerOffWhileFirstHoldsIt) {
  auto other = HostLease::acquire(store.dir(), job.target_host, HostSharing::concurrent, Millis(1000)).value();
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success);
  EXPECT_EQ(r.shutdown.outcome, ShutdownOutcome::skipped_in_use);
  EXPECT_EQ(systems.power_offs, 0);
  // The other job, finishing last, sees the marker and would power off.
  EXPECT_TRUE(other.try_become_last().value());
  EXPECT_TRUE(other.woken_by_hozo().value());
}

TEST_F(Pipeline, HostLockedExclusivelyTimesOutWith75) {
  auto holder = HostLease::acquire(store.dir(), job.target_host, HostSharing::wait, Millis(1000)).value();
  job.host_lock_timeout = std::chrono::seconds(1);
  const auto r = run();
  EXPECT_EQ(r.exit_code, 75);
  EXPECT_EQ(r.failed_stage, "lock");
  EXPECT_EQ(systems.wakes, 0);
}

TEST_F(Pipeline, WithoutChannelsThereIsNoNotifyStage) {
  const auto r = run();
  EXPECT_EQ(systems.notifies, 0);
  EXPECT_TRUE(r.notifications.empty());
  EXPECT_EQ(stage_names(r).back(), "shutdown");
}

TEST_F(Pipeline, NotifyStageRunsAfterShutdownAndRecordsResults) {
  job.notifications.webhook_url = "http://192.0.2.99/hook";
  systems.notify_results = {NotificationResult{"webhook", true, "sent to 192.0.2.99 (HTTP 200)", {}}};
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success);
  EXPECT_EQ(systems.notifies, 1);
  EXPECT_EQ(systems.notify_starts, 1);
  const auto names = stage_names(r);
  ASSERT_GE(names.size(), 2u);
  EXPECT_EQ(names[names.size() - 2], "shutdown");
  EXPECT_EQ(names.back(), "notify");
  EXPECT_TRUE(r.stages.back().ok);
  // The notifier saw the final outcome and the power-off.
  EXPECT_EQ(systems.notified.outcome, RunOutcome::success);
  EXPECT_EQ(systems.notified.shutdown.outcome, ShutdownOutcome::done);
  EXPECT_GE(systems.notified.duration_seconds, 0.0);
  ASSERT_EQ(r.notifications.size(), 1u);
  EXPECT_EQ(r.notifications[0].channel, "webhook");
  // ... and it is in the state file.
  const auto stored = store.job("data").value();
  ASSERT_NE(stored.last(), nullptr);
  ASSERT_EQ(stored.last()->notifications.size(), 1u);
  EXPECT_TRUE(stored.last()->notifications[0].ok);
}

TEST_F(Pipeline, FailingNotifierDoesNotChangeTheOutcome) {
  job.notifications.ntfy_topic = "backups";
  systems.notify_results = {NotificationResult{"ntfy", false, "ntfy.example answered HTTP 500", {}}};
  systems.notify_start_results = {NotificationResult{"healthchecks", false, "hc.example: refused", {}}};
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.failed_stage.empty());
  EXPECT_EQ(r.stages.back().name, "notify");
  EXPECT_FALSE(r.stages.back().ok);
  ASSERT_EQ(r.notifications.size(), 2u);
  EXPECT_EQ(r.notifications[0].message, "start ping: hc.example: refused");
  EXPECT_FALSE(r.notifications[1].ok);
}

TEST_F(Pipeline, FailedRunIsNotifiedWithItsStage) {
  job.notifications.ntfy_topic = "backups";
  systems.zfs.target_guid = 999;
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::failed);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(systems.notifies, 1);
  EXPECT_EQ(systems.notified.outcome, RunOutcome::failed);
  EXPECT_EQ(systems.notified.failed_stage, "verify");
  EXPECT_EQ(stage_names(r).back(), "notify");
}

TEST_F(Pipeline, InterruptedRunIsNotifiedToo) {
  job.notifications.ntfy_topic = "backups";
  systems.cancel_flag = &cancel;
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::interrupted);
  EXPECT_EQ(r.exit_code, 130);
  EXPECT_EQ(systems.notifies, 1);
  EXPECT_EQ(systems.notified.outcome, RunOutcome::interrupted);
  EXPECT_EQ(systems.notified.shutdown.outcome, ShutdownOutcome::done);
}

TEST_F(Pipeline, BackupDiskIsSpunUpBetweenConnectAndPool) {
  job.backup_device = "/dev/disk/by-id/ata-X_1";
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success) << r.error;
  EXPECT_EQ(stage_names(r), (std::vector<std::string>{"preflight", "lock", "wake", "wait", "connect", "disk", "pool",
                                                       "sync", "verify", "shutdown"}));
  EXPECT_EQ(systems.disk_controls, 1);
  EXPECT_EQ(systems.disk_reads, 1);
  const auto& disk = r.stages[5];
  EXPECT_NE(disk.message.find("standby → active via fake disk"), std::string::npos) << disk.message;
}

TEST_F(Pipeline, DiskThatNeverSpinsUpFailsTheDiskStageAndPowersOff) {
  job.backup_device = "/dev/sdb";
  job.disk_spinup_timeout = std::chrono::seconds(0);
  systems.disk_reads_to_wake = 1000;
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::failed);
  EXPECT_EQ(r.failed_stage, "disk");
  EXPECT_NE(r.error.find("did not spin up"), std::string::npos) << r.error;
  EXPECT_EQ(systems.syncoid_runs, 0);
  EXPECT_EQ(systems.power_offs, 1);
}

TEST_F(Pipeline, WithoutBackupDeviceThereIsNoDiskStage) {
  const auto r = run();
  const auto names = stage_names(r);
  EXPECT_EQ(std::count(names.begin(), names.end(), "disk"), 0);
  EXPECT_EQ(systems.disk_controls, 0);
}

TEST_F(Pipeline, PoolHealthComesFromTheAgent) {
  AgentStatus st;
  st.pools.push_back(AgentPool{"backup", "FAULTED", 0, 0, 0, "", "", ""});
  systems.agent_answer = Result<std::optional<AgentStatus>>(std::optional<AgentStatus>(st));
  const auto r = run();  // zpool over SSH would say ONLINE: the agent's answer counts
  EXPECT_EQ(r.failed_stage, "pool");
  EXPECT_NE(r.error.find("FAULTED"), std::string::npos) << r.error;
  EXPECT_EQ(systems.syncoid_runs, 0);
}

TEST_F(Pipeline, AgentThatDoesNotAnswerFallsBackToZpoolOverSsh) {
  systems.agent_answer = Result<std::optional<AgentStatus>>(make_error(ExitCode::unavailable, "agent down"));
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success) << r.error;
  EXPECT_NE(r.stages[5].message.find("backup ONLINE"), std::string::npos) << r.stages[5].message;
}

TEST_F(Pipeline, PoolMissingFromTheAgentIsImportedWithTheSearchDirs) {
  systems.agent_answer = Result<std::optional<AgentStatus>>(std::optional<AgentStatus>(AgentStatus{}));
  systems.zfs.target_imported = false;
  job.target_pool_import_dirs = {"/var/lib/pools", "/dev/disk/by-id"};
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success) << r.error;
  EXPECT_EQ(systems.zfs.import_argv,
            (std::vector<std::string>{"zpool", "import", "-d", "/var/lib/pools", "-d", "/dev/disk/by-id", "backup"}));
  EXPECT_NE(r.stages[5].message.find("backup imported"), std::string::npos) << r.stages[5].message;
}

TEST_F(Pipeline, ShutdownRecordsHowTheBoxWasPoweredOff) {
  systems.power_off_detail = "backupd POST /shutdown (pools exported); SSH port closed";
  const auto r = run();
  EXPECT_EQ(r.shutdown.outcome, ShutdownOutcome::done);
  EXPECT_EQ(r.shutdown.message, systems.power_off_detail);
}

TEST(Plan, DryRunShowsExactCommandsAndTouchesNothing) {
  const auto plan = describe_plan(test_job());
  ASSERT_TRUE(plan.ok()) << plan.error().message;
  EXPECT_NE(plan->find("--sshoption=StrictHostKeyChecking=yes"), std::string::npos);
  EXPECT_NE(plan->find("tank/data root@192.0.2.10:backup/data"), std::string::npos);
}

namespace {

/// A stand-in syncoid that answers --version like release `version` does.
std::string fake_syncoid(const test::TempDir& dir, const std::string& version) {
  const auto path = dir.write("syncoid-" + version, "#!/bin/sh\necho \"$0 version " + version + "\"\n");
  std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  return path.string();
}

}  // namespace

TEST_F(Pipeline, StartSpacingOnlyForSyncoid21) {
  const auto stamp = store.dir() / "hosts" / "192.0.2.10.spawned";
  job.syncoid.path = fake_syncoid(dir, "2.2.0");
  auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success);
  EXPECT_NE(r.stages.front().message.find("syncoid 2.2.0 at "), std::string::npos) << r.stages.front().message;
  EXPECT_FALSE(std::filesystem::exists(stamp)) << "2.2.0 names its control sockets apart: no spacing";
  job.syncoid.path = fake_syncoid(dir, "2.1.0");
  r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success);
  EXPECT_TRUE(std::filesystem::exists(stamp)) << "2.1.0 shares a socket per host and second: spaced";
}

TEST_F(Pipeline, Syncoid21SkippingAMissingSourceIsAFailure) {
  job.syncoid.path = fake_syncoid(dir, "2.1.0");
  systems.syncoid_stdout = "WARN Skipping dataset (dataset no longer exists): tank/data...";
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::failed);
  EXPECT_EQ(r.failed_stage, "sync");
  EXPECT_NE(r.error.find("tank/data does not exist (syncoid 2.1.0 skipped it and exited 0)"), std::string::npos)
      << r.error;
  EXPECT_EQ(systems.syncoid_runs, 1) << "a missing source is not retried";
}
