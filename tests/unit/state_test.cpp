// The state store: JSON round trips, bounded history, crash and concurrency safety with real
// processes, corrupt files, orphaned runs, run logs.

#include <gtest/gtest.h>

#include "test_support.hpp"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <set>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "hozo/lock.hpp"
#include "hozo/state.hpp"
#include "hozo/util/fs.hpp"

using namespace hozo;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

using TempDir = hozo::test::TempDir;

using hozo::test::spawn;
using hozo::test::wait_child;

/// A record with every field set to something other than its default.
RunRecord full_record() {
  RunRecord r;
  r.run_id = "20261124T080000Z-4242";
  r.job = "nightly";
  r.started = "2026-11-24T08:00:00Z";
  r.finished = "2026-11-24T08:12:30Z";
  r.duration_seconds = 750.25;
  r.outcome = RunOutcome::failed;
  r.exit_code = 69;
  r.failed_stage = "verify";
  r.error = "newest snapshot missing on target";
  r.stages = {{"wake", "2026-11-24T08:00:00Z", 1.5, true, "magic packet sent x3", json::object()},
              {"verify", "2026-11-24T08:12:00Z", 2.0, false, "guid mismatch", json::object()}};
  r.datasets = {{"tank/data", "backup/data", "tank/data@a", "backup/data@b", false, 17, json::object(), 0, "", ""},
                {"tank/home", "backup/home", "tank/home@x", "backup/home@x", true, 3, json::object(), 1234567890123456789ULL, "x", "w"}};
  r.attempts = 3;
  r.woke_host = true;
  r.was_up_before = true;
  r.shutdown = {ShutdownOutcome::skipped_in_use, "another job uses the box"};
  r.notifications = {{"ntfy", true, "", json::object()}, {"smtp", false, "connection refused", json::object()}};
  r.pid = 4242;
  r.pid_start_ticks = 123456789;
  r.hostname = "nas";
  r.log_file = "/var/lib/hozo/logs/nightly/20261124T080000Z-4242.log";
  r.extra = json::object();
  return r;
}

json read_json(const fs::path& path) {
  auto text = read_file(path);
  if (!text) throw std::runtime_error(text.error().message);
  return json::parse(*text);
}

std::vector<fs::path> files_starting_with(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().starts_with(prefix)) out.push_back(e.path());
  }
  return out;
}

/// The file of one run (runs/<job>/<id>.json) or of a job's restores (id "restores").
json run_file(const fs::path& dir, const std::string& job, const std::string& id) {
  return read_json(dir / "runs" / job / (id + ".json"));
}

StateStore open_store(const fs::path& path, std::size_t limit = 1000, Millis lock_timeout = Millis{10000}) {
  auto store = StateStore::open(path, limit, StateOptions{lock_timeout, nullptr});
  if (!store) throw std::runtime_error(store.error().message);
  return std::move(store).value();
}

}  // namespace

// ---------------------------------------------------------------------------------------------

TEST(StateJson, EnumsRoundTrip) {
  for (auto o : {RunOutcome::running, RunOutcome::success, RunOutcome::failed, RunOutcome::interrupted}) {
    EXPECT_EQ(parse_run_outcome(to_string(o)), o);
  }
  for (auto o : {ShutdownOutcome::not_requested, ShutdownOutcome::skipped_not_woken, ShutdownOutcome::skipped_in_use,
                 ShutdownOutcome::done, ShutdownOutcome::failed}) {
    EXPECT_EQ(parse_shutdown_outcome(to_string(o)), o);
  }
  EXPECT_EQ(parse_run_outcome("nope"), std::nullopt);
  EXPECT_EQ(to_string(ShutdownOutcome::skipped_not_woken), "skipped_not_woken");
}

TEST(StateJson, EveryFieldRoundTrips) {
  const RunRecord r = full_record();
  const json j = r;
  EXPECT_EQ(j.at("outcome"), "failed");
  EXPECT_EQ(j.at("shutdown").at("outcome"), "skipped_in_use");
  EXPECT_EQ(j.at("datasets").at(0).at("remote_snapshot_count"), 17);
  EXPECT_EQ(j.at("stages").at(1).at("ok"), false);
  const auto back = j.get<RunRecord>();
  EXPECT_EQ(back, r);
  // And through text.
  EXPECT_EQ(json::parse(j.dump()).get<RunRecord>(), r);
}

TEST(StateJson, MissingFieldsDefaultUnknownFieldsKept) {
  const auto j = json::parse(R"({"run_id": "x", "from_the_future": {"a": 1}, "outcome": "teleported",
                                 "stages": [{"name": "wake", "new_stage_key": true}],
                                 "shutdown": {"outcome": "hibernated"}, "pid": null})");
  const auto r = j.get<RunRecord>();
  EXPECT_EQ(r.run_id, "x");
  EXPECT_EQ(r.job, "");
  EXPECT_EQ(r.outcome, RunOutcome::failed);  // unknown outcome: ended somehow, never "running"
  EXPECT_EQ(r.shutdown.outcome, ShutdownOutcome::not_requested);
  EXPECT_EQ(r.pid, 0);
  ASSERT_EQ(r.stages.size(), 1U);
  EXPECT_EQ(r.stages[0].name, "wake");
  EXPECT_FALSE(r.stages[0].ok);
  const json out = r;
  EXPECT_EQ(out.at("from_the_future").at("a"), 1);
  EXPECT_EQ(out.at("stages").at(0).at("new_stage_key"), true);
}

TEST(StateJson, SummaryStoresTheLastSuccessOnceAndLeavesDefaultsOut) {
  RunRecord ok = full_record();
  ok.outcome = RunOutcome::success;
  ok.error.clear();
  ok.failed_stage.clear();
  ok.stages.clear();
  ok.notifications.clear();
  JobSummary js;
  js.last = ok;
  js.last_success = ok;
  json j = js;
  EXPECT_FALSE(j.contains("last_success"));
  EXPECT_EQ(j.at("last_success_is_last"), true);
  EXPECT_FALSE(j.at("last").contains("error")) << "a default value is stored";
  EXPECT_FALSE(j.at("last").contains("stages"));
  EXPECT_EQ(json::parse(j.dump()).get<JobSummary>(), js);

  // A failed last run after the success: both are stored.
  RunRecord failed = full_record();
  js.last = failed;
  j = js;
  EXPECT_TRUE(j.contains("last_success"));
  EXPECT_FALSE(j.contains("last_success_is_last"));
  EXPECT_EQ(json::parse(j.dump()).get<JobSummary>(), js);

  // A default record round-trips too (every key left out).
  JobSummary empty_run;
  empty_run.last = RunRecord{};
  EXPECT_EQ(json(empty_run).at("last"), json::object());
  EXPECT_EQ(json(empty_run).get<JobSummary>(), empty_run);
}

TEST(StateJson, WrongTypesThrow) {
  EXPECT_THROW(json::parse(R"({"pid": "abc"})").get<RunRecord>(), json::type_error);
  EXPECT_THROW(json::parse(R"([1, 2])").get<RunRecord>(), json::type_error);
  EXPECT_THROW(json::parse(R"({"runs": {}})").get<JobState>(), json::type_error);
}

TEST(StateRunId, SortsByTimeThenPid) {
  EXPECT_TRUE(run_id_less("20261124T080000Z-999", "20261124T080000Z-1000"));
  EXPECT_FALSE(run_id_less("20261124T080000Z-1000", "20261124T080000Z-999"));
  EXPECT_TRUE(run_id_less("20261124T075959Z-9999", "20261124T080000Z-1"));
  EXPECT_TRUE(run_id_less("20261124T080000Z-5", "20261124T080000Z-5-2"));
  EXPECT_TRUE(run_id_less("20261124T080000Z-5-2", "20261124T080000Z-5-10"));
  const auto t = parse_iso8601_utc("2026-11-24T08:00:00Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(make_run_id(*t, 4242), "20261124T080000Z-4242");
}

TEST(StatePath, DefaultPathFollowsEnvironment) {
  const char* old = std::getenv("STATE_DIRECTORY");
  const std::string saved = old != nullptr ? old : "";
  ::setenv("STATE_DIRECTORY", "/var/lib/hozo-a:/var/lib/hozo-b", 1);
  EXPECT_EQ(default_state_path(), fs::path("/var/lib/hozo-a/state.json"));
  ::unsetenv("STATE_DIRECTORY");
  if (::geteuid() == 0) {
    EXPECT_EQ(default_state_path(), fs::path("/var/lib/hozo/state.json"));
  } else {
    ::setenv("XDG_STATE_HOME", "/tmp/xdg-state", 1);
    EXPECT_EQ(default_state_path(), fs::path("/tmp/xdg-state/hozo/state.json"));
    ::unsetenv("XDG_STATE_HOME");
  }
  if (old != nullptr) ::setenv("STATE_DIRECTORY", saved.c_str(), 1);
}

// ---------------------------------------------------------------------------------------------

TEST(StateStore, BeginUpdateFinishRoundTripsEveryField) {
  TempDir tmp;
  const auto path = tmp.path() / "new" / "dir" / "state.json";
  auto store = open_store(path);
  EXPECT_EQ(store.path(), path);
  EXPECT_EQ(store.logs_dir(), tmp.path() / "new" / "dir" / "logs");

  auto run = store.begin_run("nightly");
  ASSERT_TRUE(run) << run.error().message;
  EXPECT_EQ(run->job, "nightly");
  EXPECT_EQ(run->outcome, RunOutcome::running);
  EXPECT_EQ(run->pid, ::getpid());
  EXPECT_NE(run->pid_start_ticks, 0U);
  EXPECT_FALSE(run->hostname.empty());
  EXPECT_TRUE(parse_iso8601_utc(run->started).has_value());
  EXPECT_TRUE(run->run_id.ends_with("Z-" + std::to_string(::getpid()))) << run->run_id;
  EXPECT_EQ(fs::path(run->log_file), store.log_path_for(*run));
  EXPECT_TRUE(fs::is_directory(fs::path(run->log_file).parent_path()));

  // Modes: file 0600, created directory 0700.
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600U);
  ASSERT_EQ(::stat(path.parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700U);

  auto running = store.job("nightly");
  ASSERT_TRUE(running);
  ASSERT_EQ(running->runs.size(), 1U);
  EXPECT_EQ(running->runs[0], *run);
  EXPECT_EQ(running->last_completed(), nullptr);

  RunRecord full = full_record();
  full.run_id = run->run_id;
  full.job = run->job;
  full.started = run->started;
  full.pid = run->pid;
  full.pid_start_ticks = run->pid_start_ticks;
  full.hostname = run->hostname;
  full.log_file = run->log_file;
  full.outcome = RunOutcome::running;
  ASSERT_TRUE(store.update_run(full));
  full.outcome = RunOutcome::failed;
  full.finished.clear();
  full.duration_seconds = 0;
  auto done = store.finish_run(full);
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_FALSE(done->finished.empty());

  auto state = store.job("nightly");
  ASSERT_TRUE(state);
  ASSERT_EQ(state->runs.size(), 1U);
  EXPECT_EQ(state->runs[0], *done);
  ASSERT_NE(state->last(), nullptr);
  EXPECT_EQ(*state->last(), *done);
  EXPECT_EQ(state->last_completed(), state->last());

  // The convenience copy for people and scripts.
  const auto j = read_json(path);
  EXPECT_EQ(j.at("format"), "hozo-state");
  EXPECT_EQ(j.at("jobs").at("nightly").at("last").at("run_id"), run->run_id);
  EXPECT_EQ(j.at("jobs").at("nightly").at("last").at("failed_stage"), "verify");

  auto missing = store.job("nope");
  ASSERT_TRUE(missing);
  EXPECT_TRUE(missing->runs.empty());
  EXPECT_EQ(missing->last(), nullptr);
}

TEST(StateStore, FinishRejectsRunningAndUpdateInsertsUnknownRuns) {
  TempDir tmp;
  auto store = open_store(tmp.path() / "state.json");
  auto run = store.begin_run("a");
  ASSERT_TRUE(run);
  auto rejected = store.finish_run(*run);
  ASSERT_FALSE(rejected);
  EXPECT_EQ(rejected.error().code, ExitCode::software);

  RunRecord other = *run;
  other.run_id = "20200101T000000Z-1";
  other.outcome = RunOutcome::success;
  ASSERT_TRUE(store.update_run(other));
  auto state = store.job("a");
  ASSERT_TRUE(state);
  ASSERT_EQ(state->runs.size(), 2U);
  EXPECT_EQ(state->runs[0].run_id, "20200101T000000Z-1");  // sorted oldest first
  EXPECT_EQ(state->runs[1].run_id, run->run_id);

  RunRecord nameless;
  EXPECT_FALSE(store.update_run(nameless));
}

TEST(StateStore, RunIdsAreUniqueWithinOneSecond) {
  TempDir tmp;
  auto store = open_store(tmp.path() / "state.json");
  std::set<std::string> ids;
  std::vector<std::string> order;
  for (int i = 0; i < 6; ++i) {
    auto run = store.begin_run(i % 2 == 0 ? "a" : "b");
    ASSERT_TRUE(run);
    EXPECT_TRUE(ids.insert(run->run_id).second) << run->run_id;
    order.push_back(run->run_id);
  }
  for (std::size_t i = 1; i < order.size(); ++i) EXPECT_TRUE(run_id_less(order[i - 1], order[i]));
}

TEST(StateStore, HistoryIsBounded) {
  TempDir tmp;
  auto store = open_store(tmp.path() / "state.json", 5);
  EXPECT_EQ(store.history_limit(), 5U);
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) {
    auto run = store.begin_run("job");
    ASSERT_TRUE(run);
    run->outcome = RunOutcome::success;
    ASSERT_TRUE(store.finish_run(*run));
    ids.push_back(run->run_id);
  }
  ASSERT_TRUE(store.begin_run("other"));
  auto all = store.all();
  ASSERT_TRUE(all);
  const auto& runs = all->at("job").runs;
  ASSERT_EQ(runs.size(), 5U);
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(runs[i].run_id, ids[7 + i]);
  EXPECT_EQ(all->at("job").last()->run_id, ids.back());
  EXPECT_EQ(all->at("other").runs.size(), 1U);
}

TEST(StateStore, RunningEntriesOutliveFinishedOnesWhenTrimming) {
  TempDir tmp;
  auto store = open_store(tmp.path() / "state.json", 2);
  auto long_run = store.begin_run("job");  // stays running (this process is alive)
  ASSERT_TRUE(long_run);
  for (int i = 0; i < 4; ++i) {
    auto run = store.begin_run("job");
    ASSERT_TRUE(run);
    run->outcome = RunOutcome::success;
    ASSERT_TRUE(store.finish_run(*run));
  }
  auto state = store.job("job");
  ASSERT_TRUE(state);
  ASSERT_EQ(state->runs.size(), 2U);
  EXPECT_EQ(state->runs[0].run_id, long_run->run_id);
  EXPECT_EQ(state->runs[0].outcome, RunOutcome::running);
}

TEST(StateStore, UnknownKeysSurviveRewrites) {
  TempDir tmp;
  const auto path = tmp.path() / "state.json";
  const json seeded = json::parse(R"({
    "format": "hozo-state", "version": 1, "written_by": "hozo 9.0",
    "jobs": {
      "old": {"tag": "keep-me", "runs": [{"run_id": "20200101T000000Z-1", "job": "old", "outcome": "success",
                                          "new_metric": 42}]}
    }})");
  ASSERT_TRUE(write_file_atomic(path, seeded.dump()));
  auto store = open_store(path);
  ASSERT_TRUE(store.begin_run("new"));
  RunRecord old_run;
  old_run.run_id = "20200101T000000Z-1";
  old_run.job = "old";
  old_run.outcome = RunOutcome::failed;
  ASSERT_TRUE(store.update_run(old_run));

  const auto j = read_json(path);
  EXPECT_EQ(j.at("version"), 2);
  EXPECT_EQ(j.at("written_by"), "hozo 9.0");
  EXPECT_EQ(j.at("jobs").at("old").at("tag"), "keep-me");
  const auto old_file = run_file(tmp.path(), "old", "20200101T000000Z-1");
  EXPECT_EQ(old_file.at("new_metric"), 42);
  EXPECT_EQ(old_file.at("outcome"), "failed");
  EXPECT_EQ(j.at("jobs").at("old").at("last").at("outcome"), "failed");
  EXPECT_TRUE(j.at("jobs").contains("new"));
}

TEST(StateStore, InvalidUtf8InMessagesIsStored) {
  TempDir tmp;
  auto store = open_store(tmp.path() / "state.json");
  auto run = store.begin_run("job");
  ASSERT_TRUE(run);
  run->outcome = RunOutcome::failed;
  run->error = std::string("syncoid said \xff\xfe garbage");
  ASSERT_TRUE(store.finish_run(*run));
  auto state = store.job("job");
  ASSERT_TRUE(state) << state.error().message;
  EXPECT_TRUE(state->runs.at(0).error.starts_with("syncoid said "));
}

// ---------------------------------------------------------------------------------------------
// Concurrency and crashes, with real processes.

TEST(StateStore, ConcurrentWritersFromManyProcessesLoseNothing) {
  TempDir tmp;
  const auto path = tmp.path() / "state.json";
  constexpr int kProcs = 8;
  constexpr int kRunsPerProc = 5;  // each run: begin + 2 updates + finish = 4 writes -> 20 per process
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    kids.push_back(spawn([&, p]() -> int {
      auto store = StateStore::open(path, 1000, StateOptions{Millis{60000}, nullptr});
      if (!store) return 2;
      for (int i = 0; i < kRunsPerProc; ++i) {
        auto run = store->begin_run(fmt::format("job{}", p % 3));
        if (!run) return 3;
        for (int s = 0; s < 2; ++s) {
          run->stages.push_back({fmt::format("stage{}", s), run->started, 0.5, true, fmt::format("p{} i{}", p, i), {}});
          if (!store->update_run(*run)) return 4;
        }
        run->outcome = RunOutcome::success;
        run->error = fmt::format("p{} i{}", p, i);
        if (!store->finish_run(*run)) return 5;
      }
      return 0;
    }));
  }
  for (const pid_t kid : kids) EXPECT_EQ(wait_child(kid), 0);

  auto store = open_store(path);
  auto all = store.all();
  ASSERT_TRUE(all) << all.error().message;
  std::set<std::string> seen;
  std::size_t total = 0;
  for (const auto& [name, state] : *all) {
    for (const auto& run : state.runs) {
      ++total;
      EXPECT_EQ(run.outcome, RunOutcome::success) << run.run_id;
      EXPECT_EQ(run.stages.size(), 2U) << run.run_id;
      EXPECT_TRUE(seen.insert(run.error).second) << "duplicate " << run.error;
      EXPECT_EQ(run.job, name);
    }
  }
  EXPECT_EQ(total, static_cast<std::size_t>(kProcs * kRunsPerProc));
  for (int p = 0; p < kProcs; ++p) {
    for (int i = 0; i < kRunsPerProc; ++i) EXPECT_TRUE(seen.contains(fmt::format("p{} i{}", p, i)));
  }
  EXPECT_TRUE(files_starting_with(tmp.path(), ".state.json.tmp-").empty());
}

TEST(StateStore, WriterKilledBeforeRenameLeavesOldFileIntact) {
  TempDir tmp;
  const auto path = tmp.path() / "state.json";
  auto store = open_store(path, 1000, Millis{5000});
  auto run = store.begin_run("job");
  ASSERT_TRUE(run);
  run->outcome = RunOutcome::success;
  ASSERT_TRUE(store.finish_run(*run));
  const auto before = read_file(path);
  ASSERT_TRUE(before);

  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t kid = spawn([&]() -> int {
    ::close(ready[0]);
    // Exactly what a writer does up to the rename: hold the lock, write (part of) a temp file.
    auto lock = FileLock::acquire(fs::path(path.string() + ".lock"), LockMode::exclusive, Millis{5000});
    if (!lock) return 2;
    const std::string half = before->substr(0, before->size() / 2);
    const auto tmp_file = tmp.path() / ".state.json.tmp-KILLED";
    FILE* f = std::fopen(tmp_file.c_str(), "w");
    if (f == nullptr) return 3;
    std::fwrite(half.data(), 1, half.size(), f);
    std::fflush(f);
    if (::write(ready[1], "r", 1) != 1) return 4;
    for (;;) ::pause();
  });
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ::kill(kid, SIGKILL);
  EXPECT_EQ(wait_child(kid), 128 + SIGKILL);

  // The old file is untouched and readable; the stray temp file is ignored by readers.
  EXPECT_EQ(*read_file(path), *before);
  EXPECT_TRUE(fs::exists(tmp.path() / ".state.json.tmp-KILLED"));
  auto state = store.job("job");
  ASSERT_TRUE(state) << state.error().message;
  ASSERT_EQ(state->runs.size(), 1U);
  EXPECT_EQ(state->runs[0].run_id, run->run_id);
  EXPECT_FALSE(store.last_quarantined().has_value());

  // The dead writer's lock went with it, and the next write cleans up the stray temp file.
  ASSERT_TRUE(store.begin_run("job"));
  EXPECT_FALSE(fs::exists(tmp.path() / ".state.json.tmp-KILLED"));
  auto after = store.job("job");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->runs.size(), 2U);
}

TEST(StateStore, RandomSigkillsDuringWritesNeverCorrupt) {
  TempDir tmp;
  const auto path = tmp.path() / "state.json";
  std::size_t previous = 0;
  for (int round = 0; round < 12; ++round) {
    const pid_t kid = spawn([&]() -> int {
      auto store = StateStore::open(path, 100000, StateOptions{Millis{5000}, nullptr});
      if (!store) return 2;
      for (;;) {
        auto run = store->begin_run("job");
        if (!run) return 3;
        run->outcome = RunOutcome::success;
        if (!store->finish_run(*run)) return 4;
      }
    });
    std::this_thread::sleep_for(Millis{15 + 7 * round});
    ::kill(kid, SIGKILL);
    EXPECT_EQ(wait_child(kid), 128 + SIGKILL);
    auto store = open_store(path);
    auto state = store.job("job");
    ASSERT_TRUE(state) << state.error().message;
    EXPECT_FALSE(store.last_quarantined().has_value());
    EXPECT_GE(state->runs.size(), previous);
    previous = state->runs.size();
  }
  EXPECT_GT(previous, 0U);
  EXPECT_TRUE(files_starting_with(tmp.path(), "state.json.corrupt-").empty());
}

// ---------------------------------------------------------------------------------------------

TEST(StateStore, CorruptFileIsMovedAsideByReaders) {
  TempDir tmp;
  const auto path = tmp.path() / "state.json";
  const std::string garbage = "{\"jobs\": {\"a\": [truncated";
  ASSERT_TRUE(write_file_atomic(path, garbage));
  auto store = open_store(path);
  auto all = store.all();
  ASSERT_TRUE(all) << all.error().message;
  EXPECT_TRUE(all->empty());
  ASSERT_TRUE(store.last_quarantined().has_value());
  const auto aside = *store.last_quarantined();
  EXPECT_TRUE(aside.filename().string().starts_with("state.json.corrupt-")) << aside;
  EXPECT_EQ(*read_file(aside), garbage);
  EXPECT_FALSE(fs::exists(path));

  // A fresh state starts; the corrupt copy stays.
  ASSERT_TRUE(store.begin_run("a"));
  EXPECT_FALSE(store.last_quarantined().has_value());
  auto state = store.job("a");
  ASSERT_TRUE(state);
  EXPECT_EQ(state->runs.size(), 1U);
  EXPECT_EQ(*read_file(aside), garbage);
}

TEST(StateStore, WrongShapesAreMovedAsideByWriters) {
  const std::vector<std::string> bad = {
      "",
      "[1, 2, 3]",
      R"({"jobs": []})",
      R"({"jobs": {"a": 7}})",
      R"({"jobs": {"a": {"runs": {"x": 1}}}})",
      R"({"jobs": {"a": {"runs": [{"pid": "abc"}]}}})",
      R"({"jobs": {"a": {"runs": [{"stages": [1]}]}}})",
  };
  for (const auto& text : bad) {
    TempDir tmp;
    const auto path = tmp.path() / "state.json";
    ASSERT_TRUE(write_file_atomic(path, text));
    auto store = open_store(path);
    auto run = store.begin_run("b");
    ASSERT_TRUE(run) << text << ": " << run.error().message;
    ASSERT_TRUE(store.last_quarantined().has_value()) << text;
    EXPECT_EQ(*read_file(*store.last_quarantined()), text);
    auto all = store.all();
    ASSERT_TRUE(all);
    EXPECT_EQ(all->size(), 1U) << text;
    EXPECT_EQ(files_starting_with(tmp.path(), "state.json.corrupt-").size(), 1U);
  }
}

TEST(StateStore, SecondCorruptionGetsItsOwnFile) {
  TempDir tmp;
  const auto path = tmp.path() / "state.json";
  auto store = open_store(path);
  ASSERT_TRUE(write_file_atomic(path, "junk 1"));
  ASSERT_TRUE(store.all());
  ASSERT_TRUE(write_file_atomic(path, "junk 2"));
  ASSERT_TRUE(store.all());
  EXPECT_EQ(files_starting_with(tmp.path(), "state.json.corrupt-").size(), 2U);
}

// ---------------------------------------------------------------------------------------------

TEST(StateStore, RunningEntryOfDeadProcessIsReportedInterrupted) {
  TempDir tmp;
  const auto path = tmp.path() / "state.json";
  auto store = open_store(path);

  // A run whose process has exited and been reaped.
  const pid_t dead = spawn([]() -> int { return 0; });
  ASSERT_EQ(wait_child(dead), 0);
  // A run whose process is a zombie (exited, not reaped yet).
  const pid_t zombie = spawn([]() -> int { return 0; });
  std::this_thread::sleep_for(Millis{100});

  auto alive = store.begin_run("job");
  ASSERT_TRUE(alive);
  auto make = [&](std::int64_t pid, std::uint64_t ticks, std::string host, std::string id) {
    RunRecord r = *alive;
    r.run_id = std::move(id);
    r.pid = pid;
    r.pid_start_ticks = ticks;
    r.hostname = std::move(host);
    return r;
  };
  // Written as another process would have left them (update_run would already resolve them).
  JobState seeded;
  seeded.runs = {make(dead, 0, alive->hostname, "20200101T000000Z-1"),
                 make(zombie, 0, alive->hostname, "20200101T000000Z-2"),
                 make(::getpid(), alive->pid_start_ticks + 1, alive->hostname, "20200101T000000Z-3"),
                 make(dead, 0, "some-other-host", "20200101T000000Z-4"), *alive};
  const json doc = {{"format", "hozo-state"}, {"version", 1}, {"jobs", {{"job", seeded}}}};
  ASSERT_TRUE(write_file_atomic(path, doc.dump()));

  auto state = store.job("job");
  ASSERT_TRUE(state);
  ASSERT_EQ(state->runs.size(), 5U);
  EXPECT_EQ(state->runs[0].outcome, RunOutcome::interrupted);  // dead
  EXPECT_EQ(state->runs[0].exit_code, 130);
  EXPECT_NE(state->runs[0].error.find(std::to_string(dead)), std::string::npos) << state->runs[0].error;
  EXPECT_EQ(state->runs[1].outcome, RunOutcome::interrupted);  // zombie
  EXPECT_EQ(state->runs[2].outcome, RunOutcome::interrupted);  // pid reused by another process
  EXPECT_EQ(state->runs[3].outcome, RunOutcome::running);      // another host: cannot judge
  EXPECT_EQ(state->runs[4].outcome, RunOutcome::running);      // this very process
  EXPECT_EQ(state->runs[4].run_id, alive->run_id);

  // Reading does not persist; reap_orphaned does.
  EXPECT_EQ(read_json(path).at("jobs").at("job").at("runs").at(0).at("outcome"), "running");
  auto reaped = store.reap_orphaned();
  ASSERT_TRUE(reaped);
  EXPECT_EQ(reaped->size(), 3U);
  EXPECT_EQ(run_file(tmp.path(), "job", "20200101T000000Z-1").at("outcome"), "interrupted");
  EXPECT_EQ(run_file(tmp.path(), "job", "20200101T000000Z-4").at("outcome"), "running");
  EXPECT_EQ(run_file(tmp.path(), "job", alive->run_id).at("outcome"), "running");
  const auto j = read_json(path);
  EXPECT_EQ(j.at("jobs").at("job").at("running").size(), 2U);  // another host's and this process's
  ASSERT_EQ(wait_child(zombie), 0);
}

TEST(StateStore, RunKilledMidwayIsInterrupted) {
  TempDir tmp;
  const auto path = tmp.path() / "state.json";
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t kid = spawn([&]() -> int {
    ::close(ready[0]);
    auto store = StateStore::open(path);
    if (!store) return 2;
    auto run = store->begin_run("job");
    if (!run) return 3;
    if (::write(ready[1], "r", 1) != 1) return 4;
    for (;;) ::pause();
  });
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  auto store = open_store(path);
  auto before = store.job("job");
  ASSERT_TRUE(before);
  ASSERT_EQ(before->runs.size(), 1U);
  EXPECT_EQ(before->runs[0].outcome, RunOutcome::running);
  ::kill(kid, SIGKILL);
  EXPECT_EQ(wait_child(kid), 128 + SIGKILL);
  auto after = store.job("job");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->runs[0].outcome, RunOutcome::interrupted);
  // The next run of the job persists the verdict.
  ASSERT_TRUE(store.begin_run("job"));
  bool found = false;
  for (const auto& e : fs::directory_iterator(tmp.path() / "runs" / "job")) {
    if (e.path().extension() != ".json") continue;
    const json r = read_json(e.path());
    if (r.at("pid").get<long long>() != kid) continue;
    found = true;
    EXPECT_EQ(r.at("outcome"), "interrupted");
  }
  EXPECT_TRUE(found);
}

// ---------------------------------------------------------------------------------------------

TEST(StateStore, LogPathsAndPruning) {
  TempDir tmp;
  auto store = open_store(tmp.path() / "state.json");
  RunRecord r;
  r.job = "../evil/job";
  r.run_id = "20261124T080000Z-1";
  const auto p = store.log_path_for(r);
  EXPECT_EQ(p.parent_path().parent_path(), store.logs_dir());
  EXPECT_EQ(p.filename(), "20261124T080000Z-1.log");
  EXPECT_EQ(p.parent_path().filename().string().find('/'), std::string::npos);
  EXPECT_FALSE(p.parent_path().filename().string().starts_with("."));

  auto missing = store.prune_logs("nothing-yet", 3);
  ASSERT_TRUE(missing);
  EXPECT_EQ(*missing, 0U);

  const auto dir = store.logs_dir() / "job";
  ASSERT_TRUE(make_dirs(dir));
  const std::vector<std::string> ids = {"20261120T080000Z-999", "20261121T080000Z-12", "20261121T080000Z-1000",
                                        "20261122T080000Z-5",   "20261122T080000Z-5-2", "20261123T080000Z-7",
                                        "20261124T080000Z-3"};
  for (const auto& id : ids) ASSERT_TRUE(write_file_atomic(dir / (id + ".log"), id));
  ASSERT_TRUE(write_file_atomic(dir / "notes.txt", "not a log"));
  auto removed = store.prune_logs("job", 3);
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(*removed, 4U);
  std::set<std::string> left;
  for (const auto& e : fs::directory_iterator(dir)) left.insert(e.path().filename().string());
  EXPECT_EQ(left, (std::set<std::string>{"20261122T080000Z-5-2.log", "20261123T080000Z-7.log",
                                         "20261124T080000Z-3.log", "notes.txt"}));
  auto again = store.prune_logs("job", 10);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0U);
}

TEST(StateStore, LockTimeoutIsTempfail) {
  TempDir tmp;
  const auto path = tmp.path() / "state.json";
  auto store = open_store(path, 50, Millis{150});
  ASSERT_TRUE(store.begin_run("job"));
  auto held = FileLock::acquire(fs::path(path.string() + ".lock"), LockMode::exclusive, Millis{0});
  ASSERT_TRUE(held);
  const auto start = std::chrono::steady_clock::now();
  auto write = store.begin_run("job");
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(write);
  EXPECT_EQ(write.error().code, ExitCode::tempfail);
  EXPECT_NE(write.error().message.find("locked"), std::string::npos) << write.error().message;
  EXPECT_GE(waited, Millis{140});
  auto read = store.all();
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code, ExitCode::tempfail);

  // Readers share: a shared holder blocks writers but not readers.
  held->release();
  auto reader = FileLock::acquire(fs::path(path.string() + ".lock"), LockMode::shared, Millis{0});
  ASSERT_TRUE(reader);
  EXPECT_TRUE(store.all());
  EXPECT_FALSE(store.begin_run("job"));
  reader->release();
  EXPECT_TRUE(store.begin_run("job"));
}

TEST(StateStore, TwoHundredJobsReadInOnePass) {
  TempDir tmp;
  const auto path = tmp.path() / "state.json";
  json jobs = json::object();
  for (int j = 0; j < 200; ++j) {
    JobState state;
    for (int i = 0; i < 50; ++i) {
      RunRecord r = full_record();
      r.job = fmt::format("job{:03}", j);
      r.run_id = fmt::format("202611{:02}T080000Z-{}", 1 + i % 28, 1000 + i);
      r.outcome = RunOutcome::success;
      state.runs.push_back(std::move(r));
    }
    jobs[fmt::format("job{:03}", j)] = state;
  }
  const json root = {{"format", "hozo-state"}, {"version", 1}, {"jobs", jobs}};
  ASSERT_TRUE(write_file_atomic(path, root.dump()));

  auto store = open_store(path, 50);
  const auto start = std::chrono::steady_clock::now();
  auto all = store.all();
  const auto took = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - start);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 200U);
  EXPECT_EQ(all->at("job199").runs.size(), 50U);
  std::cout << "all() over 200 jobs x 50 runs (" << fs::file_size(path) / 1024 << " KiB): " << took.count()
            << " ms\n";
  EXPECT_LT(took, Millis{20000});  // generous: this is a smoke check, the number above is the measure

  const auto w_start = std::chrono::steady_clock::now();
  ASSERT_TRUE(store.begin_run("job000"));
  const auto w_took = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - w_start);
  std::cout << "begin_run on that file: " << w_took.count() << " ms\n";
}

// ------------------------------------------------------------------ restores (hozo restore)

TEST(StateStore, RestoresAreRecordedApartFromRuns) {
  TempDir tmp;
  const auto path = tmp.path() / "state.json";
  auto store = open_store(path);
  auto run = store.begin_run("nightly");
  ASSERT_TRUE(run);
  run->outcome = RunOutcome::success;
  ASSERT_TRUE(store.finish_run(*run));

  auto begun = store.begin_restore("nightly");
  ASSERT_TRUE(begun) << begun.error().message;
  EXPECT_EQ(begun->outcome, RunOutcome::running);
  EXPECT_FALSE(begun->restore_id.empty());
  EXPECT_EQ(begun->pid, static_cast<std::int64_t>(::getpid()));
  RestoreRecord r = *begun;
  r.source = "tank/data";
  r.backup = "box:backup/data";
  r.target = "tank/data-restore-20261201-000000";
  r.snapshot = "autosnap_1";
  r.restored_snapshot = "tank/data-restore-20261201-000000@autosnap_1";
  r.woke_host = true;
  r.shutdown = {ShutdownOutcome::done, "sent"};
  r.outcome = RunOutcome::success;
  auto stored = store.update_restore(r);
  ASSERT_TRUE(stored) << stored.error().message;
  EXPECT_FALSE(stored->finished.empty());

  auto state = store.job("nightly");
  ASSERT_TRUE(state);
  ASSERT_EQ(state->restores.size(), 1U);
  EXPECT_EQ(state->restores[0], *stored);
  // The backup runs (status, history, "last") are not affected by a restore.
  ASSERT_EQ(state->runs.size(), 1U);
  EXPECT_EQ(read_json(path).at("jobs").at("nightly").at("last").at("run_id"), run->run_id);
  EXPECT_EQ(read_json(path).at("jobs").at("nightly").at("last_restore").at("target"), r.target);
  EXPECT_EQ(run_file(tmp.path(), "nightly", "restores").at("restores").at(0).at("target"), r.target);

  // A second restore in the same second still gets its own id.
  auto second = store.begin_restore("nightly");
  ASSERT_TRUE(second);
  EXPECT_NE(second->restore_id, r.restore_id);
  EXPECT_EQ(store.job("nightly")->restores.size(), 2U);
}

TEST(StateStore, OldFilesWithoutRestoresLoadAndUnknownRestoreKeysSurvive) {
  TempDir tmp;
  const auto path = tmp.path() / "state.json";
  const json seeded = json::parse(R"({
    "format": "hozo-state", "version": 1,
    "jobs": {
      "old": {"runs": [{"run_id": "20200101T000000Z-1", "job": "old", "outcome": "success"}]},
      "restored": {"runs": [], "restores": [{"restore_id": "20200101T000000Z-2", "job": "restored",
                                             "outcome": "success", "future_key": [1, 2]}]}
    }})");
  ASSERT_TRUE(write_file_atomic(path, seeded.dump()));
  auto store = open_store(path);
  auto old = store.job("old");
  ASSERT_TRUE(old);
  EXPECT_TRUE(old->restores.empty());
  ASSERT_TRUE(store.begin_restore("restored"));
  const auto j = read_json(path);
  EXPECT_FALSE(j.at("jobs").at("old").contains("last_restore"));  // a never-restored job has none
  const auto restores = run_file(tmp.path(), "restored", "restores").at("restores");
  ASSERT_EQ(restores.size(), 2U);
  EXPECT_EQ(restores.at(0).at("future_key"), json::parse("[1, 2]"));
}

TEST(StateStore, RestoreOfADeadProcessIsInterruptedAndRestoresAreBounded) {
  TempDir tmp;
  auto store = StateStore::open(tmp.path() / "state.json", 3).value();
  RestoreRecord dead;
  dead.restore_id = "20200101T000000Z-1";
  dead.job = "j";
  dead.outcome = RunOutcome::running;
  dead.pid = 999999999;  // no such process
  ASSERT_TRUE(store.update_restore(dead));
  ASSERT_TRUE(store.begin_restore("j"));
  auto state = store.job("j").value();
  ASSERT_EQ(state.restores.size(), 2U);
  EXPECT_EQ(state.restores[0].outcome, RunOutcome::interrupted);
  EXPECT_EQ(state.restores[0].exit_code, 130);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store.begin_restore("j"));
  EXPECT_EQ(store.job("j")->restores.size(), 3U);
  EXPECT_TRUE(store.update_restore(RestoreRecord{}).error().code == ExitCode::software);
}

// ---------------------------------------------------------------------------------------------
// Layout: a summary plus one file per run.

TEST(StateStore, MigratingAVersion1FileLosesNoRun) {
  TempDir tmp;
  const auto path = tmp.path() / "state.json";
  json jobs = json::object();
  std::set<std::string> ids;
  for (int j = 0; j < 12; ++j) {
    JobState st;
    for (int k = 0; k < 30; ++k) {
      RunRecord r = full_record();
      r.job = fmt::format("job{}", j);
      r.run_id = fmt::format("202001{:02}T000000Z-{}", k % 28 + 1, 1000 + j * 100 + k);
      r.outcome = k % 5 == 0 ? RunOutcome::failed : RunOutcome::success;
      r.extra = {{"future", k}};
      ids.insert(r.job + "/" + r.run_id);
      st.runs.push_back(r);
    }
    if (j == 3) {
      RestoreRecord restore;
      restore.restore_id = "20200101T000000Z-9";
      restore.job = "job3";
      restore.outcome = RunOutcome::success;
      st.restores.push_back(restore);
    }
    jobs[fmt::format("job{}", j)] = st;
  }
  ASSERT_TRUE(write_file_atomic(path, json{{"format", "hozo-state"}, {"version", 1}, {"jobs", jobs}}.dump()));

  auto store = open_store(path, 50);
  // The old format reads as it is...
  auto before = store.all();
  ASSERT_TRUE(before) << before.error().message;
  ASSERT_EQ(before->size(), 12U);
  EXPECT_EQ(before->at("job5").runs.size(), 30U);
  auto sums = store.summaries();
  ASSERT_TRUE(sums);
  EXPECT_EQ(sums->at("job5").last_success->run_id, before->at("job5").runs.back().run_id);
  // ...and is migrated by the first write.
  ASSERT_TRUE(store.begin_run("job0"));
  const auto j = read_json(path);
  EXPECT_EQ(j.at("version"), 2);
  EXPECT_FALSE(j.at("jobs").at("job5").contains("runs"));
  auto after = store.all();
  ASSERT_TRUE(after);
  std::set<std::string> seen;
  for (const auto& [name, st] : *after) {
    for (const auto& r : st.runs) {
      if (r.outcome == RunOutcome::running) continue;
      seen.insert(r.job + "/" + r.run_id);
      EXPECT_EQ(r.extra.at("future").get<int>() >= 0, true);
      EXPECT_EQ(r.stages, full_record().stages);
    }
  }
  EXPECT_EQ(seen, ids);
  EXPECT_EQ(after->at("job3").restores.size(), 1U);
  EXPECT_EQ(before->at("job7").runs, after->at("job7").runs);
}

TEST(StateStore, StageUpdatesTouchOnlyTheRunFile) {
  TempDir tmp;
  const auto path = tmp.path() / "state.json";
  auto store = open_store(path);
  for (int j = 0; j < 20; ++j) {
    auto r = store.begin_run(fmt::format("other{}", j));
    ASSERT_TRUE(r);
    r->outcome = RunOutcome::success;
    ASSERT_TRUE(store.finish_run(*r));
  }
  auto run = store.begin_run("job");
  ASSERT_TRUE(run);
  const auto summary_before = read_file(path);
  for (int s = 0; s < 5; ++s) {
    run->stages.push_back({fmt::format("stage{}", s), run->started, 0.1, true, "ok", json::object()});
    ASSERT_TRUE(store.update_run(*run));
  }
  EXPECT_EQ(*read_file(path), *summary_before);  // state.json untouched by stage updates
  EXPECT_EQ(run_file(tmp.path(), "job", run->run_id).at("stages").size(), 5U);
  auto sums = store.summaries();
  ASSERT_TRUE(sums);
  ASSERT_EQ(sums->at("job").running.size(), 1U);
  EXPECT_TRUE(sums->at("job").running[0].stages.empty());  // the summary is slim
  run->outcome = RunOutcome::failed;
  ASSERT_TRUE(store.finish_run(*run));
  sums = store.summaries();
  EXPECT_TRUE(sums->at("job").running.empty());
  EXPECT_EQ(sums->at("job").last->outcome, RunOutcome::failed);
  EXPECT_FALSE(sums->at("job").last_success.has_value());
  EXPECT_EQ(sums->at("other3").last_success->run_id, sums->at("other3").last->run_id);
}

TEST(StateStore, LastSuccessOutlivesTheHistoryAndRemovedJobsStayReadable) {
  TempDir tmp;
  auto store = open_store(tmp.path() / "state.json", 3);
  auto good = store.begin_run("gone");
  ASSERT_TRUE(good);
  good->outcome = RunOutcome::success;
  ASSERT_TRUE(store.finish_run(*good));
  for (int i = 0; i < 6; ++i) {
    auto bad = store.begin_run("gone");
    ASSERT_TRUE(bad);
    bad->outcome = RunOutcome::failed;
    ASSERT_TRUE(store.finish_run(*bad));
  }
  auto st = store.job("gone");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->runs.size(), 3U);  // bounded by history
  auto sums = store.summaries();
  ASSERT_TRUE(sums);
  EXPECT_EQ(sums->at("gone").last_success->run_id, good->run_id);  // the last good backup stays known
  auto found = store.find_run(st->runs.back().run_id);
  ASSERT_TRUE(found);
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->outcome, RunOutcome::failed);
}

TEST(StateStore, ProgressFilesRoundTripAndGoWhenTheRunEnds) {
  TempDir tmp;
  auto store = open_store(tmp.path() / "state.json");
  auto run = store.begin_run("job");
  ASSERT_TRUE(run);
  RunProgress p;
  p.run_id = run->run_id;
  p.job = "job";
  p.stage = "sync";
  p.dataset = "tank/data";
  p.bytes_done = 1000;
  p.bytes_total = 4000;
  p.bytes_per_second = 500;
  p.eta_seconds = 6;
  ASSERT_TRUE(store.write_progress(p));
  EXPECT_EQ(store.read_progress("job", run->run_id), p);
  run->outcome = RunOutcome::success;
  ASSERT_TRUE(store.finish_run(*run));
  EXPECT_FALSE(store.read_progress("job", run->run_id).has_value());
}

TEST(StateStore, SigkillsDuringStageUpdatesLeaveValidRunFiles) {
  TempDir tmp;
  const auto path = tmp.path() / "state.json";
  for (int round = 0; round < 8; ++round) {
    const pid_t kid = spawn([&]() -> int {
      auto store = StateStore::open(path, 100000, StateOptions{Millis{5000}, nullptr});
      if (!store) return 2;
      auto run = store->begin_run("job");
      if (!run) return 3;
      for (int i = 0;; ++i) {
        run->stages.push_back({fmt::format("s{}", i), run->started, 0.1, true, std::string(200, 'x'), {}});
        if (!store->update_run(*run)) return 4;
      }
    });
    std::this_thread::sleep_for(Millis{20 + 9 * round});
    ::kill(kid, SIGKILL);
    EXPECT_EQ(wait_child(kid), 128 + SIGKILL);
  }
  auto store = open_store(path);
  for (const auto& e : fs::directory_iterator(tmp.path() / "runs" / "job")) {
    const auto name = e.path().filename().string();
    if (e.path().extension() != ".json") continue;
    EXPECT_NO_THROW((void)read_json(e.path())) << name;
  }
  auto st = store.job("job");
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_FALSE(store.last_quarantined().has_value());
  for (const auto& r : st->runs) EXPECT_EQ(r.outcome, RunOutcome::interrupted) << r.run_id;
}
