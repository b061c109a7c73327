// Stage-update cost of hozo::StateStore against the number of jobs and runs in the state:
//   state_bench DIR [JOBS...]     (default 1 200 2000; 50 finished runs per job... see below)
// For each JOBS count it fills a fresh state under DIR with JOBS jobs of RUNS finished runs each
// (RUNS = 50 for up to 200 jobs, 5 for more, to keep the set-up short: the point is that an update
// does not read or write any of them), begins one run and times 30 update_run calls of it (a
// stage update: 9 stages, 2 datasets), then prints "jobs runs median_ms max_ms begin_ms finish_ms".
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "hozo/state.hpp"

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

hozo::RunRecord sample_run(hozo::RunRecord r) {
  for (int s = 0; s < 9; ++s) {
    r.stages.push_back({fmt::format("stage{}", s), r.started, 1.5, true, "a message of typical length for a stage",
                        nlohmann::json::object()});
  }
  r.datasets = {{"tank/data", "backup/data", "tank/data@autosnap_2026-11-24_08:00:00_daily",
                 "backup/data@autosnap_2026-11-24_08:00:00_daily", true, 30, nlohmann::json::object(), 0x1234, "", ""}};
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: state_bench DIR [JOBS...]\n");
    return 2;
  }
  const std::filesystem::path base = argv[1];
  std::vector<int> counts;
  for (int i = 2; i < argc; ++i) counts.push_back(std::atoi(argv[i]));
  if (counts.empty()) counts = {1, 200, 2000};
  for (const int jobs : counts) {
    const int runs = jobs <= 200 ? 50 : 5;
    const auto dir = base / fmt::format("s{}", jobs);
    std::filesystem::remove_all(dir);
    auto store = hozo::StateStore::open(dir / "state.json", 50);
    if (!store) {
      std::fprintf(stderr, "%s\n", store.error().message.c_str());
      return 1;
    }
    // Set-up written straight in the documented layout (no fsync: only the timed calls below matter).
    nlohmann::json summary = nlohmann::json::object();
    for (int j = 0; j < jobs; ++j) {
      const auto name = fmt::format("job-{:04}", j);
      const auto job_dir = dir / "runs" / name;
      std::filesystem::create_directories(job_dir);
      nlohmann::json last;
      for (int k = 0; k < runs; ++k) {
        hozo::RunRecord r;
        r.job = name;
        r.run_id = fmt::format("202001{:02}T{:02}0000Z-{}", k % 28 + 1, k / 28, 1000 + k);
        r.started = "2020-01-01T00:00:00Z";
        r.outcome = hozo::RunOutcome::success;
        r = sample_run(r);
        std::ofstream(job_dir / (r.run_id + ".json")) << nlohmann::json(r).dump();
        r.stages.clear();
        last = r;
      }
      summary[name] = {{"last", last}, {"last_success", last}};
    }
    std::ofstream(dir / "state.json") << nlohmann::json{{"format", "hozo-state"}, {"version", 2}, {"jobs", summary}}.dump();
    ::sync();  // flush the set-up, so the journal commits of the timed writes carry only their own data
    auto t0 = std::chrono::steady_clock::now();
    auto run = store->begin_run("job-0000");
    const double begin_ms = ms_since(t0);
    if (!run) return 1;
    *run = sample_run(*run);
    std::vector<double> samples;
    for (int i = 0; i < 30; ++i) {
      run->stages[0].seconds = i;
      t0 = std::chrono::steady_clock::now();
      if (!store->update_run(*run)) return 1;
      samples.push_back(ms_since(t0));
    }
    run->outcome = hozo::RunOutcome::success;
    t0 = std::chrono::steady_clock::now();
    if (!store->finish_run(*run)) return 1;
    const double finish_ms = ms_since(t0);
    std::sort(samples.begin(), samples.end());
    fmt::print("{} {} {:.3f} {:.3f} {:.3f} {:.3f}\n", jobs, jobs * runs, samples[samples.size() / 2], samples.back(),
               begin_ms, finish_ms);
    std::fflush(stdout);
    if (std::getenv("STATE_BENCH_KEEP") == nullptr) std::filesystem::remove_all(dir);
  }
  return 0;
}
