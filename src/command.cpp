#include "hozo/command.hpp"

#include "hozo/util/strings.hpp"

namespace hozo {

Result<ChainedOutput> CommandRunner::run_then(const std::vector<std::string>& first,
                                              const std::vector<std::string>& second, std::chrono::seconds timeout) {
  auto a = run(first, timeout);
  if (!a) return std::move(a).error();
  ChainedOutput out{std::move(*a), std::nullopt};
  if (out.first.exit_status != 0) return out;
  auto b = run(second, timeout);
  if (!b) return std::move(b).error();
  out.second = std::move(*b);
  return out;
}

void FakeCommandRunner::on(std::string command, CommandOutput output) {
  canned_.emplace_back(std::move(command), std::move(output));
}

Result<CommandOutput> FakeCommandRunner::run(const std::vector<std::string>& argv, std::chrono::seconds /*timeout*/) {
  const std::string joined = join(argv, " ");
  calls.push_back(joined);
  for (const auto& [command, output] : canned_) {
    if (command == joined) return output;
  }
  if (fallback_) return fallback_(argv);
  return make_error("fake runner: unexpected command: {}", joined);
}

}  // namespace hozo
