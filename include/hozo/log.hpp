#pragma once
// Logging set-up: spdlog to stderr. Under systemd (JOURNAL_STREAM set) lines carry
// syslog priority prefixes ("<3>") and no timestamps, so journald records the level.

namespace hozo {

/// Verbosity from -v/-q: -1 quiet (warnings+), 0 normal (info+), 1 debug, 2 trace.
void setup_logging(int verbosity);

/// True when stderr is connected to the journal (JOURNAL_STREAM matches stderr's device:inode).
bool stderr_is_journal();

}  // namespace hozo
