// hozo restore with fake systems: validation before anything is woken, the pull argv, the
// rollback for --snapshot/--in-place, verification, power-off and the state record.
// The real systems are exercised in the lab (tests/lab/test_restore.sh).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>

#include "hozo/lock.hpp"
#include "hozo/restore.hpp"
#include "hozo/syncoid.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/zfs.hpp"
#include "test_support.hpp"

using namespace hozo;

namespace {

/// Datasets → snapshots (name, guid), oldest first.
using Tree = std::map<std::string, std::vector<std::pair<std::string, std::uint64_t>>>;

/// Answers `zfs get` listings, `zpool list` and `zfs rollback` from a Tree.
Result<CommandOutput> answer(Tree& tree, const std::vector<std::string>& argv, std::vector<std::string>* rollbacks) {
  const std::string cmd = argv.size() > 1 ? argv[0] + " " + argv[1] : "";
  if (cmd == "zpool list") {  // -o name (imported?) or -o name,health
    const bool health = std::find(argv.begin(), argv.end(), "name,health") != argv.end();
    return CommandOutput{0, argv.back() + (health ? "\tONLINE\n" : "\n"), ""};
  }
  if (cmd == "zfs rollback") {
    if (rollbacks != nullptr) rollbacks->push_back(argv.back());
    const auto at = argv.back().find('@');
    auto& snaps = tree[argv.back().substr(0, at)];
    const auto name = argv.back().substr(at + 1);
    const auto it = std::find_if(snaps.begin(), snaps.end(), [&](const auto& s) { return s.first == name; });
    if (it == snaps.end()) return CommandOutput{1, "", "cannot rollback: no such snapshot\n"};
    snaps.erase(it + 1, snaps.end());
    return CommandOutput{0, "", ""};
  }
  if (cmd == "zfs get") {
    const std::string ds = argv.back();
    if (!tree.contains(ds)) return CommandOutput{1, "", "cannot open '" + ds + "': dataset does not exist\n"};
    const bool recursive = std::find(argv.begin(), argv.end(), "-r") != argv.end();
    std::string out;
    for (const auto& [name, snaps] : tree) {
      if (name != ds && !(recursive && name.starts_with(ds + "/"))) continue;
      out += name + "\tguid\t1\n" + name + "\tcreatetxg\t1\n";
      std::uint64_t txg = 10;
      for (const auto& [snap, guid] : snaps) {
        out += name + "@" + snap + "\tguid\t" + std::to_string(guid) + "\n";
        out += name + "@" + snap + "\tcreatetxg\t" + std::to_string(txg++) + "\n";
      }
    }
    return CommandOutput{0, out, ""};
  }
  return make_error("unexpected command {}", join(argv, " "));
}

class FakeSystems final : public JobSystems {
 public:
  bool up_before = false;
  bool wakes_up = true;
  int syncoid_exit = 0;
  std::vector<std::string> syncoid_stderr;  ///< lines syncoid prints on stderr
  bool corrupt_guid = false;       ///< the "received" copy gets other GUIDs
  std::atomic<bool>* cancel_during_sync = nullptr;
  int wakes = 0;
  int power_offs = 0;
  int connects = 0;
  std::vector<std::vector<std::string>> syncoid_calls;
  std::vector<std::string> rollbacks;
  Tree local_tree{{"tank", {}}, {"tank/data", {{"s1", 11}, {"s2", 22}}}, {"tank/data/child", {{"s1", 31}, {"s2", 32}}}};
  Tree remote_tree{{"backup", {}}, {"backup/data", {{"s1", 11}, {"s2", 22}}}, {"backup/data/child", {{"s1", 31}, {"s2", 32}}}};
  FakeCommandRunner local_runner;

  FakeSystems() {
    local_runner.fallback([this](const std::vector<std::string>& argv) { return answer(local_tree, argv, &rollbacks); });
  }

  ProbeResult probe(const Job&) override {
    ProbeResult p;
    p.state = up_before ? ProbeState::up : ProbeState::refused;
    return p;
  }
  Result<int> wake(const Job&) override {
    ++wakes;
    return 3;
  }
  Result<WaitOutcome> wait_up(const Job&, const std::function<void()>& resend, const std::atomic<bool>*) override {
    if (!wakes_up) {
      resend();
      return make_error(ExitCode::unavailable, "host did not answer with an SSH banner within 1s");
    }
    return WaitOutcome{};
  }
  Result<std::unique_ptr<CommandRunner>> connect(const Job&) override {
    ++connects;
    auto remote = std::make_unique<FakeCommandRunner>();
    remote->fallback([this](const std::vector<std::string>& argv) { return answer(remote_tree, argv, nullptr); });
    return std::unique_ptr<CommandRunner>(std::move(remote));
  }
  CommandRunner& local() override { return local_runner; }
  Result<ProcessResult> run_syncoid(const std::vector<std::string>& argv, std::chrono::seconds, const LineCallback& out,
                                    const LineCallback& err, const std::atomic<bool>*) override {
    syncoid_calls.push_back(argv);
    out("INFO: Sending oldest full snapshot ...");
    for (const auto& line : syncoid_stderr) err(line);
    ProcessResult r;
    if (cancel_during_sync != nullptr) {
      cancel_during_sync->store(true);
      r.cancelled = true;
      r.term_signal = 15;
      return r;
    }
    r.exit_code = syncoid_exit;
    if (syncoid_exit != 0) return r;
    // "Receive" the remote tree under the local target (last argument).
    const std::string remote = argv[argv.size() - 2].substr(argv[argv.size() - 2].find(':') + 1);
    const std::string local = argv.back();
    const bool recursive = std::find(argv.begin(), argv.end(), "--recursive") != argv.end();
    for (const auto& [name, snaps] : remote_tree) {
      if (name != remote && !(recursive && name.starts_with(remote + "/"))) continue;
      auto copy = snaps;
      if (corrupt_guid) {
        for (auto& s : copy) s.second += 1000;
      }
      local_tree[local + name.substr(remote.size())] = copy;
    }
    return r;
  }
  Result<void> power_off(const Job&) override {
    ++power_offs;
    return ok();
  }
  std::vector<NotificationResult> notify(const Job&, const RunRecord&) override { return {}; }
  std::vector<NotificationResult> notify_start(const Job&) override { return {}; }
  Clock& clock() override { return clock_; }
  /// The backup disk: present, spinning after `disk_reads_needed` spin-up reads.
  std::unique_ptr<DiskControl> disk_control(const Job&, CommandRunner&) override {
    class Disk final : public DiskControl {
     public:
      explicit Disk(FakeSystems& s) : s_(s) {}
      Result<DiskObservation> observe() override {
        ++s_.disk_observations;
        DiskObservation o;
        o.present = true;
        o.state = s_.disk_reads >= s_.disk_reads_needed ? SpinState::active : SpinState::standby;
        return o;
      }
      Result<void> spin_up() override {
        ++s_.disk_reads;
        return ok();
      }
      [[nodiscard]] std::string describe() const override { return "fake disk"; }

     private:
      FakeSystems& s_;
    };
    return std::make_unique<Disk>(*this);
  }
  int disk_reads_needed = 1;
  int disk_reads = 0;
  int disk_observations = 0;

 private:
  SystemClock clock_;
};

Job test_job() {
  Job job;
  job.name = "nightly";
  job.datasets = {DatasetPair{"tank/data", "backup/data", true}};
  job.target_host = "192.0.2.10";
  job.mac_address = "00:11:22:33:44:55";
  job.ssh_key = "/nonexistent/id_ed25519";
  job.known_hosts = "/nonexistent/known_hosts";
  job.syncoid.path = "syncoid";
  return job;
}

SystemTime at_2026_12_01() { return parse_iso8601_utc("2026-12-01T06:41:08Z").value(); }

struct Restore : ::testing::Test {
  test::TempDir dir{"hozo-restore-test"};
  StateStore store = StateStore::open(dir.path() / "state.json").value();
  FakeSystems systems;
  std::atomic<bool> cancel{false};
  Job job = test_job();
  RestoreRequest request;

  RestorePlan plan() {
    auto p = plan_restore(job, request, at_2026_12_01());
    EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message);
    return p.ok() ? *p : RestorePlan{};
  }
  Error plan_error() {
    auto p = plan_restore(job, request, at_2026_12_01());
    EXPECT_FALSE(p.ok());
    return p.ok() ? Error{} : p.error();
  }
  RestoreRecord run() {
    const auto p = plan();
    auto r = run_restore(job, p, store, systems, &cancel);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : RestoreRecord{};
  }
};

}  // namespace

TEST_F(Restore, DefaultTargetIsANewDatasetNextToTheSource) {
  EXPECT_EQ(default_restore_target("tank/data", at_2026_12_01()), "tank/data-restore-20261201-064108");
  EXPECT_EQ(default_restore_target("tank", at_2026_12_01()), "tank/restore-20261201-064108");
  const auto p = plan();
  EXPECT_EQ(p.target, "tank/data-restore-20261201-064108");
  EXPECT_TRUE(validate_dataset_name(p.target).ok());
  EXPECT_FALSE(p.in_place);
  ASSERT_GE(p.syncoid_argv.size(), 2u);
  EXPECT_EQ(p.syncoid_argv[p.syncoid_argv.size() - 2], "root@192.0.2.10:backup/data");
  EXPECT_EQ(p.syncoid_argv.back(), p.target);
  EXPECT_NE(std::find(p.syncoid_argv.begin(), p.syncoid_argv.end(), "--no-sync-snap"), p.syncoid_argv.end());
  EXPECT_NE(std::find(p.syncoid_argv.begin(), p.syncoid_argv.end(), "--recursive"), p.syncoid_argv.end());
  const auto text = describe_restore(job, p);
  EXPECT_NE(text.find(describe_command(p.syncoid_argv)), std::string::npos);
  EXPECT_NE(text.find("dry run"), std::string::npos);
}

TEST_F(Restore, NamesAreValidatedBeforeAnything) {
  request.to = "x;touch /tmp/pwned";
  EXPECT_EQ(plan_error().code, ExitCode::usage);
  request.to = "";
  request.snapshot = "x;touch /tmp/pwned";
  EXPECT_EQ(plan_error().code, ExitCode::usage);
  for (const auto* bad : {"a@b", "-s", "a b", "a/b", "$(id)"}) {
    EXPECT_FALSE(validate_snapshot_name(bad).ok()) << bad;
  }
  EXPECT_TRUE(validate_snapshot_name("autosnap_2026-11-24_08:00:00_daily").ok());
  request.snapshot = "";
  request.dataset = "tank/other";
  EXPECT_NE(plan_error().message.find("does not back it up"), std::string::npos);
  EXPECT_EQ(systems.wakes + systems.connects, 0);
}

TEST_F(Restore, TheLiveSourceIsNeverTheTargetWithoutInPlace) {
  request.to = "tank/data";
  EXPECT_NE(plan_error().message.find("--in-place"), std::string::npos);
  request.to = "tank/data/inside";  // the next recursive backup would copy it
  EXPECT_EQ(plan_error().code, ExitCode::usage);
  request.to = "tank";
  EXPECT_EQ(plan_error().code, ExitCode::usage);
  request.to = "tank/elsewhere";
  EXPECT_EQ(plan().target, "tank/elsewhere");
  request.force_delete = true;  // only with --in-place
  EXPECT_EQ(plan_error().code, ExitCode::usage);
}

TEST_F(Restore, InPlaceNeedsForceDeleteAndTheJobName) {
  request.in_place = true;
  EXPECT_NE(plan_error().message.find("--force-delete"), std::string::npos);
  request.force_delete = true;
  auto p = plan();
  EXPECT_EQ(p.target, "tank/data");
  EXPECT_FALSE(p.confirmed);
  EXPECT_NE(std::find(p.syncoid_argv.begin(), p.syncoid_argv.end(), "--force-delete"), p.syncoid_argv.end());
  // Unconfirmed: refused before anything is woken or recorded.
  auto r = run_restore(job, p, store, systems, &cancel);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ExitCode::usage);
  EXPECT_EQ(systems.wakes, 0);
  EXPECT_TRUE(store.job("nightly")->restores.empty());
  request.confirm = "nightlyx";
  EXPECT_FALSE(plan().confirmed);
  request.confirm = "nightly";
  EXPECT_TRUE(plan().confirmed);
  request.to = "tank/other";
  EXPECT_EQ(plan_error().code, ExitCode::usage);
}

TEST_F(Restore, DatasetSelectsAPairOrAChildOfARecursiveOne) {
  job.datasets.push_back({"tank/home", "backup/home", false});
  EXPECT_NE(plan_error().message.find("--dataset"), std::string::npos);
  request.dataset = "tank/home";
  EXPECT_EQ(plan().pair.target, "backup/home");
  request.dataset = "tank/data/child";
  const auto p = plan();
  EXPECT_EQ(p.pair.target, "backup/data/child");
  // Next to the recursive root, not inside it (the next backup would copy it back to the box).
  EXPECT_EQ(p.target, "tank/data-restore-20261201-064108-child");
}

TEST_F(Restore, BoxOffRestoreWakesPullsVerifiesPowersOffAndRecords) {
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success) << r.error;
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.woke_host);
  EXPECT_EQ(systems.power_offs, 1);
  EXPECT_EQ(r.shutdown.outcome, ShutdownOutcome::done);
  ASSERT_EQ(systems.syncoid_calls.size(), 1u);
  EXPECT_TRUE(systems.rollbacks.empty());  // a fresh copy of the newest needs no rollback
  EXPECT_EQ(r.restored_snapshot, "tank/data-restore-20261201-064108@s2");
  EXPECT_EQ(systems.local_tree.at("tank/data-restore-20261201-064108/child").size(), 2u);
  const auto stored = store.job("nightly").value();
  ASSERT_EQ(stored.restores.size(), 1u);
  EXPECT_EQ(stored.restores[0].outcome, RunOutcome::success);
  EXPECT_EQ(stored.restores[0].source, "tank/data");
  EXPECT_EQ(stored.restores[0].backup, "192.0.2.10:backup/data");
  EXPECT_EQ(stored.restores[0].target, "tank/data-restore-20261201-064108");
  EXPECT_FALSE(stored.restores[0].finished.empty());
  EXPECT_TRUE(stored.runs.empty());
  auto lease = HostLease::acquire(store.dir(), job.target_host, HostSharing::concurrent, Millis(1000)).value();
  EXPECT_FALSE(lease.woken_by_hozo().value());
}

TEST_F(Restore, OlderSnapshotIsRolledBackToOnEveryDataset) {
  request.snapshot = "s1";
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success) << r.error;
  EXPECT_EQ(systems.rollbacks, (std::vector<std::string>{"tank/data-restore-20261201-064108@s1",
                                                         "tank/data-restore-20261201-064108/child@s1"}));
  EXPECT_EQ(r.restored_snapshot, "tank/data-restore-20261201-064108@s1");
  EXPECT_EQ(systems.local_tree.at("tank/data-restore-20261201-064108").size(), 1u);
}

TEST_F(Restore, BackupDiskIsSpunUpBeforeTheBackupIsRead) {
  job.backup_device = "/dev/sdb";
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success) << r.error;
  EXPECT_EQ(systems.disk_reads, 1);
  EXPECT_EQ(systems.syncoid_calls.size(), 1u);
}

TEST_F(Restore, DiskThatNeverSpinsUpFailsBeforeSyncoid) {
  job.backup_device = "/dev/sdb";
  job.disk_spinup_timeout = std::chrono::seconds(0);
  systems.disk_reads_needed = 1000;
  const auto r = run();
  EXPECT_EQ(r.failed_stage, "disk");
  EXPECT_TRUE(systems.syncoid_calls.empty());
  EXPECT_EQ(systems.power_offs, 1);
}

TEST_F(Restore, TargetInsideAnyRecursiveSourceIsRefused) {
  job.datasets.push_back(DatasetPair{"tank/b", "backup/b", false});
  request.dataset = "tank/b";
  request.to = "tank/data/x";  // inside the job's other, recursive pair
  EXPECT_NE(plan_error().message.find("inside the recursively backed-up tank/data"), std::string::npos);
  request.to = "tank/data";  // a live source of the job
  EXPECT_NE(plan_error().message.find("is a live source of job nightly"), std::string::npos);
}

TEST_F(Restore, WholePoolBackedUpRecursivelyNeedsTo) {
  job.datasets = {DatasetPair{"tank", "backup/tank", true}};
  request.dataset = "tank/data";
  const auto e = plan_error();
  EXPECT_EQ(e.code, ExitCode::usage);
  EXPECT_NE(e.message.find("give --to a dataset in another pool"), std::string::npos) << e.message;
  request.to = "other/restored";
  EXPECT_EQ(plan().target, "other/restored");
}

TEST_F(Restore, SnapshotMissingOnTheBoxFailsBeforeSyncoidAndPowersOff) {
  request.snapshot = "nope";
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::failed);
  EXPECT_EQ(r.failed_stage, "check");
  EXPECT_EQ(r.exit_code, 1);  // the box was woken already: a failure, not a usage error
  EXPECT_TRUE(systems.syncoid_calls.empty());
  EXPECT_EQ(systems.power_offs, 1);
}

TEST_F(Restore, ExistingTargetIsRefusedBeforeWaking) {
  request.to = "tank/data/child";  // exists (allowed as a --to only because this job is not recursive)
  job.datasets[0].recursive = false;
  const auto p = plan();
  auto r = run_restore(job, p, store, systems, &cancel);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ExitCode::usage);
  EXPECT_NE(r.error().message.find("already exists"), std::string::npos);
  request.to = "tank/missing/restore";  // parent missing
  r = run_restore(job, plan(), store, systems, &cancel);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("parent"), std::string::npos);
  EXPECT_EQ(systems.wakes, 0);
  EXPECT_EQ(systems.connects, 0);
}

TEST_F(Restore, InPlaceRollsTheLiveDatasetBackToTheBackup) {
  systems.local_tree["tank/data"].push_back({"local-only", 99});  // newer than the backup
  request.in_place = true;
  request.force_delete = true;
  request.confirm = "nightly";
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success) << r.error;
  EXPECT_TRUE(r.in_place);
  EXPECT_EQ(r.target, "tank/data");
  EXPECT_EQ(systems.syncoid_calls.at(0).back(), "tank/data");
  EXPECT_EQ(systems.rollbacks, (std::vector<std::string>{"tank/data@s2", "tank/data/child@s2"}));
}

TEST_F(Restore, BoxNeverWakesIs69WithoutPowerOff) {
  systems.wakes_up = false;
  const auto r = run();
  EXPECT_EQ(r.exit_code, 69);
  EXPECT_EQ(r.failed_stage, "wake");
  EXPECT_EQ(systems.power_offs, 0);
  EXPECT_TRUE(systems.syncoid_calls.empty());
  EXPECT_EQ(store.job("nightly")->restores.at(0).exit_code, 69);
}

TEST_F(Restore, BoxAlreadyUpIsLeftOn) {
  systems.up_before = true;
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::success);
  EXPECT_TRUE(r.was_up_before);
  EXPECT_EQ(systems.wakes, 0);
  EXPECT_EQ(systems.power_offs, 0);
  EXPECT_EQ(r.shutdown.outcome, ShutdownOutcome::skipped_not_woken);
}

TEST_F(Restore, SyncoidFailureAndGuidMismatchFail) {
  systems.syncoid_exit = 2;
  auto r = run();
  EXPECT_EQ(r.failed_stage, "sync");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(systems.power_offs, 1);
  systems.syncoid_exit = 0;
  systems.corrupt_guid = true;
  request.to = "tank/second";
  r = run();
  EXPECT_EQ(r.failed_stage, "verify");
  EXPECT_NE(r.error.find("guid"), std::string::npos);
}

TEST_F(Restore, SyncoidFailureNamesItsCauseAndRemedyFirst) {
  systems.syncoid_exit = 2;
  systems.syncoid_stderr = {"cannot receive new filesystem stream: out of space",
                            "CRITICAL ERROR:  zfs send  'backup/data'@'s2' | zfs receive  -s -F 'tank/data-restore' "
                            "failed: 256 at /usr/sbin/syncoid line 492."};
  auto r = run();
  EXPECT_EQ(r.failed_stage, "sync");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.error_cause, "out_of_space");
  EXPECT_TRUE(r.error.starts_with("out of space on the local pool of ")) << r.error;
  EXPECT_NE(r.error.find("\nsyncoid: CRITICAL ERROR:"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("syncoid exited with status 2"), std::string::npos) << r.error;
  EXPECT_EQ(systems.power_offs, 1);
  // Nothing recognised: syncoid's exit and last line, no cause.
  systems.syncoid_stderr = {"something odd happened"};
  request.to = "tank/second";
  r = run();
  EXPECT_EQ(r.error_cause, "");
  EXPECT_TRUE(r.error.starts_with("syncoid exited with status 2")) << r.error;
}

TEST_F(Restore, InterruptedDuringSyncoidIs130AndStillPowersOff) {
  systems.cancel_during_sync = &cancel;
  const auto r = run();
  EXPECT_EQ(r.outcome, RunOutcome::interrupted);
  EXPECT_EQ(r.exit_code, 130);
  EXPECT_EQ(systems.power_offs, 1);
}
