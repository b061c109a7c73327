#include "hozo/serve/metrics.hpp"

#include <chrono>

#include <fmt/format.h>

#include "hozo/util/fs.hpp"

namespace hozo::serve {

std::string prometheus_label(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

namespace {

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void sample(std::string& out, std::string_view name, const std::string& job, double value) {
  fmt::format_to(std::back_inserter(out), "{}{{job=\"{}\"}} {}\n", name, job, value);
}

}  // namespace

std::string render_metrics(const std::vector<JobView>& views) {
  std::vector<std::string> labels;
  labels.reserve(views.size());
  for (const auto& v : views) labels.push_back(prometheus_label(v.job->name));
  std::string out;
  out.reserve(256 + views.size() * 600);
  family(out, "hozo_last_success_timestamp_seconds", "gauge", "End of the last successful run (0: never succeeded).");
  for (std::size_t i = 0; i < views.size(); ++i) {
    sample(out, "hozo_last_success_timestamp_seconds", labels[i], views[i].last_success_unix.value_or(0));
  }
  family(out, "hozo_last_run_duration_seconds", "gauge", "Duration of the last completed run.");
  for (std::size_t i = 0; i < views.size(); ++i) {
    if (views[i].duration) sample(out, "hozo_last_run_duration_seconds", labels[i], *views[i].duration);
  }
  family(out, "hozo_last_run_bytes", "gauge", "Bytes sent by the last completed run (when recorded).");
  for (std::size_t i = 0; i < views.size(); ++i) {
    if (views[i].bytes) sample(out, "hozo_last_run_bytes", labels[i], static_cast<double>(*views[i].bytes));
  }
  family(out, "hozo_last_run_success", "gauge", "1 when the last completed run succeeded, else 0.");
  for (std::size_t i = 0; i < views.size(); ++i) {
    if (views[i].last_completed == nullptr) continue;
    sample(out, "hozo_last_run_success", labels[i], views[i].last_completed->outcome == RunOutcome::success ? 1 : 0);
  }
  family(out, "hozo_job_overdue", "gauge", "1 when a scheduled run should have succeeded by now.");
  for (std::size_t i = 0; i < views.size(); ++i) sample(out, "hozo_job_overdue", labels[i], views[i].overdue ? 1 : 0);
  family(out, "hozo_running", "gauge", "1 while a run of the job is in progress.");
  for (std::size_t i = 0; i < views.size(); ++i) sample(out, "hozo_running", labels[i], views[i].running ? 1 : 0);
  family(out, "hozo_runs_total", "counter", "Runs in the retained history (settings.history), by outcome.");
  static constexpr const char* kOutcomes[] = {"success", "failed", "interrupted"};
  for (std::size_t i = 0; i < views.size(); ++i) {
    for (const char* outcome : kOutcomes) {
      const auto it = views[i].runs_by_outcome.find(outcome);
      const std::size_t n = it == views[i].runs_by_outcome.end() ? 0 : it->second;
      fmt::format_to(std::back_inserter(out), "hozo_runs_total{{job=\"{}\",outcome=\"{}\"}} {}\n", labels[i], outcome, n);
    }
  }
  return out;
}

Result<void> write_metrics_textfile(const Config& config, const StateStore& store) {
  if (config.serve.metrics_textfile.empty()) return {};
  auto states = store.all();
  if (!states) return states.error();
  const auto views = make_job_views(config, *states, std::chrono::system_clock::now());
  const std::filesystem::path path = config.serve.metrics_textfile;
  if (auto made = make_dirs(path.parent_path(), 0755); !made) return made.error();
  auto written = write_file_atomic(path, render_metrics(views), 0644);
  if (!written) return make_error("serve.metrics_textfile: {}", written.error().message);
  return {};
}

}  // namespace hozo::serve
