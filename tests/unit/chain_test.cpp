// The incremental chain's holds: new holds before releases, one round trip per side, and a
// previous hold kept where the new one failed.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "hozo/chain.hpp"
#include "hozo/command.hpp"
#include "hozo/state.hpp"

namespace hozo {
namespace {

/// A runner that counts run_then round trips and answers every command with `status`.
class RoundTripRunner final : public CommandRunner {
 public:
  int status = 0;
  int round_trips = 0;
  std::vector<std::string> calls;
  Result<CommandOutput> run(const std::vector<std::string>& argv, std::chrono::seconds) override {
    ++round_trips;
    calls.push_back(join(argv));
    return CommandOutput{status, "", status == 0 ? "" : "cannot hold: dataset does not exist"};
  }
  Result<ChainedOutput> run_then(const std::vector<std::string>& first, const std::vector<std::string>& second,
                                 std::chrono::seconds) override {
    ++round_trips;
    calls.push_back(join(first) + " && " + join(second));
    if (status != 0) return ChainedOutput{CommandOutput{status, "", "cannot hold"}, std::nullopt};
    return ChainedOutput{CommandOutput{}, CommandOutput{}};
  }
  [[nodiscard]] std::string where() const override { return "box"; }

 private:
  static std::string join(const std::vector<std::string>& argv) {
    std::string s;
    for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
    return s;
  }
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
};

TEST_F(ChainHolds, EachSideHoldsThenReleasesInOneRoundTrip) {
  RoundTripRunner local, remote;
  const auto warnings = hold_verified_snapshots(local, remote, job, datasets, &previous, std::chrono::seconds(5));
  EXPECT_TRUE(warnings.empty());
  ASSERT_EQ(local.calls.size(), 1U);
  EXPECT_EQ(local.calls[0], "zfs hold hozo:j tank/a@new tank/b@new && zfs release hozo:j tank/a@old tank/b@old");
  ASSERT_EQ(remote.calls.size(), 1U);
  EXPECT_EQ(remote.calls[0], "zfs hold hozo:j backup/a@new backup/b@new && zfs release hozo:j backup/a@old backup/b@old");
  for (const auto& d : datasets) EXPECT_EQ(d.held_snapshot, "new");
}

TEST_F(ChainHolds, DefaultRunThenIsTwoCommandsInOrder) {
  FakeCommandRunner local, remote;
  local.fallback([](const std::vector<std::string>&) { return Result<CommandOutput>(CommandOutput{}); });
  remote.fallback([](const std::vector<std::string>&) { return Result<CommandOutput>(CommandOutput{}); });
  const auto warnings = hold_verified_snapshots(local, remote, job, datasets, &previous, std::chrono::seconds(5));
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(local.calls,
            (std::vector<std::string>{"zfs hold hozo:j tank/a@new tank/b@new", "zfs release hozo:j tank/a@old tank/b@old"}));
}

TEST_F(ChainHolds, FailedHoldKeepsThePreviousHoldOnThatSide) {
  RoundTripRunner local, remote;
  remote.status = 1;  // every hold on the box fails
  const auto warnings = hold_verified_snapshots(local, remote, job, datasets, &previous, std::chrono::seconds(5));
  // The box: the one-trip attempt (its hold failed, so its release never ran), the batch hold, one
  // hold per snapshot; no release on its own.
  ASSERT_FALSE(remote.calls.empty());
  EXPECT_NE(remote.calls[0].find(" && "), std::string::npos);
  for (std::size_t i = 1; i < remote.calls.size(); ++i) {
    EXPECT_EQ(remote.calls[i].find("release"), std::string::npos) << remote.calls[i];
  }
  std::size_t kept = 0;
  for (const auto& w : warnings) kept += w.find("kept hold hozo:j on backup/") != std::string::npos ? 1 : 0;
  EXPECT_EQ(kept, 2U);
  // The source's holds worked: its previous holds were released.
  ASSERT_EQ(local.calls.size(), 1U);
  EXPECT_NE(local.calls[0].find("zfs release"), std::string::npos);
  for (const auto& d : datasets) EXPECT_EQ(d.held_snapshot, "");  // held on one side only
}

TEST_F(ChainHolds, FirstRunOnlyHolds) {
  RoundTripRunner local, remote;
  const auto warnings = hold_verified_snapshots(local, remote, job, datasets, nullptr, std::chrono::seconds(5));
  EXPECT_TRUE(warnings.empty());
  ASSERT_EQ(remote.calls.size(), 1U);
  EXPECT_EQ(remote.calls[0], "zfs hold hozo:j backup/a@new backup/b@new");
}

}  // namespace
}  // namespace hozo
