// `hozo serve`: the dashboard, JSON API and /metrics (src/serve/).
#include "cli_internal.hpp"

#include "hozo/serve/serve.hpp"

namespace hozo::cli {

void add_serve_command(CLI::App& app, Globals& g, Action& action) {
  static std::string listen;
  auto* serve = app.add_subcommand("serve", "web dashboard, JSON API (/api/v1/) and Prometheus /metrics");
  serve->add_option("--listen", listen, "ADDR:PORT to listen on (default: serve.listen, else 127.0.0.1:8000)");
  serve->callback([&] {
    action = [&] {
      const std::filesystem::path state = state_path(g);
      return serve::run_serve(config_path(g), state, listen);
    };
  });
}

}  // namespace hozo::cli
