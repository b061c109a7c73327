#include "hozo/command.hpp"

#include "hozo/util/strings.hpp"

namespace hozo {

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
