// hozo serve: time of the overview page and /metrics with JOBS jobs × RUNS runs each (default
// 200 × 50), measured over real HTTP on 127.0.0.1 (the http module's server, the dashboard's
// routes) after one warm-up request, which also loads the state file into the cache. Prints a
// Markdown table: median and p90 of N requests (default 50), and the cold first request.
//
//   build/tests/bench/serve_bench [JOBS] [RUNS] [N]
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "hozo/config.hpp"
#include "hozo/http/server.hpp"
#include "hozo/serve/serve.hpp"
#include "hozo/state.hpp"
#include "test_support.hpp"

namespace {

using Clock = std::chrono::steady_clock;

/// One GET over a fresh connection; returns the body size (0 on failure).
std::size_t get(int port, const std::string& path) {
  const int fd = hozo::test::connect_loopback(port);
  if (fd < 0) return 0;
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string answer;
  char buf[65536];
  for (;;) {
    const auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    answer.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return answer.rfind("HTTP/1.1 200", 0) == 0 ? answer.size() : 0;
}

struct Figures {
  double cold_ms, median_ms, p90_ms;
  std::size_t bytes;
};

Figures measure(int port, const std::string& path, int n) {
  auto t0 = Clock::now();
  const std::size_t bytes = get(port, path);
  const double cold = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    t0 = Clock::now();
    if (get(port, path) == 0) std::fprintf(stderr, "request failed: %s\n", path.c_str());
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return {cold, ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 9 / 10)], bytes};
}

}  // namespace

int main(int argc, char** argv) {
  const int jobs = argc > 1 ? std::atoi(argv[1]) : 200;
  const int runs = argc > 2 ? std::atoi(argv[2]) : 50;
  const int n = argc > 3 ? std::atoi(argv[3]) : 50;
  spdlog::set_level(spdlog::level::warn);
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("hozo-serve-bench-{}", ::getpid());
  std::filesystem::create_directories(dir / "state");
  std::string yaml = "settings:\n  target_host: 127.0.0.1\n  wol: false\n  schedule: daily 02:00\njobs:\n";
  for (int j = 0; j < jobs; ++j) {
    yaml += fmt::format("  - name: job{0:03}\n    description: bench job {0}\n    source_dataset: tank/d{0}\n"
                        "    target_dataset: backup/d{0}\n",
                        j);
  }
  std::ofstream(dir / "hozo.yaml") << yaml;
  // The state file as `hozo jobs run` writes it: 50 finished runs with 7 stages and a dataset each.
  nlohmann::json doc{{"format", "hozo-state"}, {"version", 1}, {"updated", "2026-12-01T00:00:00Z"}};
  const auto base = std::chrono::sys_days{std::chrono::year{2026} / 10 / 1};
  for (int j = 0; j < jobs; ++j) {
    auto arr = nlohmann::json::array();
    for (int r = 0; r < runs; ++r) {
      hozo::RunRecord rec;
      const auto t = base + std::chrono::hours(24 * r + 2);
      rec.run_id = hozo::make_run_id(t, 1000 + r);
      rec.job = fmt::format("job{:03}", j);
      rec.started = hozo::iso8601_utc(t);
      rec.finished = hozo::iso8601_utc(t + std::chrono::seconds(300 + r));
      rec.duration_seconds = 300 + r;
      rec.outcome = r % 10 == 3 ? hozo::RunOutcome::failed : hozo::RunOutcome::success;
      rec.extra["bytes"] = 1000000 * (r + 1);
      for (const char* s : {"preflight", "lock", "wake", "wait_ssh", "sync", "verify", "shutdown"}) {
        rec.stages.push_back(hozo::StageTiming{s, rec.started, 10.0, true, "ok", {}});
      }
      rec.datasets.push_back(hozo::DatasetVerification{fmt::format("tank/d{}", j), fmt::format("backup/d{}", j),
                                                       "tank/d@autosnap", "backup/d@autosnap", true, 40, {}, 0, "", ""});
      arr.push_back(rec);
    }
    doc["jobs"][fmt::format("job{:03}", j)] = {{"runs", arr}};
  }
  std::ofstream(dir / "state" / "state.json") << doc.dump();
  const auto state_size = std::filesystem::file_size(dir / "state" / "state.json");

  auto config = hozo::load_config(dir / "hozo.yaml");
  if (!config) {
    std::fprintf(stderr, "%s\n", config.error().message.c_str());
    return 1;
  }
  hozo::serve::Dashboard dashboard(std::move(*config), "",
                                   hozo::serve::DashboardOptions{dir / "hozo.yaml", dir / "state" / "state.json", "/bin/false",
                                                                 hozo::serve::DashboardOptions::Runner::process});
  hozo::http::ServerOptions options;
  options.access_log = [](const hozo::http::AccessEntry&) {};
  hozo::http::Server server(dashboard.routes(), options);
  auto port = server.start();
  if (!port) {
    std::fprintf(stderr, "%s\n", port.error().message.c_str());
    return 1;
  }
  const auto overview = measure(*port, "/", n);
  const auto metrics = measure(*port, "/metrics", n);
  const auto job = measure(*port, "/jobs/job000", n);
  server.stop();
  std::filesystem::remove_all(dir);

  fmt::print("| request ({} jobs × {} runs, state {:.1f} MiB) | median | p90 | cold (state load) | response |\n", jobs,
             runs, static_cast<double>(state_size) / (1 << 20));
  fmt::print("|---|---|---|---|---|\n");
  const auto row = [&](const char* what, const Figures& f) {
    fmt::print("| {} | {:.2f} ms | {:.2f} ms | {:.1f} ms | {:.0f} KiB |\n", what, f.median_ms, f.p90_ms, f.cold_ms,
               static_cast<double>(f.bytes) / 1024);
  };
  row("GET / (overview)", overview);
  row("GET /metrics", metrics);
  row("GET /jobs/NAME", job);
  return 0;
}
