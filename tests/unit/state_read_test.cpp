// Reading the summary file: the fast reader (simdjson, src/state_json.cpp) must give exactly what
// the nlohmann converters give, or leave the text to them. Every test compares StateStore::summaries()
// with a reading by those converters alone, on valid files and on many damaged ones.

#include <gtest/gtest.h>

#include "test_support.hpp"

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "hozo/state.hpp"
#include "hozo/util/fs.hpp"

using namespace hozo;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

using TempDir = hozo::test::TempDir;
using Summaries = std::map<std::string, JobSummary>;

RunRecord finished_run(const std::string& job, const std::string& id, RunOutcome outcome) {
  RunRecord r;
  r.run_id = id;
  r.job = job;
  r.started = "2026-11-24T08:00:00Z";
  r.finished = "2026-11-24T08:12:30Z";
  r.duration_seconds = 750.25;
  r.outcome = outcome;
  r.exit_code = outcome == RunOutcome::success ? 0 : 69;
  r.failed_stage = outcome == RunOutcome::success ? "" : "verify";
  r.error = outcome == RunOutcome::success ? "" : "caf\xc3\xa9 \"quoted\"\n\ttab \\ back";
  r.datasets = {{"tank/data", "backup/data", "tank/data@a", "backup/data@a", true, 17, json::object(),
                 12345678901234567890ULL, "a", "z"}};
  r.transfers = {{"tank/data", "backup/data", 4096, -1, 1.5, 2730.666, json::object(), "estimate", 2}};
  r.bytes_sent = 4096;
  r.attempts = 2;
  r.woke_host = true;
  r.shutdown = {ShutdownOutcome::done, "\"shutdown -h now\" sent"};
  r.pid = 4242;
  r.pid_start_ticks = 123456789;
  r.hostname = "elsewhere";  // another host: never resolved as orphaned here
  r.log_file = "/var/lib/hozo/logs/" + job + "/" + id + ".log";
  r.error_cause = outcome == RunOutcome::success ? "" : "no_common_snapshot";
  return r;
}

/// A summary file as hozo writes it: one job whose last run failed (so last_success is stored
/// apart), one whose last run was its last success, one running, one with a restore.
json base_document() {
  JobSummary failed;
  failed.last = finished_run("a", "20261124T080000Z-2", RunOutcome::failed);
  failed.last_success = finished_run("a", "20261123T080000Z-1", RunOutcome::success);
  JobSummary ok;
  ok.last = finished_run("b", "20261124T080000Z-3", RunOutcome::success);
  ok.last_success = ok.last;
  JobSummary running;
  RunRecord live = finished_run("c", "20261124T090000Z-4", RunOutcome::running);
  live.finished.clear();
  live.child_pgids = {100, 200};
  running.running = {live};
  JobSummary restored;
  RestoreRecord restore;
  restore.restore_id = "20261124T100000Z-5";
  restore.job = "d";
  restore.outcome = RunOutcome::success;
  restore.source = "tank/data";
  restore.backup = "backup/data";
  restore.target = "tank/restored";
  restore.in_place = true;
  restore.pid = 5;
  restore.hostname = "elsewhere";
  restored.last_restore = restore;
  json jobs = json::object();
  jobs["a"] = failed;
  jobs["b"] = ok;
  jobs["c"] = running;
  jobs["d"] = restored;
  return {{"format", "hozo-state"}, {"version", 2}, {"updated", "2026-11-24T10:00:00Z"}, {"jobs", jobs}};
}

/// The jobs as the nlohmann converters read them; nullopt when they throw (the store calls that corrupt).
std::optional<Summaries> converters_read(const std::string& text) {
  try {
    const json root = json::parse(text);
    if (!root.is_object()) return std::nullopt;
    if (const auto v = root.find("version"); v != root.end() && !v->is_null() && v->get<int>() < 2) {
      ADD_FAILURE() << "a version-1 file: its jobs are summarized from their history, not compared here";
    }
    Summaries out;
    const auto jobs = root.find("jobs");
    if (jobs == root.end() || jobs->is_null()) return out;
    if (!jobs->is_object()) return std::nullopt;
    for (const auto& [name, value] : jobs->items()) out.emplace(name, value.get<JobSummary>());
    return out;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

/// Writes `text` as a state file and checks that the store reads what the converters read.
void expect_same_reading(const std::string& text, const std::string& what) {
  TempDir tmp;
  const auto path = tmp.path() / "state.json";
  ASSERT_TRUE(write_file_atomic(path, text));
  auto store = StateStore::open(path);
  ASSERT_TRUE(store) << store.error().message;
  const auto expected = converters_read(text);
  auto got = store->summaries();
  ASSERT_TRUE(got) << what << ": " << got.error().message;
  if (!expected) {
    EXPECT_TRUE(got->empty()) << what;
    EXPECT_TRUE(store->last_quarantined().has_value()) << what << ": not called corrupt\n" << text;
    return;
  }
  EXPECT_FALSE(store->last_quarantined().has_value()) << what << ": called corrupt\n" << text;
  EXPECT_EQ(*got, *expected) << what << "\n" << text;
}

/// Every JSON pointer below /jobs (objects and array elements and leaves).
void collect_pointers(const json& j, const json::json_pointer& at, std::vector<json::json_pointer>& out) {
  out.push_back(at);
  if (j.is_object()) {
    for (const auto& [key, value] : j.items()) collect_pointers(value, at / key, out);
  } else if (j.is_array()) {
    for (std::size_t i = 0; i < j.size(); ++i) collect_pointers(j[i], at / i, out);
  }
}

/// Whether reading `text` as a state file fell back to the full reader (its debug message).
bool read_by_full_reader(const std::string& text) {
  TempDir tmp;
  const auto path = tmp.path() / "state.json";
  EXPECT_TRUE(write_file_atomic(path, text));
  const auto log = hozo::test::debug_log_of([&] {
    auto store = StateStore::open(path);
    EXPECT_TRUE(store && store->summaries());
  });
  return log.find("full JSON reader") != std::string::npos;
}

TEST(StateRead, TheFastReaderReadsWhatHozoWritesAndLeavesTheRest) {
  const json doc = base_document();
  EXPECT_FALSE(read_by_full_reader(doc.dump()));
  auto unknown = doc;
  unknown["jobs"]["a"]["last"]["new_field"] = 1;
  EXPECT_TRUE(read_by_full_reader(unknown.dump()));
  auto fractional = doc;
  fractional["jobs"]["a"]["last"]["exit_code"] = 1.5;  // nlohmann truncates it to 1
  EXPECT_TRUE(read_by_full_reader(fractional.dump()));
  EXPECT_TRUE(read_by_full_reader(R"({"jobs":{"a":{"runs":[]}}})"));  // version 1
}

TEST(StateRead, WhatHozoWritesReadsTheSame) {
  const json doc = base_document();
  expect_same_reading(doc.dump(), "as written");
  expect_same_reading(doc.dump(2), "indented");
  auto newer = doc;
  newer["version"] = 3;  // a newer hozo's file, with a key this one does not know
  newer["jobs"]["a"]["last"]["new_field"] = {{"x", 1}};
  newer["jobs"]["b"]["new_summary_key"] = "kept";
  newer["plugins"] = json::array({1, 2});
  expect_same_reading(newer.dump(), "newer version");
}

TEST(StateRead, EveryValueReplacedByEveryOddValueReadsTheSame) {
  const json doc = base_document();
  std::vector<json::json_pointer> pointers;
  collect_pointers(doc["jobs"], json::json_pointer("/jobs"), pointers);
  ASSERT_GT(pointers.size(), 100U);
  const std::vector<json> odd = {nullptr, 1.5, -1, 1099511627776LL, 18446744073709551615ULL, "text", true,
                                 json::array(), json::object(), 0, 2.0};
  for (const auto& pointer : pointers) {
    // Without its host the running entry is this host's, and its dead pid makes it interrupted:
    // the store's own rule, not the reader's (state_test covers it).
    if (pointer.to_string() == "/jobs/c/running/0/hostname") continue;
    for (const auto& value : odd) {
      json mutated = doc;
      mutated[pointer] = value;
      expect_same_reading(mutated.dump(), pointer.to_string() + " = " + value.dump());
    }
    if (doc[pointer].is_object()) {
      json mutated = doc;
      mutated[pointer]["zz_unknown"] = 7;
      expect_same_reading(mutated.dump(), pointer.to_string() + " + unknown key");
    }
  }
}

TEST(StateRead, DuplicateKeysAndNamesReadTheSame) {
  const std::string base = base_document().dump();
  const auto with = [&](const std::string& from, const std::string& to) {
    std::string text = base;
    const auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    return text;
  };
  // nlohmann keeps the last of two equal keys; a null one then leaves the default.
  expect_same_reading(with("\"exit_code\":69", "\"exit_code\":69,\"exit_code\":null"), "duplicate, last null");
  expect_same_reading(with("\"exit_code\":69", "\"exit_code\":null,\"exit_code\":3"), "duplicate, last set");
  expect_same_reading(with("\"bytes\":4096", "\"bytes\":4096,\"bytes\":\"x\""), "duplicate, last wrong type");
  expect_same_reading(with("\"jobs\":{", "\"jobs\":{\"b\":{},"), "duplicate job name");
  expect_same_reading(with("\"version\":2", "\"version\":1,\"version\":2"), "duplicate version");
}

TEST(StateRead, DamagedTextReadsTheSame) {
  const std::string base = base_document().dump();
  expect_same_reading(base + " x", "trailing garbage");
  expect_same_reading(base + " {}", "a second document");
  expect_same_reading(base + "\n\n", "trailing white space");
  expect_same_reading(base.substr(0, base.size() / 2), "truncated");
  std::string control = base;
  control.replace(control.find("caf"), 3, "ca\x01");
  expect_same_reading(control, "raw control character in a string");
  std::string bad_utf8 = base;
  bad_utf8.replace(bad_utf8.find("caf"), 3, "ca\xff");
  expect_same_reading(bad_utf8, "invalid UTF-8");
  expect_same_reading("[]", "an array");
  expect_same_reading("{\"version\":2,\"jobs\":null}", "null jobs");
  expect_same_reading("{\"version\":2,\"jobs\":[]}", "jobs an array");
  expect_same_reading("{\"version\":2,\"format\":5,\"jobs\":{}}", "format a number");
  expect_same_reading("{\"version\":\"2\",\"jobs\":{}}", "version a string");
}

}  // namespace
