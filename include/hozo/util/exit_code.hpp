#pragma once
// Process exit codes (sysexits style). Documented in README.md and man/hozo.1.

namespace hozo {

/// Every exit code hozo can return; keep README.md and man/hozo.1 in sync.
enum class ExitCode : int {
  ok = 0,            ///< success
  failure = 1,       ///< the job (or command) failed
  usage = 2,         ///< bad command line
  unconfirmed = 64,  ///< a command that changes the box needs confirmation (--yes) and there was no terminal to ask on
  unavailable = 69,  ///< EX_UNAVAILABLE: host never woke, syncoid missing, ...
  software = 70,     ///< EX_SOFTWARE: internal error (a bug)
  tempfail = 75,     ///< EX_TEMPFAIL: host busy or locked; try again later
  config = 78,       ///< EX_CONFIG: configuration invalid
  interrupted = 130  ///< SIGINT/SIGTERM received
};

/// The integer value to pass to exit().
constexpr int to_int(ExitCode code) noexcept { return static_cast<int>(code); }

}  // namespace hozo
