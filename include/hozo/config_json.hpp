#pragma once
// The effective configuration as JSON (for `hozo jobs show`): defaults resolved, secrets masked.

#include <nlohmann/json.hpp>

#include "hozo/config.hpp"

namespace hozo {

/// The job with every default resolved; secrets appear as "********" plus where they came from.
nlohmann::ordered_json job_to_json(const Job& job);

/// One config issue as {file, line, column, path, message, severity, job} (for --json output).
nlohmann::json issue_json(const ConfigIssue& issue);

/// Enum spellings used in the config file and in JSON output.
const char* to_string(HostKeyPolicy p);
const char* to_string(HostSharing s);
const char* to_string(NotifyOn n);

}  // namespace hozo
