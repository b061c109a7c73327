#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "hozo/command.hpp"
#include "hozo/verify.hpp"

using namespace hozo;
using namespace std::chrono_literals;

namespace {

// (dataset, snapshot or "" for the dataset's own rows, guid, createtxg)
using Row = std::tuple<std::string, std::string, std::uint64_t, std::uint64_t>;

std::string listing(const std::vector<Row>& rows) {
  std::string out;
  for (const auto& [ds, snap, guid, txg] : rows) {
    const std::string name = snap.empty() ? ds : ds + "@" + snap;
    out += fmt::format("{}\tguid\t{}\n{}\tcreatetxg\t{}\n", name, guid, name, txg);
  }
  return out;
}

std::string listing_cmd(const std::string& dataset, bool recursive) {
  return fmt::format("zfs get -H -p -o name,property,value {} guid,createtxg {}", recursive ? "-r" : "-d 1", dataset);
}

struct Sides {
  FakeCommandRunner local;
  FakeCommandRunner remote;
  void source(const std::string& ds, bool recursive, const std::vector<Row>& rows) {
    local.on(listing_cmd(ds, recursive), {0, listing(rows), ""});
  }
  void target(const std::string& ds, bool recursive, const std::vector<Row>& rows) {
    remote.on(listing_cmd(ds, recursive), {0, listing(rows), ""});
  }
  void target_missing(const std::string& ds, bool recursive) {
    remote.on(listing_cmd(ds, recursive), {1, "", fmt::format("cannot open '{}': dataset does not exist\n", ds)});
  }
};

TEST(VerifyPair, NewestSnapshotMatches) {
  Sides s;
  s.source("tank/data", false, {{"tank/data", "", 1, 1}, {"tank/data", "a", 11, 10}, {"tank/data", "b", 12, 20}});
  s.target("backup/data", false, {{"backup/data", "", 2, 1}, {"backup/data", "a", 11, 5}, {"backup/data", "b", 12, 7}});
  const auto report = verify_pair(s.local, s.remote, {"tank/data", "backup/data", false}, 30s);
  EXPECT_TRUE(report.ok) << report.error;
  EXPECT_TRUE(report.error.empty());
  ASSERT_EQ(report.datasets.size(), 1u);
  const auto& dv = report.datasets[0];
  EXPECT_EQ(dv.source_dataset, "tank/data");
  EXPECT_EQ(dv.target_dataset, "backup/data");
  EXPECT_EQ(dv.source_snapshot, "b");
  EXPECT_EQ(dv.source_guid, 12u);
  EXPECT_EQ(dv.target_snapshot, "b");
  EXPECT_EQ(dv.target_guid, 12u);
  EXPECT_TRUE(dv.match);
  EXPECT_EQ(dv.target_snapshot_count, 2u);
  EXPECT_NE(dv.message.find("tank/data@b"), std::string::npos) << dv.message;
}

TEST(VerifyPair, GuidMismatchFails) {
  Sides s;
  s.source("tank/data", false, {{"tank/data", "a", 11, 10}, {"tank/data", "b", 12, 20}});
  s.target("backup/data", false, {{"backup/data", "a", 11, 5}, {"backup/data", "b", 99, 7}});
  const auto report = verify_pair(s.local, s.remote, {"tank/data", "backup/data", false}, 30s);
  EXPECT_FALSE(report.ok);
  ASSERT_EQ(report.datasets.size(), 1u);
  EXPECT_FALSE(report.datasets[0].match);
  EXPECT_NE(report.error.find("guid mismatch"), std::string::npos) << report.error;
  EXPECT_NE(report.error.find("tank/data@b"), std::string::npos) << report.error;
  EXPECT_NE(report.error.find("backup/data@b"), std::string::npos) << report.error;
  EXPECT_NE(report.error.find("99"), std::string::npos) << report.error;
}

TEST(VerifyPair, MissingSnapshotOnTargetFails) {
  Sides s;
  s.source("tank/data", false, {{"tank/data", "a", 11, 10}, {"tank/data", "b", 12, 20}});
  s.target("backup/data", false, {{"backup/data", "a", 11, 5}});
  const auto report = verify_pair(s.local, s.remote, {"tank/data", "backup/data", false}, 30s);
  EXPECT_FALSE(report.ok);
  ASSERT_EQ(report.datasets.size(), 1u);
  const auto& dv = report.datasets[0];
  EXPECT_FALSE(dv.match);
  EXPECT_EQ(dv.source_snapshot, "b");
  EXPECT_EQ(dv.target_snapshot, "a");
  EXPECT_EQ(dv.target_snapshot_count, 1u);
  EXPECT_NE(report.error.find("tank/data@b"), std::string::npos) << report.error;
  EXPECT_NE(report.error.find("missing on target backup/data"), std::string::npos) << report.error;
  EXPECT_NE(report.error.find("backup/data@a"), std::string::npos) << report.error;
}

TEST(VerifyPair, NoSourceSnapshotsFails) {
  Sides s;
  s.source("tank/data", false, {{"tank/data", "", 1, 1}});
  s.target("backup/data", false, {{"backup/data", "", 2, 1}});
  const auto report = verify_pair(s.local, s.remote, {"tank/data", "backup/data", false}, 30s);
  EXPECT_FALSE(report.ok);
  ASSERT_EQ(report.datasets.size(), 1u);
  EXPECT_NE(report.error.find("tank/data has no snapshots"), std::string::npos) << report.error;
}

TEST(VerifyPair, MissingTargetDatasetFails) {
  Sides s;
  s.source("tank/data", true, {{"tank/data", "a", 11, 10}, {"tank/data/child", "a", 21, 10}});
  s.target_missing("backup/data", true);
  const auto report = verify_pair(s.local, s.remote, {"tank/data", "backup/data", true}, 30s);
  EXPECT_FALSE(report.ok);
  ASSERT_EQ(report.datasets.size(), 2u);  // details for every source dataset
  EXPECT_EQ(report.datasets[1].source_snapshot, "a");
  EXPECT_NE(report.error.find("target dataset backup/data does not exist"), std::string::npos) << report.error;
}

TEST(VerifyPair, RecursiveChildrenMapToTargetChildren) {
  Sides s;
  s.source("tank/data", true,
           {{"tank/data", "", 1, 1},
            {"tank/data", "s1", 100, 10},
            {"tank/data/a", "", 2, 2},
            {"tank/data/a", "s1", 200, 10},
            {"tank/data/a/b", "s1", 300, 10},
            {"tank/data/a/b", "s2", 301, 30}});
  s.target("backup/data", true,
           {{"backup/data", "s1", 100, 3},
            {"backup/data/a", "s1", 200, 4},
            {"backup/data/a/b", "s1", 300, 5},
            {"backup/data/a/b", "s2", 301, 6},
            {"backup/data/extra", "x", 9, 9}});
  const auto report = verify_pair(s.local, s.remote, {"tank/data", "backup/data", true}, 30s);
  EXPECT_TRUE(report.ok) << report.error;
  ASSERT_EQ(report.datasets.size(), 3u);
  EXPECT_EQ(report.datasets[2].source_dataset, "tank/data/a/b");
  EXPECT_EQ(report.datasets[2].target_dataset, "backup/data/a/b");
  EXPECT_EQ(report.datasets[2].source_snapshot, "s2");
  EXPECT_TRUE(report.datasets[2].match);
}

TEST(VerifyPair, RecursiveMissingChildFailsAndNamesIt) {
  Sides s;
  s.source("tank/data", true, {{"tank/data", "s1", 100, 10}, {"tank/data/new", "s1", 200, 10}});
  s.target("backup/data", true, {{"backup/data", "s1", 100, 3}});
  const auto report = verify_pair(s.local, s.remote, {"tank/data", "backup/data", true}, 30s);
  EXPECT_FALSE(report.ok);
  ASSERT_EQ(report.datasets.size(), 2u);
  EXPECT_TRUE(report.datasets[0].match);
  EXPECT_FALSE(report.datasets[1].match);
  EXPECT_NE(report.error.find("target dataset backup/data/new does not exist"), std::string::npos) << report.error;
  EXPECT_NE(report.error.find("tank/data/new@s1"), std::string::npos) << report.error;
}

TEST(VerifyPair, ExcludedChildrenAreSkipped) {
  Sides s;
  s.source("tank/data", true, {{"tank/data", "s1", 100, 10}, {"tank/data/scratch", "s1", 200, 10}});
  s.target("backup/data", true, {{"backup/data", "s1", 100, 3}});
  const auto report =
      verify_pair(s.local, s.remote, {"tank/data", "backup/data", true}, 30s, VerifyOptions{{"scratch$"}});
  EXPECT_TRUE(report.ok) << report.error;
  EXPECT_EQ(report.datasets.size(), 1u);
  const auto bad =
      verify_pair(s.local, s.remote, {"tank/data", "backup/data", true}, 30s, VerifyOptions{{"(unclosed"}});
  EXPECT_FALSE(bad.ok);
  EXPECT_NE(bad.error.find("invalid exclude pattern"), std::string::npos) << bad.error;
}

TEST(VerifyPair, ListingErrorsFail) {
  Sides s;  // the local fake has no answer: the runner fails
  s.target("backup/data", false, {{"backup/data", "a", 1, 1}});
  const auto report = verify_pair(s.local, s.remote, {"tank/data", "backup/data", false}, 30s);
  EXPECT_FALSE(report.ok);
  ASSERT_EQ(report.datasets.size(), 1u);
  EXPECT_NE(report.error.find("tank/data"), std::string::npos) << report.error;

  Sides t;
  t.source("tank/data", false, {{"tank/data", "a", 11, 10}});
  t.remote.on(listing_cmd("backup/data", false), {0, "backup/data@a\tguid\t-\n", ""});
  const auto bad_target = verify_pair(t.local, t.remote, {"tank/data", "backup/data", false}, 30s);
  EXPECT_FALSE(bad_target.ok);
  ASSERT_EQ(bad_target.datasets.size(), 1u);
  EXPECT_EQ(bad_target.datasets[0].source_snapshot, "a");
  EXPECT_NE(bad_target.error.find("line 1"), std::string::npos) << bad_target.error;

  Sides u;
  u.local.on(listing_cmd("tank/data", false), {1, "", "cannot open 'tank/data': dataset does not exist\n"});
  const auto no_source = verify_pair(u.local, u.remote, {"tank/data", "backup/data", false}, 30s);
  EXPECT_FALSE(no_source.ok);
  EXPECT_NE(no_source.error.find("source dataset tank/data does not exist"), std::string::npos) << no_source.error;
  EXPECT_EQ(u.remote.calls.size(), 1u);  // both sides are listed at once (the box's on a second thread)
}

TEST(VerifyPair, RejectsBadNamesWithoutRunningAnything) {
  Sides s;
  const auto report = verify_pair(s.local, s.remote, {"tank/a;reboot", "backup/data", false}, 30s);
  EXPECT_FALSE(report.ok);
  EXPECT_TRUE(s.local.calls.empty());
  EXPECT_TRUE(s.remote.calls.empty());
}

TEST(VerifyJob, MergesPairs) {
  Sides s;
  s.source("tank/a", true, {{"tank/a", "s", 1, 1}});
  s.target("backup/a", true, {{"backup/a", "s", 1, 1}});
  s.source("tank/b", false, {{"tank/b", "s", 2, 1}});
  s.target("backup/b", false, {{"backup/b", "s", 3, 1}});
  Job job;
  job.name = "nightly";
  job.datasets = {{"tank/a", "backup/a", true}, {"tank/b", "backup/b", false}};
  const auto report = verify_job(s.local, s.remote, job, 30s);
  EXPECT_FALSE(report.ok);
  ASSERT_EQ(report.datasets.size(), 2u);
  EXPECT_TRUE(report.datasets[0].match);
  EXPECT_FALSE(report.datasets[1].match);
  EXPECT_NE(report.error.find("tank/b@s"), std::string::npos) << report.error;

  job.datasets.pop_back();
  EXPECT_TRUE(verify_job(s.local, s.remote, job, 30s).ok);
  job.datasets.clear();
  EXPECT_FALSE(verify_job(s.local, s.remote, job, 30s).ok);
}

}  // namespace
