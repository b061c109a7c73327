#pragma once
// Running a command somewhere (locally, or on the remote box over SSH) behind one small
// interface, so zfs listing, verify and the pipeline can be unit-tested with a fake.

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "hozo/util/result.hpp"

namespace hozo {

/// What a finished command produced. A non-zero exit status is a value, not an Error:
/// the caller decides what it means.
struct CommandOutput {
  int exit_status = 0;
  std::string out;
  std::string err;
};

/// Runs argv vectors. Implementations never pass argv through a local shell; the SSH
/// implementation quotes every argument (shell_join) because the remote sshd runs a shell.
class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  /// Runs argv to completion. Returns an Error when the command could not be started,
  /// timed out (and was killed), was killed by a signal, or produced no exit status.
  virtual Result<CommandOutput> run(const std::vector<std::string>& argv, std::chrono::seconds timeout) = 0;
  /// A short description for messages: "local" or "root@backup-box:22".
  [[nodiscard]] virtual std::string where() const = 0;
};

/// In-memory fake for unit tests: answers argv (joined by spaces) with canned outputs
/// and records every call.
class FakeCommandRunner final : public CommandRunner {
 public:
  /// A handler gets the argv and returns the canned answer.
  using Handler = std::function<Result<CommandOutput>(const std::vector<std::string>&)>;

  /// Answers commands whose space-joined argv equals `command` with `output`.
  void on(std::string command, CommandOutput output);
  /// Answers every command not matched by on() through `handler`.
  void fallback(Handler handler) { fallback_ = std::move(handler); }

  Result<CommandOutput> run(const std::vector<std::string>& argv, std::chrono::seconds timeout) override;
  [[nodiscard]] std::string where() const override { return "fake"; }

  /// Every argv seen, space-joined, in order.
  std::vector<std::string> calls;

 private:
  std::vector<std::pair<std::string, CommandOutput>> canned_;
  Handler fallback_;
};

}  // namespace hozo
