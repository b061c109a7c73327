// jobs reseed: the plan's names and refusals, the box's side of the chain (shared GUIDs), and
// --replace's renames / --force's destroy, with fake zfs runners. The whole command runs in the
// lab (tests/lab/test_reseed.sh).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "hozo/reseed.hpp"
#include "hozo/util/strings.hpp"

using namespace hozo;

namespace {

/// dataset -> snapshots (name, guid); answers `zfs get ... guid,createtxg DATASET` and records renames/destroys.
using Tree = std::map<std::string, std::vector<std::pair<std::string, std::uint64_t>>>;

void serve(FakeCommandRunner& runner, Tree& tree) {
  runner.fallback([&tree](const std::vector<std::string>& argv) -> Result<CommandOutput> {
    CommandOutput out;
    if (argv.size() >= 2 && argv[1] == "get") {
      const std::string& ds = argv.back();
      const bool recursive = std::find(argv.begin(), argv.end(), "-r") != argv.end();
      bool found = false;
      std::uint64_t txg = 1;
      for (const auto& [name, snaps] : tree) {
        if (name != ds && !(recursive && name.starts_with(ds + "/"))) continue;
        found = found || name == ds;
        for (const auto& [snap, guid] : snaps) {
          out.out += fmt::format("{}@{}\tguid\t{}\n{}@{}\tcreatetxg\t{}\n", name, snap, guid, name, snap, txg++);
        }
      }
      if (!found) {
        out.exit_status = 1;
        out.err = fmt::format("cannot open '{}': dataset does not exist\n", ds);
      }
      return out;
    }
    if (argv.size() == 4 && argv[1] == "rename") {
      auto node = tree.extract(argv[2]);
      if (node.empty()) return CommandOutput{1, "", "cannot open: dataset does not exist"};
      node.key() = argv[3];
      tree.insert(std::move(node));
      return out;
    }
    if (argv.size() == 4 && argv[1] == "destroy") {
      tree.erase(argv[3]);
      return out;
    }
    return out;  // zfs release: fine
  });
}

Job job_with(std::string source, std::string target) {
  Job job;
  job.name = "nightly";
  job.target_host = "box";
  job.datasets = {DatasetPair{std::move(source), std::move(target), false}};
  return job;
}

SystemTime noon() { return std::chrono::system_clock::from_time_t(1796212800); }  // 2026-12-02 12:00:00 UTC

}  // namespace

TEST(Reseed, PlanNamesTheNewAndOldDatasetsWithOneUtcStamp) {
  auto plan = plan_reseed(job_with("tank/data", "backup/data"), {}, noon());
  ASSERT_TRUE(plan) << plan.error().message;
  ASSERT_EQ(plan->pairs.size(), 1U);
  EXPECT_EQ(plan->pairs[0].new_target, "backup/data.reseed-" + plan->stamp);
  EXPECT_EQ(plan->pairs[0].old_target, "backup/data.old-" + plan->stamp);
  EXPECT_EQ(plan->stamp.size(), 15U);
  EXPECT_FALSE(plan->pairs[0].named);
  const auto text = describe_reseed(job_with("tank/data", "backup/data"), *plan, {"syncoid ..."});
  EXPECT_NE(text.find("into the NEW dataset backup/data.reseed-"), std::string::npos) << text;
  EXPECT_NE(text.find("stays as it is"), std::string::npos) << text;
}

TEST(Reseed, PlanRefusesAnUnknownDatasetAndAPoolRoot) {
  ReseedRequest r;
  r.dataset = "tank/other";
  auto plan = plan_reseed(job_with("tank/data", "backup/data"), r, noon());
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().code, ExitCode::usage);
  EXPECT_NE(plan.error().message.find("does not back it up"), std::string::npos);
  plan = plan_reseed(job_with("tank/data", "backup"), {}, noon());
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().message.find("pool's root dataset"), std::string::npos);
  r.dataset = "tank/data";
  plan = plan_reseed(job_with("tank/data", "backup/data"), r, noon());
  ASSERT_TRUE(plan);
  EXPECT_TRUE(plan->pairs[0].named);
}

TEST(Reseed, ChainOnBoxComparesGuids) {
  Tree source{{"tank/data", {{"a", 1}, {"b", 2}}}};
  Tree target{{"backup/data", {{"a", 1}}}};
  FakeCommandRunner local;
  FakeCommandRunner remote;
  serve(local, source);
  serve(remote, target);
  const DatasetPair pair{"tank/data", "backup/data", false};
  auto chain = chain_on_box(local, remote, pair, std::chrono::seconds(5));
  ASSERT_TRUE(chain) << chain.error().message;
  EXPECT_TRUE(chain->target_exists);
  EXPECT_TRUE(chain->common) << chain->detail;
  // The source pruned: no GUID in common.
  source["tank/data"] = {{"c", 3}};
  chain = chain_on_box(local, remote, pair, std::chrono::seconds(5));
  ASSERT_TRUE(chain);
  EXPECT_FALSE(chain->common);
  EXPECT_NE(chain->detail.find("shares no snapshot"), std::string::npos) << chain->detail;
  // No target yet: nothing to re-seed (a normal run makes the full send).
  target.clear();
  chain = chain_on_box(local, remote, pair, std::chrono::seconds(5));
  ASSERT_TRUE(chain);
  EXPECT_FALSE(chain->target_exists);
}

TEST(Reseed, ReplaceMovesTheOldAsideAndDestroysOnlyWithForce) {
  const Job job = job_with("tank/data", "backup/data");
  auto plan = plan_reseed(job, {}, noon());
  ASSERT_TRUE(plan);
  const auto& p = plan->pairs[0];
  Tree box{{"backup", {}}, {"backup/data", {{"old", 1}}}, {p.new_target, {{"new", 9}}}};
  FakeCommandRunner remote;
  serve(remote, box);
  auto done = replace_target(remote, job, p, ReplaceTarget::aside, nullptr, std::chrono::seconds(5));
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_EQ(box.at("backup/data").front().first, "new");
  EXPECT_EQ(box.at(p.old_target).front().first, "old");
  EXPECT_FALSE(box.contains(p.new_target));
  for (const auto& call : remote.calls) EXPECT_FALSE(call.starts_with("zfs destroy")) << call;

  // --force: the old copy is destroyed after its hold is released.
  Tree box2{{"backup", {}}, {"backup/data", {{"old", 1}}}, {p.new_target, {{"new", 9}}}};
  FakeCommandRunner remote2;
  serve(remote2, box2);
  RunRecord previous;
  DatasetVerification d;
  d.source = "tank/data";
  d.target = "backup/data";
  d.held_snapshot = "old";
  d.release_pending = "older";  // still held too: the next run would have released it
  previous.datasets.push_back(d);
  done = replace_target(remote2, job, p, ReplaceTarget::destroy, &previous, std::chrono::seconds(5));
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_FALSE(box2.contains(p.old_target));
  EXPECT_EQ(box2.at("backup/data").front().first, "new");
  for (const char* snap : {"old", "older"}) {
    bool released = false;
    for (const auto& call : remote2.calls) {
      released = released || call == "zfs release hozo:nightly " + p.old_target + "@" + snap;
    }
    EXPECT_TRUE(released) << snap << "\n" << join(remote2.calls, "\n");
  }
}
