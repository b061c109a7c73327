#include "hozo/backupd.hpp"

#include <sys/stat.h>

#include <cstdlib>
#include <system_error>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "hozo/util/exit_code.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/util/time.hpp"
#include "hozo/zfs.hpp"

// backupd's configuration: /etc/hozo/backupd.yaml, the token, and `backupd --check`.

namespace hozo {

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

Result<std::pair<std::string, int>> parse_listen_address(std::string_view text) {
  text = trim(text);
  if (text.empty()) return make_error(ExitCode::config, "empty address");
  std::string host;
  std::string_view port_text;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return make_error(ExitCode::config, "missing ']' in '{}'", printable(text));
    host = std::string(text.substr(1, close - 1));
    const auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return make_error(ExitCode::config, "expected ':PORT' after ']'");
      port_text = rest.substr(1);
    }
  } else {
    const auto colon = text.rfind(':');
    if (colon != std::string_view::npos && text.find(':') != colon) {
      return make_error(ExitCode::config, "write IPv6 addresses as [ADDR]:PORT");
    }
    host = std::string(text.substr(0, colon));
    if (colon != std::string_view::npos) port_text = text.substr(colon + 1);
  }
  if (host.empty()) return make_error(ExitCode::config, "empty host in '{}'", printable(text));
  int port = 9999;
  if (!port_text.empty() || text.back() == ':') {
    const auto value = parse_int(port_text);
    if (!value || *value < 0 || *value > 65535) {
      return make_error(ExitCode::config, "invalid port '{}' (0-65535)", printable(port_text));
    }
    port = static_cast<int>(*value);
  }
  return std::make_pair(host, port);
}

namespace {

struct ConfigIssues {
  std::string file;
  std::vector<std::string> lines;
  void add(const YAML::Node& node, std::string_view key, std::string_view message) {
    const auto mark = node.Mark();
    if (mark.line >= 0) {
      lines.push_back(fmt::format("{}:{}:{}: {}: {}", file, mark.line + 1, mark.column + 1, key, message));
    } else {
      lines.push_back(fmt::format("{}: {}: {}", file, key, message));
    }
  }
};

std::optional<std::chrono::seconds> yaml_duration(const YAML::Node& node) {
  if (!node.IsScalar()) return std::nullopt;
  return parse_duration(node.Scalar());
}

std::optional<long long> yaml_int(const YAML::Node& node) {
  if (!node.IsScalar()) return std::nullopt;
  return parse_int(node.Scalar());
}

}  // namespace

Result<BackupdConfig> parse_backupd_config(std::string_view yaml, std::string_view file_name) {
  std::vector<std::string> problems;
  auto config = parse_backupd_config_all(yaml, file_name, problems);
  if (!problems.empty()) return Error{join(problems, "\n"), ExitCode::config};
  return config;
}

BackupdConfig parse_backupd_config_all(std::string_view yaml, std::string_view file_name,
                                       std::vector<std::string>& problems) {
  BackupdConfig config;
  ConfigIssues issues{std::string(file_name), {}};
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    problems.push_back(fmt::format("{}:{}:{}: {}", file_name, e.mark.line + 1, e.mark.column + 1, e.msg));
    return config;
  }
  if (root.IsNull()) return config;  // empty file: all defaults
  if (!root.IsMap()) {
    problems.push_back(fmt::format("{}: expected a mapping at the top level", file_name));
    return config;
  }

  static const std::vector<std::string> kKeys = {
      "listen",          "token_file",      "export_pools",   "shutdown_command", "shutdown_delay",
      "command_timeout", "spinup_timeout",  "max_body",       "read_timeout",     "request_timeout",
      "keep_alive_max",  "max_connections", "max_connections_per_ip", "connection_memory",
      "sys_block",       "dev_root",        "proc_root"};
  // Also accepted, from older configs, without effect (libmicrohttpd has one inactivity timeout
  // and a thread per connection; --check warns): write_timeout, keep_alive_timeout, threads, max_queued.
  try {
    for (const auto& entry : root) {
      const std::string key = entry.first.as<std::string>();
      const YAML::Node& value = entry.second;
      auto duration_key = [&](std::chrono::seconds& out, long long min_s, long long max_s) {
        const auto d = yaml_duration(value);
        if (!d || d->count() < min_s || d->count() > max_s) {
          issues.add(value, key, fmt::format("expected a duration between {}s and {}s (\"30s\", \"2m\")", min_s, max_s));
        } else {
          out = *d;
        }
      };
      auto count_key = [&](std::size_t& out, long long min_v, long long max_v) {
        const auto v = yaml_int(value);
        if (!v || *v < min_v || *v > max_v) {
          issues.add(value, key, fmt::format("expected a number between {} and {}", min_v, max_v));
        } else {
          out = static_cast<std::size_t>(*v);
        }
      };
      auto string_list = [&](std::vector<std::string>& out) -> bool {
        if (!value.IsSequence()) {
          issues.add(value, key, "expected a list of strings");
          return false;
        }
        std::vector<std::string> items;
        for (const auto& item : value) {
          if (!item.IsScalar() || item.Scalar().empty()) {
            issues.add(item, key, "expected a non-empty string");
            return false;
          }
          items.push_back(item.Scalar());
        }
        out = std::move(items);
        return true;
      };
      auto path_key = [&](std::filesystem::path& out) {
        if (!value.IsScalar() || value.Scalar().empty() || value.Scalar()[0] != '/') {
          issues.add(value, key, "expected an absolute path");
        } else {
          out = value.Scalar();
        }
      };

      if (key == "listen") {
        if (!value.IsScalar()) {
          issues.add(value, key, "expected HOST:PORT");
          continue;
        }
        auto parsed = parse_listen_address(value.Scalar());
        if (!parsed) {
          issues.add(value, key, parsed.error().message);
        } else {
          config.listen_host = parsed->first;
          config.listen_port = parsed->second;
        }
      } else if (key == "token_file") {
        path_key(config.token_file);
      } else if (key == "export_pools") {
        std::vector<std::string> pools;
        if (string_list(pools)) {
          for (const auto& pool : pools) {
            if (auto valid = validate_dataset_name(pool); !valid || pool.find('/') != std::string::npos ||
                                                          pool.find('@') != std::string::npos) {
              issues.add(value, key, fmt::format("invalid pool name '{}'", printable(pool)));
            }
          }
          config.export_pools = std::move(pools);
        }
      } else if (key == "shutdown_command") {
        // A list (argv) or, as in hozo.yaml, one string split into words (never a shell).
        std::vector<std::string> argv;
        if (value.IsScalar()) {
          auto split = split_command(value.Scalar());
          if (!split) {
            issues.add(value, key, split.error().message);
            continue;
          }
          argv = std::move(split).value();
        } else if (!string_list(argv)) {
          continue;
        }
        if (argv.empty()) {
          issues.add(value, key, "must not be empty");
        } else {
          config.shutdown_command = std::move(argv);
        }
      } else if (key == "shutdown_delay") {
        duration_key(config.shutdown_delay, 0, 3600);
      } else if (key == "command_timeout") {
        duration_key(config.command_timeout, 1, 3600);
      } else if (key == "spinup_timeout") {
        duration_key(config.spinup_timeout, 1, 600);
      } else if (key == "max_body") {
        count_key(config.payload_max, 0, 1 << 20);
      } else if (key == "read_timeout") {
        duration_key(config.read_timeout, 1, 300);
      } else if (key == "request_timeout") {
        duration_key(config.request_timeout, 1, 600);
      } else if (key == "keep_alive_max") {
        count_key(config.keep_alive_max, 1, 10000);
      } else if (key == "max_connections") {
        count_key(config.max_connections, 1, 1000);
      } else if (key == "max_connections_per_ip") {
        count_key(config.max_connections_per_ip, 1, 1000);
      } else if (key == "connection_memory") {
        count_key(config.connection_memory, 8 * 1024, 1 << 20);
      } else if (key == "write_timeout" || key == "keep_alive_timeout") {
        std::chrono::seconds ignored{};
        duration_key(ignored, 1, 300);
        config.ignored_keys.push_back(key + " (read_timeout covers reading, writing and idle keep-alive)");
      } else if (key == "threads" || key == "max_queued") {
        std::size_t ignored = 0;
        count_key(ignored, 1, 100000);
        config.ignored_keys.push_back(key + " (each connection has its own thread: see max_connections)");
      } else if (key == "sys_block") {
        path_key(config.disk.sys_block);
      } else if (key == "dev_root") {
        path_key(config.disk.dev);
      } else if (key == "proc_root") {
        path_key(config.proc_root);
      } else {
        std::string message = "unknown key";
        if (auto guess = did_you_mean(key, kKeys)) message += fmt::format(" (did you mean '{}'?)", *guess);
        issues.add(entry.first, printable(key), message);
      }
    }
  } catch (const YAML::Exception& e) {
    issues.lines.push_back(fmt::format("{}:{}:{}: {}", file_name, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  problems.insert(problems.end(), issues.lines.begin(), issues.lines.end());
  return config;
}

Result<BackupdConfig> load_backupd_config(const std::filesystem::path& path) {
  auto text = read_file(path);
  if (!text) return make_error(ExitCode::config, "{}", text.error().message);
  return parse_backupd_config(*text, path.string());
}

Result<Secret> load_backupd_token(const BackupdConfig& config) {
  std::filesystem::path file = config.token_file;
  std::string origin;
  if (file.empty()) {
    const char* creds = std::getenv("CREDENTIALS_DIRECTORY");
    if (creds == nullptr || *creds == '\0') return Secret{};
    file = std::filesystem::path(creds) / "backupd-token";
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) return Secret{};
    origin = "credential backupd-token";
  } else {
    origin = "file " + file.string();
  }
  auto text = read_file(file);
  if (!text) return make_error(ExitCode::config, "token: {}", text.error().message);
  const auto token = trim(*text);
  if (token.empty()) return make_error(ExitCode::config, "token: {} is empty", file.string());
  if (token.size() < 16) return make_error(ExitCode::config, "token: {} is too short (16 characters at least)", file.string());
  for (const char c : token) {
    if (c <= ' ' || c == 0x7f) return make_error(ExitCode::config, "token: {} contains whitespace or control characters", file.string());
  }
  return Secret(std::string(token), origin);
}

Result<std::vector<std::string>> split_command(std::string_view text) {
  std::vector<std::string> argv;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (const char c : text) {
    if (quote != 0) {
      if (c == quote) {
        quote = 0;
      } else {
        word.push_back(c);
      }
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == ' ' || c == '\t') {
      if (in_word) argv.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else if (std::string_view("|&;<>()$`\\*?[]{}~#!\n\r").find(c) != std::string_view::npos) {
      return make_error(ExitCode::config,
                        "'{}' is shell syntax, and backupd runs no shell: write the command as a list, "
                        "e.g. [systemctl, poweroff]",
                        printable(std::string_view(&c, 1)));
    } else if (static_cast<unsigned char>(c) < 0x20) {
      return make_error(ExitCode::config, "control character in the command");
    } else {
      word.push_back(c);
      in_word = true;
    }
  }
  if (quote != 0) return make_error(ExitCode::config, "unterminated {} quote", quote == '"' ? "double" : "single");
  if (in_word) argv.push_back(std::move(word));
  return argv;
}

namespace {

/// The file the token comes from (token_file, else the systemd credential), if any.
std::filesystem::path token_path(const BackupdConfig& config) {
  if (!config.token_file.empty()) return config.token_file;
  const char* creds = std::getenv("CREDENTIALS_DIRECTORY");
  if (creds == nullptr || *creds == '\0') return {};
  return std::filesystem::path(creds) / "backupd-token";
}

bool is_loopback(std::string_view host) {
  return host == "localhost" || host == "::1" || starts_with(host, "127.") || host == "::ffff:127.0.0.1";
}

}  // namespace

BackupdCheck check_backupd(const BackupdConfig& config, const Result<Secret>& token) {
  BackupdCheck check;
  if (!token) {
    check.problems.push_back(token.error().message);
  } else if (token->empty()) {
    check.problems.push_back(
        "token: none configured (set token_file, or LoadCredential=backupd-token as in backupd.service); "
        "without it only /ping is served and hozo cannot power the box off through backupd");
  }
  if (const auto path = token_path(config); !path.empty()) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      check.warnings.push_back(fmt::format(
          "token: {} is readable by {} (mode {:04o}): anyone who can read it can power the box off; "
          "run: chmod 600 {}",
          path.string(), (st.st_mode & 007) != 0 ? "every user" : "its group", st.st_mode & 07777, path.string()));
    }
  }
  if (!is_loopback(config.listen_host)) {
    check.warnings.push_back(fmt::format(
        "listen: {} is not a loopback address and backupd speaks plain HTTP: the token crosses the network "
        "in clear text; allow only the machine running hozo in the box's firewall",
        config.listen_host));
  }
  for (const auto& key : config.ignored_keys) check.warnings.push_back(fmt::format("{}: no longer has an effect", key));
  return check;
}

}  // namespace hozo
