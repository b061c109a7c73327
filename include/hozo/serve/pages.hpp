#pragma once
// The dashboard's server-rendered pages. Every value is escaped with escape_html() (text and
// quoted attributes) or url_component() (inside href/action); no page carries inline script or
// style (the CSP is default-src 'self'): the behaviour lives in the embedded /assets/hozo.js,
// which only reads data-* attributes.

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "hozo/serve/view.hpp"

namespace hozo::serve {

/// What every page needs to know about the viewer.
struct PageContext {
  std::string csrf;          ///< token for the POST forms ("" = no forms)
  bool logout = false;       ///< show the logout button (a session exists)
  bool local_only = false;   ///< no credentials configured: say that the server is local-only
};

/// The overview: one row per job.
std::string render_overview(const std::vector<JobView>& views, const PageContext& ctx);

/// A job: last run's stage timeline and verification, history, restores, effective config (masked).
std::string render_job(const JobView& view, const nlohmann::ordered_json& masked_config, const PageContext& ctx);

/// A run with its log (`log` may be a tail; `log_offset` is where it starts in the file) and, for a
/// running one, its live progress line (progress_text; empty when none was written yet).
std::string render_run(const Job& job, const RunRecord& run, bool running, std::string_view log, std::size_t log_offset,
                       std::string_view progress, const PageContext& ctx);

/// The login form, with an optional message ("wrong password").
std::string render_login(std::string_view message, const PageContext& ctx);

/// A page with a heading, a preformatted text (plan, check output, error) and a link back.
std::string render_text_page(int status, std::string_view title, std::string_view text, std::string_view back_href,
                             const PageContext& ctx);

/// The embedded stylesheet (/assets/hozo.css).
std::string_view stylesheet();
/// The embedded script (/assets/hozo.js): log following and progress on the run page.
std::string_view script();

}  // namespace hozo::serve
