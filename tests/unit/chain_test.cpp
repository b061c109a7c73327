// The incremental chain's holds: one hold command per side, the previous hold left for the next
// run to release (and released by it), and a previous hold kept where the new one failed.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "hozo/chain.hpp"
#include "hozo/command.hpp"
#include "hozo/state.hpp"

namespace hozo {
namespace {

/// A runner that records every command and answers it with `status` (`err` as stderr).
class StatusRunner final : public CommandRunner {
 public:
  int status = 0;
  std::string err = "cannot hold: dataset does not exist";
  std::vector<std::string> calls;
  Result<CommandOutput> run(const std::vector<std::string>& argv, std::chrono::seconds) override {
    std::string s;
    for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
    calls.push_back(s);
    return CommandOutput{status, "", status == 0 ? "" : err};
  }
  [[nodiscard]] std::string where() const override { return "box"; }
};

struct ChainHolds : ::testing::Test {
  Job job;
  std::vector<DatasetVerification> datasets;
  RunRecord previous;
  ChainHolds() {
    job.name = "j";
    for (const char* name : {"a", "b"}) {
      DatasetVerification d;
      d.source = std::string("tank/") + name;
      d.target = std::string("backup/") + name;
      d.newest_source_snapshot = d.source + "@new";
      d.guid_match = true;
      datasets.push_back(d);
      d.held_snapshot = "old";
      previous.datasets.push_back(d);
    }
  }
  /// The run that held "new" on every dataset and left "old" for the next run to release.
  [[nodiscard]] RunRecord anchor_leaving_old() const {
    RunRecord anchor;
    anchor.datasets = datasets;
    for (auto& d : anchor.datasets) {
      d.held_snapshot = "new";
      d.release_pending = "old";
    }
    return anchor;
  }
};

TEST_F(ChainHolds, EachSideHoldsInOneCommandAndLeavesThePreviousHoldForTheNextRun) {
  StatusRunner local, remote;
  const auto warnings = hold_verified_snapshots(local, remote, job, datasets, &previous, std::chrono::seconds(5));
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(local.calls, std::vector<std::string>{"zfs hold hozo:j tank/a@new tank/b@new"});
  EXPECT_EQ(remote.calls, std::vector<std::string>{"zfs hold hozo:j backup/a@new backup/b@new"});
  for (const auto& d : datasets) {
    EXPECT_EQ(d.held_snapshot, "new");
    EXPECT_EQ(d.release_pending, "old");  // still held on both sides until the next run
  }
}

TEST_F(ChainHolds, TheNextRunReleasesWhatTheLastOneLeftInOneCommandPerSide) {
  RunRecord anchor = anchor_leaving_old();
  anchor.datasets[1].release_pending.clear();  // nothing left for this one
  ASSERT_TRUE(has_holds_to_release(anchor));
  StatusRunner local, remote;
  const auto warnings = release_previous_holds(local, remote, job, anchor, std::chrono::seconds(5));
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(local.calls, std::vector<std::string>{"zfs release hozo:j tank/a@old"});
  EXPECT_EQ(remote.calls, std::vector<std::string>{"zfs release hozo:j backup/a@old"});

  anchor.datasets[0].release_pending.clear();
  EXPECT_FALSE(has_holds_to_release(anchor));
  StatusRunner none_local, none_remote;
  EXPECT_TRUE(release_previous_holds(none_local, none_remote, job, anchor, std::chrono::seconds(5)).empty());
  EXPECT_TRUE(none_local.calls.empty());
  EXPECT_TRUE(none_remote.calls.empty());
}

TEST_F(ChainHolds, AHoldGoneAlreadyCountsAsReleased) {
  RunRecord anchor = anchor_leaving_old();
  StatusRunner local, remote;
  local.status = remote.status = 1;
  local.err = remote.err = "cannot release hold from snapshot 'tank/a@old': no such tag on this dataset";
  const auto warnings = release_previous_holds(local, remote, job, anchor, std::chrono::seconds(5));
  EXPECT_TRUE(warnings.empty());
  // The batch failed (zfs applies none of it then): one by one, which tells them apart.
  EXPECT_EQ(local.calls.size(), 3U);
}

TEST_F(ChainHolds, FailedHoldKeepsThePreviousHoldOnThatSide) {
  StatusRunner local, remote;
  remote.status = 1;  // every hold on the box fails
  const auto warnings = hold_verified_snapshots(local, remote, job, datasets, &previous, std::chrono::seconds(5));
  // The box: the batch hold, one hold per snapshot; no release.
  ASSERT_EQ(remote.calls.size(), 3U);
  for (const auto& call : remote.calls) EXPECT_EQ(call.find("release"), std::string::npos) << call;
  std::size_t kept = 0;
  for (const auto& w : warnings) kept += w.find("kept hold hozo:j on backup/") != std::string::npos ? 1 : 0;
  EXPECT_EQ(kept, 2U);
  // The source's holds worked: its previous holds are released now (no next run would know of them).
  EXPECT_EQ(local.calls, (std::vector<std::string>{"zfs hold hozo:j tank/a@new tank/b@new",
                                                   "zfs release hozo:j tank/a@old tank/b@old"}));
  for (const auto& d : datasets) {
    EXPECT_EQ(d.held_snapshot, "");  // held on one side only
    EXPECT_EQ(d.release_pending, "");
  }
}

TEST_F(ChainHolds, FirstRunOnlyHolds) {
  StatusRunner local, remote;
  const auto warnings = hold_verified_snapshots(local, remote, job, datasets, nullptr, std::chrono::seconds(5));
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(remote.calls, std::vector<std::string>{"zfs hold hozo:j backup/a@new backup/b@new"});
  for (const auto& d : datasets) EXPECT_EQ(d.release_pending, "");
}

TEST_F(ChainHolds, TheSameSnapshotAgainReleasesNothing) {
  for (auto& d : datasets) d.newest_source_snapshot = d.source + "@old";  // nothing new since the last run
  StatusRunner local, remote;
  const auto warnings = hold_verified_snapshots(local, remote, job, datasets, &previous, std::chrono::seconds(5));
  EXPECT_TRUE(warnings.empty());
  for (const auto& d : datasets) {
    EXPECT_EQ(d.held_snapshot, "old");
    EXPECT_EQ(d.release_pending, "");
  }
}

}  // namespace
}  // namespace hozo
