#pragma once
// Logging set-up: spdlog to stderr. Under systemd (JOURNAL_STREAM set) lines carry
// syslog priority prefixes ("<3>") and no timestamps, so journald records the level.

#include <filesystem>
#include <string>

namespace hozo {

/// Verbosity from -v/-q: -1 quiet (warnings+), 0 normal (info+), 1 debug, 2 trace.
void setup_logging(int verbosity);

/// The run log: a sink of the default logger (put there by setup_logging, before any thread
/// logs, so the logger's sink list never changes while threads use it) that writes the current
/// run's log file. It buffers from begin() until open() names the file, and is idle after end().
namespace run_log {

/// Starts capturing (debug and up): buffered until open().
void begin();
/// Writes the buffered lines and everything after them to `path` (appended); "" or why it failed.
std::string open(const std::filesystem::path& path);
/// Stops capturing and closes the file.
void end();

}  // namespace run_log

/// True when stderr is connected to the journal (JOURNAL_STREAM matches stderr's device:inode).
bool stderr_is_journal();

}  // namespace hozo
