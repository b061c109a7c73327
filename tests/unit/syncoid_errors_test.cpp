// The syncoid failure classifier against real output: syncoid 2.1.0 messages (from its source and
// the lab: tests/lab/test_chain.sh prints the errors it gets) and the zfs / ssh lines behind them.
#include <gtest/gtest.h>

#include <string>

#include "hozo/syncoid_errors.hpp"

using namespace hozo;

namespace {

SyncCause cause_of(const std::string& output) { return classify_syncoid_output(output).cause; }

const SyncContext kWhere{"nightly", "tank/data", "box.lan", "backup/data"};

}  // namespace

TEST(SyncoidErrors, NoCommonSnapshot) {
  const std::string out =
      "NEWEST SNAPSHOT: syncoid_host_2026-12-01:21:40:01-GMT00:00\n"
      "CRITICAL ERROR: Target hztgt/backup/other exists but has no snapshots matching with hzsrc/other!\n"
      "Replication to target would require destroying existing\n"
      "target. Cowardly refusing to destroy your existing target.\n";
  const auto f = classify_syncoid_output(out);
  EXPECT_EQ(f.cause, SyncCause::no_common_snapshot);
  EXPECT_EQ(f.critical, "CRITICAL ERROR: Target hztgt/backup/other exists but has no snapshots matching with hzsrc/other!");
  const auto text = describe_cause(f, kWhere);
  EXPECT_EQ(text.rfind("no common snapshot between tank/data and box.lan:backup/data", 0), 0U) << text;
  EXPECT_NE(text.find("hozo(1) RECOVERY"), std::string::npos);
  EXPECT_FALSE(retry_can_help(f.cause));
}

TEST(SyncoidErrors, TargetModified) {
  const std::string out =
      "Sending incremental hzsrc/data@a ... syncoid_x (~ 4 KB):\n"
      "cannot receive incremental stream: destination hztgt/backup/mod has been modified\n"
      "since most recent snapshot\n"
      "CRITICAL ERROR:  zfs send  -I 'hzsrc/data'@'a' 'hzsrc/data'@'b' | ssh ... 'zfs receive  -s  \"hztgt/backup/mod\" "
      "2>&1' failed: 256 at /usr/sbin/syncoid line 817.\n";
  const auto f = classify_syncoid_output(out);
  EXPECT_EQ(f.cause, SyncCause::target_modified);
  EXPECT_EQ(f.evidence, "cannot receive incremental stream: destination hztgt/backup/mod has been modified");
  const auto text = describe_cause(f, kWhere);
  EXPECT_NE(text.find("hozo jobs run nightly --force-rollback"), std::string::npos) << text;
}

TEST(SyncoidErrors, OutOfSpaceWinsOverTheBrokenPipeItCauses) {
  const std::string out =
      "warning: cannot send 'hzsrc/fill@one': Broken pipe\n"
      "cannot receive new filesystem stream: out of space\n"
      "CRITICAL ERROR:  zfs send  'hzsrc/fill'@'one' | ... failed: 256 at /usr/sbin/syncoid line 492.\n";
  EXPECT_EQ(cause_of(out), SyncCause::out_of_space);
  EXPECT_EQ(cause_of("cannot receive new filesystem stream: disk quota exceeded\n"), SyncCause::out_of_space);
}

TEST(SyncoidErrors, OtherClasses) {
  EXPECT_EQ(cause_of("cannot receive incremental stream: dataset is busy\n"), SyncCause::target_busy);
  EXPECT_EQ(cause_of("root@10.0.0.2: Permission denied (publickey).\n"
                     "CRITICAL ERROR: ssh connection echo test failed for root@10.0.0.2 with exit code 255\n"),
            SyncCause::permission_denied);
  EXPECT_EQ(cause_of("cannot open 'tank/nope': dataset does not exist\n"), SyncCause::dataset_missing);
  EXPECT_EQ(cause_of("WARN Skipping dataset (dataset no longer exists): tank/gone...\n"), SyncCause::dataset_missing);
  EXPECT_EQ(cause_of("ssh: connect to host 10.0.0.2 port 22: Connection refused\n"
                     "CRITICAL ERROR: ssh connection echo test failed for root@10.0.0.2 with exit code 255\n"),
            SyncCause::network);
  EXPECT_EQ(cause_of("Timeout, server 10.0.0.2 not responding.\n"), SyncCause::network);
  EXPECT_TRUE(retry_can_help(SyncCause::network));
  EXPECT_TRUE(retry_can_help(SyncCause::target_busy));
}

TEST(SyncoidErrors, UnknownKeepsTheCriticalLine) {
  const auto f = classify_syncoid_output("something new\nCRITICAL ERROR: snapshots couldn't be listed for x (exit code 1)\n");
  EXPECT_EQ(f.cause, SyncCause::unknown);
  EXPECT_EQ(f.critical, "CRITICAL ERROR: snapshots couldn't be listed for x (exit code 1)");
  EXPECT_TRUE(describe_cause(f, kWhere).empty());
  EXPECT_EQ(to_string(SyncCause::unknown), "unknown");
  EXPECT_EQ(classify_syncoid_output("").cause, SyncCause::unknown);
}

TEST(SyncoidErrors, LongAndBinaryLinesAreClipped) {
  const auto f = classify_syncoid_output(std::string(2000, 'x') + " out of space\x01\n");
  EXPECT_EQ(f.cause, SyncCause::out_of_space);
  EXPECT_LE(f.evidence.size(), 300U);
}

TEST(SyncoidErrors, RestoreRemediesSpeakOfThisMachinesSide) {
  const SyncContext where{"nightly", "backup/data", "box", "tank/data-restore-20261201-120000"};
  for (const auto cause : {SyncCause::no_common_snapshot, SyncCause::target_modified, SyncCause::target_busy,
                           SyncCause::out_of_space, SyncCause::permission_denied, SyncCause::dataset_missing,
                           SyncCause::network}) {
    SyncFailure f;
    f.cause = cause;
    const auto text = describe_restore_cause(f, where);
    EXPECT_FALSE(text.empty()) << to_string(cause);
    EXPECT_EQ(text.find("jobs run"), std::string::npos) << text;  // a backup run's remedy is no help here
  }
  SyncFailure space;
  space.cause = SyncCause::out_of_space;
  EXPECT_TRUE(describe_restore_cause(space, where).starts_with("out of space on the local pool of tank/data-restore"));
  SyncFailure common;
  common.cause = SyncCause::no_common_snapshot;
  EXPECT_NE(describe_restore_cause(common, where).find("--in-place --force-delete"), std::string::npos);
  EXPECT_TRUE(describe_restore_cause(SyncFailure{}, where).empty());
}

TEST(SyncoidErrors, NoCommonSnapshotRemedyNamesReseed) {
  SyncFailure f;
  f.cause = SyncCause::no_common_snapshot;
  const auto text = describe_cause(f, SyncContext{"nightly", "tank/data", "box", "backup/data"});
  EXPECT_NE(text.find("hozo jobs reseed nightly"), std::string::npos) << text;
}
