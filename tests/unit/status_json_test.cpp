// What status, jobs list and the dashboard say about a job (src/status_json.cpp): the progress
// line, health from a summary, and the status document.
#include "hozo/status_json.hpp"

#include <gtest/gtest.h>

#include "hozo/util/time.hpp"

namespace hozo {
namespace {

using namespace std::chrono_literals;

RunRecord finished_run(const std::string& id, RunOutcome outcome, std::chrono::system_clock::time_point at) {
  RunRecord r;
  r.run_id = id;
  r.job = "nightly";
  r.started = iso8601_utc(at - 10min);
  r.finished = iso8601_utc(at);
  r.outcome = outcome;
  return r;
}

TEST(ProgressText, BytesRateAndEtaOnlyWhenKnown) {
  RunProgress p;
  p.stage = "sync";
  EXPECT_EQ(progress_text(p), "sync");
  p.dataset = "tank/data";
  p.bytes_done = 512 * 1024;
  EXPECT_EQ(progress_text(p), "sync tank/data: 512.0 KiB of ?");
  p.bytes_total = 2 * 1024 * 1024;
  p.bytes_per_second = 1024 * 1024;
  p.eta_seconds = 2;
  p.updated = "2026-12-01T20:00:05Z";
  EXPECT_EQ(progress_text(p), "sync tank/data: 512.0 KiB of 2.0 MiB, 1.0 MiB/s, ETA 2.0s (updated 2026-12-01T20:00:05Z)");
}

TEST(AssessJob, LastGoodBackupStaysShownAndOverdueFollowsOverdueAfter) {
  Job job;
  job.name = "nightly";
  job.schedule = "daily 02:00";
  job.overdue_after = 36h;
  const auto now = std::chrono::system_clock::now();
  JobSummary s;
  s.last_success = finished_run("a", RunOutcome::success, now - 48h);
  s.last = finished_run("b", RunOutcome::failed, now - 1h);
  const auto h = assess_job(&job, &s, now);
  EXPECT_TRUE(h.failed);
  EXPECT_TRUE(h.overdue);
  EXPECT_EQ(h.status, "overdue");
  ASSERT_TRUE(h.success_age);
  EXPECT_NEAR(static_cast<double>(h.success_age->count()), 48 * 3600.0, 5.0);

  s.last_success = finished_run("c", RunOutcome::success, now - 2h);
  s.last = s.last_success;
  const auto fine = assess_job(&job, &s, now);
  EXPECT_EQ(fine.status, "ok");
  EXPECT_FALSE(fine.overdue);
  EXPECT_EQ(assess_job(&job, nullptr, now).status, "never run");
}

TEST(StatusJson, CarriesHealthLastSuccessRunningAndProgress) {
  Job job;
  job.name = "nightly";
  job.schedule = "daily 02:00";
  const auto now = std::chrono::system_clock::now();
  JobSummary s;
  s.last_success = finished_run("a", RunOutcome::success, now - 1h);
  s.last = s.last_success;
  RunRecord running;
  running.run_id = "r";
  running.outcome = RunOutcome::running;
  running.pid = 42;
  s.running.push_back(running);
  RunProgress p;
  p.stage = "sync";
  const auto j = status_json(&job, "nightly", &s, nullptr, p);
  EXPECT_EQ(j["last"]["run_id"], "r");  // the newest run: the running one
  EXPECT_EQ(j["last_success"]["run_id"], "a");
  EXPECT_EQ(j["running"].size(), 1u);
  EXPECT_EQ(j["running"][0]["pid"], 42);
  EXPECT_EQ(j["progress"]["stage"], "sync");
  EXPECT_EQ(j["schedule_zone"], "UTC");  // "daily HH:MM" is read in UTC (Python Hōzō)
  EXPECT_FALSE(j["manual"].get<bool>());
  EXPECT_TRUE(j.contains("health"));
  EXPECT_TRUE(j["last_restore"].is_null());
}

}  // namespace
}  // namespace hozo
