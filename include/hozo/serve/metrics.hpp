#pragma once
// Prometheus text exposition (format 0.0.4) of every job's state: served on /metrics by
// `hozo serve` and written to serve.metrics_textfile after every run (node_exporter's textfile
// collector), so both always carry the same series.

#include <string>
#include <string_view>
#include <vector>

#include "hozo/serve/view.hpp"
#include "hozo/util/result.hpp"

namespace hozo::serve {

/// The content type of render_metrics()'s output.
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value (backslash, double quote, line feed).
std::string prometheus_label(std::string_view value);

/// All hozo_* metric families for these jobs (HELP and TYPE lines, one sample per job).
std::string render_metrics(const std::vector<JobView>& views);

/// Writes render_metrics() for every job of `config` to config.serve.metrics_textfile
/// (temp + fsync + rename, mode 0644); does nothing when that key is not set.
Result<void> write_metrics_textfile(const Config& config, const StateStore& store);

}  // namespace hozo::serve
