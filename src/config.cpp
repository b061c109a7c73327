#include "hozo/config.hpp"

#include "config_values.hpp"
#include "config_yaml.hpp"

#include <unistd.h>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <system_error>

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "hozo/schedule.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/util/time.hpp"

namespace hozo {

namespace {

using namespace config_detail;

// ---------------------------------------------------------------------------------------------
// Reading values out of the YAML tree.
// ---------------------------------------------------------------------------------------------

/// Collected issues and notices of one parse.
struct Ctx {
  std::string file;
  std::vector<ConfigIssue> issues;
  std::vector<std::string> notices;
  std::vector<std::filesystem::path> inputs;  ///< the files read (Config::inputs)

  SourceLocation where(const YAML::Mark& m) const {
    if (m.is_null()) return {file, 0, 0};
    return {file, m.line + 1, m.column + 1};
  }
  void add(const YAML::Mark& m, std::string path, std::string message) {
    issues.push_back({where(m), std::move(path), std::move(message), Severity::error, {}});
  }
};

const char* kind_name(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
      return "nothing";
    default:
      return "a single value";
  }
}

/// What a string value may contain.
enum class Text {
  line,      ///< one line: no control characters except tab (used in commands, paths, ...)
  multiline  ///< descriptions: line breaks allowed, still no NUL
};

/// Whether a list-valued key also accepts a single scalar as a one-element list.
enum class Single { allowed, rejected };

/// One value in the file: its node, its dotted path and the shared context.
class Field {
 public:
  Field(Ctx& ctx, YAML::Node node, std::string path) : ctx_(ctx), node_(std::move(node)), path_(std::move(path)) {}

  Ctx& ctx() const { return ctx_; }
  const YAML::Node& node() const { return node_; }
  const std::string& path() const { return path_; }
  /// True for `key:` / `key: ~`: the key is treated as absent (the default or inherited value stays).
  bool unset() const { return node_.IsNull(); }

  /// Records an issue at this value.
  void error(std::string message) const { ctx_.add(node_.Mark(), path_, std::move(message)); }

  /// A child field (mapping key or list index).
  Field child(YAML::Node node, std::string_view key) const {
    return {ctx_, std::move(node), path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key)};
  }
  Field item(YAML::Node node, std::size_t index) const {
    return {ctx_, std::move(node), fmt::format("{}[{}]", path_, index)};
  }

  /// The scalar text; false (after recording an issue unless unset) when there is none.
  bool scalar(std::string& out, std::string_view expected, Text text = Text::line) const {
    if (unset()) return false;
    if (!node_.IsScalar()) {
      error(fmt::format("expected {}, got {}", expected, kind_name(node_)));
      return false;
    }
    const std::string& s = node_.Scalar();
    for (const char c : s) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '\0') {
        error("contains a NUL character");
        return false;
      }
      if (text == Text::line && (u < 0x20 || u == 0x7f) && c != '\t') {
        error(c == '\n' || c == '\r' ? "must be a single line" : "contains a control character");
        return false;
      }
    }
    out = s;
    return true;
  }

  /// A string, validated by `check`.
  bool string(std::string& out, Check check = nullptr, Text text = Text::line) const {
    std::string v;
    if (!scalar(v, "a string", text)) return false;
    if (check != nullptr) {
      if (auto err = check(v)) {
        error(std::move(*err));
        return false;
      }
    }
    out = std::move(v);
    return true;
  }

  /// A path; a leading "~/" is expanded with $HOME.
  bool file_path(std::string& out, Check check) const {
    std::string v;
    if (!string(v, check)) return false;
    out = v.starts_with("~/") ? expand_home(v).string() : v;
    return true;
  }

  bool integer(long long& out, long long lo, long long hi) const {
    std::string v;
    if (!scalar(v, "an integer")) return false;
    const auto t = trim(v);
    const auto n = parse_int(t);
    const bool digits = !t.empty() && std::all_of(t.begin() + (t.front() == '-' ? 1 : 0), t.end(), [](char c) {
      return c >= '0' && c <= '9';
    }) && t != "-";
    if (!digits) {
      error(fmt::format("expected an integer, got {}", show(v)));
      return false;
    }
    if (!n || *n < lo || *n > hi) {
      error(fmt::format("{} is out of range ({}..{})", show(t), lo, hi));
      return false;
    }
    out = *n;
    return true;
  }

  template <typename Int>
  void number(Int& out, long long lo, long long hi) const {
    long long v = 0;
    if (integer(v, lo, hi)) out = static_cast<Int>(v);
  }

  void boolean(bool& out) const {
    std::string v;
    if (!scalar(v, "true or false")) return;
    const auto l = to_lower(trim(v));
    if (l == "true" || l == "yes" || l == "on") {
      out = true;
    } else if (l == "false" || l == "no" || l == "off") {
      out = false;
    } else {
      error(fmt::format("expected true or false, got {}", show(v)));
    }
  }

  /// "90", "90s", "5m", "6h", "1d", "1h30m" within [lo, hi] seconds.
  void duration(std::chrono::seconds& out, long long lo, long long hi) const {
    std::string v;
    if (!scalar(v, "a duration")) return;
    const auto d = parse_duration(v);
    if (!d) {
      error(fmt::format("invalid duration {} (expected e.g. 90, 90s, 5m, 6h, 1d)", show(v)));
    } else if (d->count() < lo || d->count() > hi) {
      error(fmt::format("duration {} is out of range ({}s..{}s)", show(v), lo, hi));
    } else {
      out = *d;
    }
  }

  /// One of a fixed set of words.
  template <typename E>
  void choice(E& out, std::initializer_list<std::pair<std::string_view, E>> values) const {
    std::string v;
    if (!scalar(v, "a word")) return;
    std::vector<std::string> names;
    for (const auto& [name, value] : values) {
      if (v == name) {
        out = value;
        return;
      }
      names.emplace_back(name);
    }
    std::string msg = fmt::format("invalid value {} (one of {})", show(v), join(names, ", "));
    if (const auto hint = did_you_mean(v, names)) msg += fmt::format("; did you mean \"{}\"?", *hint);
    error(std::move(msg));
  }

  /// A list of strings, each validated by `check`.
  void list(std::vector<std::string>& out, Check check, Single single) const {
    if (unset()) return;
    if (node_.IsScalar() && single == Single::allowed) {
      std::string v;
      if (string(v, check)) out = {v};
      return;
    }
    if (!node_.IsSequence()) {
      error(fmt::format("expected a list, got {}", kind_name(node_)));
      return;
    }
    std::vector<std::string> values;
    bool good = true;
    std::size_t i = 0;
    for (const auto& element : node_) {
      std::string v;
      const Field f = item(element, i++);
      if (f.unset()) {
        f.error("empty list item");
        good = false;
      } else if (f.string(v, check)) {
        values.push_back(std::move(v));
      } else {
        good = false;
      }
    }
    if (good) out = std::move(values);
  }

  /// An inline secret.
  void secret(Secret& out, Check check) const {
    std::string v;
    if (string(v, check)) out = Secret(std::move(v), "inline");
  }

  /// A secret read from a file (relative paths: $CREDENTIALS_DIRECTORY when set). Never prints it.
  void secret_file(Secret& out, Check check) const {
    std::string name;
    if (!string(name, check_path)) return;
    std::filesystem::path file = name.starts_with("~/") ? expand_home(name) : std::filesystem::path(name);
    std::string origin = fmt::format("file {}", file.string());
    const char* creds = std::getenv("CREDENTIALS_DIRECTORY");
    if (file.is_relative() && creds != nullptr && *creds != '\0') {
      file = std::filesystem::path(creds) / file;
      origin = fmt::format("credential {}", name);
    }
    if (std::find(ctx_.inputs.begin(), ctx_.inputs.end(), file) == ctx_.inputs.end()) ctx_.inputs.push_back(file);
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) {
      error(fmt::format("cannot read secret: {} does not exist", file.string()));
      return;
    }
    if (!std::filesystem::is_regular_file(file, ec)) {
      error(fmt::format("cannot read secret: {} is not a regular file", file.string()));
      return;
    }
    if (std::filesystem::file_size(file, ec) > 64 * 1024) {
      error(fmt::format("cannot read secret: {} is larger than 64 KiB", file.string()));
      return;
    }
    auto content = read_file(file);
    if (!content) {
      error(fmt::format("cannot read secret: {}", content.error().message));
      return;
    }
    std::string value = std::move(*content);
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
    if (value.empty()) {
      error(fmt::format("secret file {} is empty", file.string()));
    } else if (std::any_of(value.begin(), value.end(), [](char c) {
                 const auto u = static_cast<unsigned char>(c);
                 return (u < 0x20 && c != '\t') || u == 0x7f;
               })) {
      error(fmt::format("secret file {} must hold a single line", file.string()));
    } else if (check != nullptr && check(value)) {
      error(fmt::format("secret in {}: {}", file.string(), *check(value)));
    } else {
      out = Secret(std::move(value), std::move(origin));
    }
  }

 private:
  Ctx& ctx_;
  YAML::Node node_;
  std::string path_;
};

// ---------------------------------------------------------------------------------------------
// Key tables: one row per accepted key.
// ---------------------------------------------------------------------------------------------

/// Where a key may appear.
enum class Scope { job, settings, both };

/// One accepted key of a mapping: name, where it may appear, and how to read it into T.
/// Keys sharing a non-empty `group` are alternatives (aliases, x / x_file): at most one per mapping.
template <typename T>
struct KeyRule {
  std::string_view name;
  Scope scope;
  void (*read)(const Field&, T&);
  std::string_view group = {};
};

template <typename T>
using Rules = std::vector<KeyRule<T>>;

bool allowed_in(Scope rule, Scope here) { return rule == Scope::both || here == Scope::both || rule == here; }

/// Reads every key of a mapping through `rules`: unknown keys (with a hint), keys in the wrong
/// place, duplicates and conflicting alternatives are issues.
template <typename T>
void read_mapping(const Field& f, const Rules<T>& rules, T& target, Scope here = Scope::both,
                  std::set<std::string>* present = nullptr) {
  if (f.unset()) return;
  if (!f.node().IsMap()) {
    f.error(fmt::format("expected a mapping, got {}", kind_name(f.node())));
    return;
  }
  std::set<std::string> seen_keys;
  std::map<std::string_view, std::string_view> seen_groups;  // group -> key that used it
  for (const auto& kv : f.node()) {
    const YAML::Node key_node = kv.first;
    if (!key_node.IsScalar()) {
      f.ctx().add(key_node.Mark(), f.path(), "keys must be plain words");
      continue;
    }
    const std::string key = key_node.Scalar();
    const Field value = f.child(kv.second, printable(key));
    const auto key_error = [&](std::string message) { f.ctx().add(key_node.Mark(), value.path(), std::move(message)); };
    if (seen_keys.contains(key)) {
      key_error("duplicate key");
      continue;
    }
    seen_keys.insert(key);
    const auto rule = std::find_if(rules.begin(), rules.end(), [&](const KeyRule<T>& r) {
      return r.name == key || (r.name.ends_with('*') && key.starts_with(r.name.substr(0, r.name.size() - 1)));
    });
    if (rule == rules.end()) {
      std::vector<std::string> candidates;
      for (const auto& r : rules) {
        if (allowed_in(r.scope, here) && !r.name.ends_with('*')) candidates.emplace_back(r.name);
      }
      std::string message = fmt::format("unknown key {}", show(key));
      if (const auto hint = did_you_mean(key, candidates)) message += fmt::format(" (did you mean \"{}\"?)", *hint);
      key_error(std::move(message));
      continue;
    }
    if (!allowed_in(rule->scope, here)) {
      key_error(rule->scope == Scope::job ? "only allowed in a job entry, not in settings"
                                          : "only allowed in settings, not in a job entry");
      continue;
    }
    if (!rule->group.empty()) {
      const auto [it, inserted] = seen_groups.emplace(rule->group, rule->name);
      if (!inserted) {
        key_error(fmt::format("\"{}\" and \"{}\" are both given; use only one", it->second, rule->name));
        continue;
      }
    }
    rule->read(value, target);
    if (present != nullptr && !value.unset()) present->emplace(rule->group.empty() ? rule->name : rule->group);
  }
}

// --- nested blocks ---------------------------------------------------------------------------

const Rules<SmtpSettings>& smtp_rules() {
  static const Rules<SmtpSettings> rules{
      {"host", Scope::both, [](const Field& f, SmtpSettings& s) { f.string(s.host, check_optional_host); }},
      {"port", Scope::both, [](const Field& f, SmtpSettings& s) { f.number(s.port, 1, 65535); }},
      {"user", Scope::both, [](const Field& f, SmtpSettings& s) { f.string(s.user); }},
      {"password", Scope::both, [](const Field& f, SmtpSettings& s) { f.secret(s.password, nullptr); }, "password"},
      {"password_file", Scope::both, [](const Field& f, SmtpSettings& s) { f.secret_file(s.password, nullptr); },
       "password"},
      {"from_addr", Scope::both, [](const Field& f, SmtpSettings& s) { f.string(s.from_addr, check_email); }},
      {"to_addr", Scope::both,
       [](const Field& f, SmtpSettings& s) { f.list(s.to_addr, check_email, Single::allowed); }},
      {"use_tls", Scope::both, [](const Field& f, SmtpSettings& s) { f.boolean(s.use_tls); }},
  };
  return rules;
}

const Rules<NotificationSettings>& notification_rules() {
  using N = NotificationSettings;
  static const Rules<N> rules{
      {"notify_on", Scope::both,
       [](const Field& f, N& n) {
         std::vector<std::string> words;
         f.list(words, nullptr, Single::allowed);
         if (f.unset() || (words.empty() && !f.node().IsSequence())) return;
         std::vector<NotifyOn> on;
         for (const auto& w : words) {
           if (w == "success") {
             on.push_back(NotifyOn::success);
           } else if (w == "failure") {
             on.push_back(NotifyOn::failure);
           } else {
             f.error(fmt::format("invalid value {} (success, failure)", show(w)));
             return;
           }
         }
         n.notify_on = on;
       }},
      {"ntfy_server", Scope::both, [](const Field& f, N& n) { f.string(n.ntfy_server, check_url); }},
      {"ntfy_topic", Scope::both, [](const Field& f, N& n) { f.string(n.ntfy_topic, check_ntfy_topic); }},
      {"ntfy_token", Scope::both, [](const Field& f, N& n) { f.secret(n.ntfy_token, check_token); }, "ntfy_token"},
      {"ntfy_token_file", Scope::both, [](const Field& f, N& n) { f.secret_file(n.ntfy_token, check_token); },
       "ntfy_token"},
      {"pushover_token", Scope::both, [](const Field& f, N& n) { f.secret(n.pushover_token, check_pushover_key); },
       "pushover_token"},
      {"pushover_token_file", Scope::both,
       [](const Field& f, N& n) { f.secret_file(n.pushover_token, check_pushover_key); }, "pushover_token"},
      {"pushover_user", Scope::both, [](const Field& f, N& n) { f.secret(n.pushover_user, check_pushover_key); },
       "pushover_user"},
      {"pushover_user_file", Scope::both,
       [](const Field& f, N& n) { f.secret_file(n.pushover_user, check_pushover_key); }, "pushover_user"},
      {"pushover_url", Scope::both, [](const Field& f, N& n) { f.string(n.pushover_url, check_url); }},
      {"smtp", Scope::both,
       [](const Field& f, N& n) {
         if (f.unset()) return;
         SmtpSettings merged = n.smtp.value_or(SmtpSettings{});
         const auto before = f.ctx().issues.size();
         read_mapping(f, smtp_rules(), merged);
         if (f.ctx().issues.size() != before) return;
         if (merged.host.empty()) {  // no host: SMTP off (lets a job switch it off with host: "")
           n.smtp.reset();
           return;
         }
         if (merged.from_addr.empty()) f.error("from_addr is required when host is set");
         if (merged.to_addr.empty()) f.error("to_addr is required when host is set");
         n.smtp = std::move(merged);
       }},
      {"healthchecks_url", Scope::both, [](const Field& f, N& n) { f.string(n.healthchecks_url, check_optional_url); }},
      {"webhook_url", Scope::both, [](const Field& f, N& n) { f.string(n.webhook_url, check_optional_url); }},
      {"timeout", Scope::both, [](const Field& f, N& n) { f.duration(n.timeout, 1, 300); }},
  };
  return rules;
}

const Rules<SyncoidSettings>& syncoid_rules() {
  using S = SyncoidSettings;
  static const Rules<S> rules{
      {"path", Scope::both, [](const Field& f, S& s) { f.file_path(s.path, check_program); }},
      {"compress", Scope::both, [](const Field& f, S& s) { f.string(s.compress, check_compress); }},
      {"source_bwlimit", Scope::both, [](const Field& f, S& s) { f.string(s.source_bwlimit, check_bwlimit); }},
      {"target_bwlimit", Scope::both, [](const Field& f, S& s) { f.string(s.target_bwlimit, check_bwlimit); }},
      {"identifier", Scope::both, [](const Field& f, S& s) { f.string(s.identifier, check_identifier); }},
      {"exclude", Scope::both, [](const Field& f, S& s) { f.list(s.exclude, check_nonempty, Single::allowed); }},
      {"create_bookmark", Scope::both,
       [](const Field& f, S& s) {
         f.boolean(s.create_bookmark);
         s.create_bookmark_set = true;
       }},
      {"no_sync_snap", Scope::both, [](const Field& f, S& s) { f.boolean(s.no_sync_snap); }},
      {"sendoptions", Scope::both, [](const Field& f, S& s) { f.string(s.sendoptions); }},
      {"recvoptions", Scope::both, [](const Field& f, S& s) { f.string(s.recvoptions); }},
      {"extra_args", Scope::both, [](const Field& f, S& s) { f.list(s.extra_args, check_nonempty, Single::rejected); }},
      {"timeout", Scope::both, [](const Field& f, S& s) { f.duration(s.timeout, 1, 30LL * 86400); }},
  };
  return rules;
}

const Rules<WolRelay>& relay_rules() {
  static const Rules<WolRelay> rules{
      {"host", Scope::both, [](const Field& f, WolRelay& r) { f.string(r.host, check_host); }},
      {"user", Scope::both, [](const Field& f, WolRelay& r) { f.string(r.user, check_user); }},
      {"port", Scope::both, [](const Field& f, WolRelay& r) { f.number(r.port, 1, 65535); }},
      {"ssh_key", Scope::both, [](const Field& f, WolRelay& r) { f.file_path(r.ssh_key, check_optional_abs_path); }},
      {"command", Scope::both,
       [](const Field& f, WolRelay& r) {
         std::vector<std::string> argv;
         f.list(argv, check_nonempty, Single::rejected);
         if (argv.empty() && !f.unset() && f.node().IsSequence()) f.error("must not be empty");
         if (!argv.empty()) r.command = std::move(argv);
       }},
  };
  return rules;
}

const Rules<AgentSettings>& agent_rules() {
  static const Rules<AgentSettings> rules{
      {"url", Scope::both, [](const Field& f, AgentSettings& a) { f.string(a.url, check_url); }},
      {"token", Scope::both, [](const Field& f, AgentSettings& a) { f.secret(a.token, check_token); }, "token"},
      {"token_file", Scope::both, [](const Field& f, AgentSettings& a) { f.secret_file(a.token, check_token); },
       "token"},
  };
  return rules;
}

const Rules<ServeSettings>& serve_rules() {
  static const Rules<ServeSettings> rules{
      {"listen", Scope::both, [](const Field& f, ServeSettings& s) { f.string(s.listen, check_nonempty); }},
      {"password_hash_file", Scope::both,
       [](const Field& f, ServeSettings& s) { f.file_path(s.password_hash_file, check_optional_abs_path); }},
      {"token_file", Scope::both, [](const Field& f, ServeSettings& s) { f.secret_file(s.token, check_token); }},
      {"secure_cookies", Scope::both, [](const Field& f, ServeSettings& s) { f.boolean(s.secure_cookies); }},
      {"session_lifetime", Scope::both,
       [](const Field& f, ServeSettings& s) { f.duration(s.session_lifetime, 60, 30 * 86400); }},
      {"metrics_textfile", Scope::both,
       [](const Field& f, ServeSettings& s) { f.file_path(s.metrics_textfile, check_optional_abs_path); }},
  };
  return rules;
}

/// A datasets: entry before the job's own `recursive` is known.
struct PairDraft {
  std::string source;
  std::string target;
  std::optional<bool> recursive;
  YAML::Mark mark;
  std::string path;
};

const Rules<PairDraft>& pair_rules() {
  static const Rules<PairDraft> rules{
      {"source", Scope::both, [](const Field& f, PairDraft& p) { f.string(p.source, check_dataset); }, "source"},
      {"source_dataset", Scope::both, [](const Field& f, PairDraft& p) { f.string(p.source, check_dataset); },
       "source"},
      {"target", Scope::both, [](const Field& f, PairDraft& p) { f.string(p.target, check_dataset); }, "target"},
      {"target_dataset", Scope::both, [](const Field& f, PairDraft& p) { f.string(p.target, check_dataset); },
       "target"},
      {"recursive", Scope::both,
       [](const Field& f, PairDraft& p) {
         bool r = true;
         const auto before = f.ctx().issues.size();
         f.boolean(r);
         if (!f.unset() && f.ctx().issues.size() == before) p.recursive = r;
       }},
  };
  return rules;
}

// --- jobs and settings -----------------------------------------------------------------------

/// A job (or the settings defaults) while it is being read.
struct Draft {
  Job job;
  bool wol = true;
  bool recursive = true;
  std::optional<std::string> source;
  std::optional<std::string> target;
  std::optional<std::vector<PairDraft>> datasets;
  std::size_t history = 50;
  std::size_t log_keep = 20;
  std::set<std::string> present;  ///< keys given with a value (valid or not), aliases by group name
};

/// Reads a nested block into an optional struct, merging with what is already there.
template <typename T>
void read_optional_block(const Field& f, const Rules<T>& rules, std::optional<T>& target) {
  if (f.unset()) return;
  T merged = target.value_or(T{});
  read_mapping(f, rules, merged);
  target = std::move(merged);
}

const Rules<Draft>& job_rules() {
  static const Rules<Draft> rules{
      // Per job only.
      {"name", Scope::job, [](const Field& f, Draft& d) { f.string(d.job.name, check_job_name); }},
      {"description", Scope::job,
       [](const Field& f, Draft& d) { f.string(d.job.description, nullptr, Text::multiline); }},
      {"source_dataset", Scope::job,
       [](const Field& f, Draft& d) {
         std::string v;
         if (f.string(v, check_dataset)) d.source = v;
       },
       "source_dataset"},
      {"source", Scope::job,
       [](const Field& f, Draft& d) {
         std::string v;
         if (f.string(v, check_dataset)) d.source = v;
       },
       "source_dataset"},
      {"target_dataset", Scope::job,
       [](const Field& f, Draft& d) {
         std::string v;
         if (f.string(v, check_dataset)) d.target = v;
       },
       "target_dataset"},
      {"datasets", Scope::job,
       [](const Field& f, Draft& d) {
         if (f.unset()) return;
         if (!f.node().IsSequence()) {
           f.error(fmt::format("expected a list of {{source, target, recursive}}, got {}", kind_name(f.node())));
           return;
         }
         std::vector<PairDraft> pairs;
         std::size_t i = 0;
         for (const auto& element : f.node()) {
           const Field entry = f.item(element, i++);
           PairDraft p;
           p.mark = element.Mark();
           p.path = entry.path();
           const auto before = f.ctx().issues.size();
           read_mapping(entry, pair_rules(), p);
           if (f.ctx().issues.size() != before) continue;
           if (entry.unset() || p.source.empty()) entry.error("source: required key missing");
           if (entry.unset() || p.target.empty()) entry.error("target: required key missing");
           pairs.push_back(std::move(p));
         }
         if (pairs.empty() && i == 0) f.error("must list at least one dataset");
         d.datasets = std::move(pairs);
       }},
      // Per job, or as a default in settings.
      {"target_host", Scope::both, [](const Field& f, Draft& d) { f.string(d.job.target_host, check_host); }},
      {"mac_address", Scope::both,
       [](const Field& f, Draft& d) {
         std::string v;
         if (f.string(v, check_mac)) d.job.mac_address = *normalize_mac(v);
       }},
      {"wol", Scope::both, [](const Field& f, Draft& d) { f.boolean(d.wol); }},
      {"ssh_user", Scope::both, [](const Field& f, Draft& d) { f.string(d.job.ssh_user, check_user); }},
      {"ssh_key", Scope::both, [](const Field& f, Draft& d) { f.file_path(d.job.ssh_key, check_optional_abs_path); }},
      {"ssh_port", Scope::both, [](const Field& f, Draft& d) { f.number(d.job.ssh_port, 1, 65535); }},
      {"known_hosts", Scope::both,
       [](const Field& f, Draft& d) { f.file_path(d.job.known_hosts, check_optional_abs_path); }},
      {"host_key_policy", Scope::both,
       [](const Field& f, Draft& d) {
         f.choice(d.job.host_key_policy,
                  {{"strict", HostKeyPolicy::strict}, {"accept-new", HostKeyPolicy::accept_new}});
       }},
      {"ssh_timeout", Scope::both, [](const Field& f, Draft& d) { f.duration(d.job.ssh_timeout, 1, 86400); }},
      {"ssh_connect_timeout", Scope::both,
       [](const Field& f, Draft& d) { f.duration(d.job.ssh_connect_timeout, 1, 3600); }},
      {"recursive", Scope::both, [](const Field& f, Draft& d) { f.boolean(d.recursive); }},
      {"shutdown_after", Scope::both, [](const Field& f, Draft& d) { f.boolean(d.job.shutdown_after); }},
      {"shutdown_command", Scope::both,
       [](const Field& f, Draft& d) { f.string(d.job.shutdown_command, check_nonempty); }},
      {"shutdown_only_if_woken", Scope::both,
       [](const Field& f, Draft& d) { f.boolean(d.job.shutdown_only_if_woken); }},
      {"hold_snapshots", Scope::both, [](const Field& f, Draft& d) { f.boolean(d.job.hold_snapshots); }},
      {"retries", Scope::both, [](const Field& f, Draft& d) { f.number(d.job.retries, 0, 100); }},
      {"retry_delay", Scope::both, [](const Field& f, Draft& d) { f.duration(d.job.retry_delay, 0, 86400); }},
      {"wol_broadcast", Scope::both, [](const Field& f, Draft& d) { f.string(d.job.wol_broadcast, check_host); },
       "wol_broadcast"},
      {"broadcast_ip", Scope::both, [](const Field& f, Draft& d) { f.string(d.job.wol_broadcast, check_host); },
       "wol_broadcast"},
      {"wol_port", Scope::both, [](const Field& f, Draft& d) { f.number(d.job.wol_port, 1, 65535); }},
      {"wol_interface", Scope::both, [](const Field& f, Draft& d) { f.string(d.job.wol_interface, check_interface); }},
      {"wol_repeat", Scope::both, [](const Field& f, Draft& d) { f.number(d.job.wol_repeat, 1, 100); }},
      {"wol_password", Scope::both, [](const Field& f, Draft& d) { f.secret(d.job.wol_password, check_secureon); },
       "wol_password"},
      {"wol_password_file", Scope::both,
       [](const Field& f, Draft& d) { f.secret_file(d.job.wol_password, check_secureon); }, "wol_password"},
      {"wol_relay", Scope::both,
       [](const Field& f, Draft& d) { read_optional_block(f, relay_rules(), d.job.wol_relay); }},
      {"no_privilege_elevation", Scope::both,
       [](const Field& f, Draft& d) { f.boolean(d.job.no_privilege_elevation); }},
      {"schedule", Scope::both, [](const Field& f, Draft& d) { f.string(d.job.schedule, check_schedule); }},
      {"overdue_after", Scope::both,
       [](const Field& f, Draft& d) { f.duration(d.job.overdue_after, 0, 366 * 86400); }},
      {"backup_device", Scope::both, [](const Field& f, Draft& d) { f.string(d.job.backup_device, check_device); }},
      {"disk_spinup_timeout", Scope::both,
       [](const Field& f, Draft& d) { f.duration(d.job.disk_spinup_timeout, 0, 3600); }},
      {"host_sharing", Scope::both,
       [](const Field& f, Draft& d) {
         f.choice(d.job.host_sharing, {{"concurrent", HostSharing::concurrent}, {"wait", HostSharing::wait}});
       }},
      {"host_lock_timeout", Scope::both,
       [](const Field& f, Draft& d) { f.duration(d.job.host_lock_timeout, 0, 7 * 86400); }},
      {"target_pool_import", Scope::both, [](const Field& f, Draft& d) { f.boolean(d.job.target_pool_import); }},
      {"target_pool_import_dirs", Scope::both,
       [](const Field& f, Draft& d) { f.list(d.job.target_pool_import_dirs, check_abs_dir, Single::allowed); }},
      {"agent", Scope::both, [](const Field& f, Draft& d) { read_optional_block(f, agent_rules(), d.job.agent); }},
      {"syncoid", Scope::both, [](const Field& f, Draft& d) { read_mapping(f, syncoid_rules(), d.job.syncoid); }},
      {"notifications", Scope::both,
       [](const Field& f, Draft& d) { read_mapping(f, notification_rules(), d.job.notifications); }},
      // settings only
      {"history", Scope::settings, [](const Field& f, Draft& d) { f.number(d.history, 1, 10000); }},
      {"log_keep", Scope::settings, [](const Field& f, Draft& d) { f.number(d.log_keep, 1, 10000); }},
  };
  return rules;
}

/// Cross-key checks once settings and the job entry are merged; fills job.datasets.
void finish_job(const Field& f, Draft& d, std::size_t issues_before) {
  Job& job = d.job;
  job.where = f.ctx().where(f.node().Mark());
  const auto missing = [&](const std::string& key) {
    if (d.present.contains(key)) return;  // given but invalid: already reported
    f.ctx().add(f.node().Mark(), fmt::format("{}.{}", f.path(), key), "required key missing");
  };
  if (job.name.empty()) missing("name");
  if (job.target_host.empty()) missing("target_host");
  if (!d.wol) {
    job.mac_address.clear();  // wol: false -> the box is woken some other way (or always on)
  } else if (job.mac_address.empty()) {
    missing("mac_address");
  }
  // Blocks that settings: may fill in partly are complete only after the merge. Skipped when
  // this job already has issues (an invalid host would otherwise also be reported missing).
  if (f.ctx().issues.size() == issues_before) {
    const auto block_missing = [&](std::string_view key) {
      f.ctx().add(f.node().Mark(), fmt::format("{}.{}", f.path(), key), "required key missing");
    };
    if (job.wol_relay && job.wol_relay->host.empty()) block_missing("wol_relay.host");
    if (job.agent && job.agent->url.empty()) block_missing("agent.url");
  }
  if (d.datasets) {
    if (d.source || d.target) {
      f.error("give either source_dataset/target_dataset or datasets, not both");
    }
    for (const auto& p : *d.datasets) {
      job.datasets.push_back({p.source, p.target, p.recursive.value_or(d.recursive)});
    }
  } else if (!d.present.contains("datasets")) {
    if (!d.source) missing("source_dataset");
    if (!d.target) missing("target_dataset");
    if (d.source && d.target) job.datasets.push_back({*d.source, *d.target, d.recursive});
  }
  // Two sources replicating into one target would overwrite each other.
  for (std::size_t i = 0; i < job.datasets.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (job.datasets[i].target == job.datasets[j].target) {
        f.error(fmt::format("target {} is used twice", show(job.datasets[i].target)));
      }
    }
  }
}

/// Likely mistakes spanning jobs: one box with two MACs, two jobs writing one target.
void cross_job_warnings(Ctx& ctx, const Config& cfg, const std::map<std::string, std::string>& paths) {
  const auto warn = [&](const Job& job, std::string_view key, std::string message) {
    const auto p = paths.find(job.name);
    ConfigIssue issue{job.where, fmt::format("{}.{}", p == paths.end() ? "jobs" : p->second, key), std::move(message),
                      Severity::warning, job.name};
    ctx.issues.push_back(std::move(issue));
  };
  // Only jobs to the same box are compared: the earlier jobs of each host, in file order.
  std::map<std::string, std::vector<std::size_t>> earlier_by_host;
  for (std::size_t i = 0; i < cfg.jobs.size(); ++i) {
    const Job& b = cfg.jobs[i];
    auto& earlier = earlier_by_host[to_lower(b.target_host)];
    for (const std::size_t k : earlier) {
      const Job& a = cfg.jobs[k];
      if (!a.mac_address.empty() && !b.mac_address.empty() && a.mac_address != b.mac_address && !a.wol_relay &&
          !b.wol_relay) {
        warn(b, "mac_address",
             fmt::format("box {} is woken with MAC {} here but with {} by job \"{}\" (line {}); one of them is "
                         "probably wrong",
                         b.target_host, b.mac_address, a.mac_address, a.name, a.where.line));
      }
      for (const auto& pb : b.datasets) {
        for (const auto& pa : a.datasets) {
          if (pa.target != pb.target) continue;
          if (pa.source == pb.source) {
            warn(b, "target_dataset",
                 fmt::format("copies {} to {}:{} like job \"{}\" (line {}) already does", pb.source, b.target_host,
                             pb.target, a.name, a.where.line));
          } else {
            warn(b, "target_dataset",
                 fmt::format("writes {} to {}:{}, where job \"{}\" (line {}) writes {}: each run would roll the "
                             "other's data back",
                             pb.source, b.target_host, pb.target, a.name, a.where.line, pa.source));
          }
        }
      }
    }
    earlier.push_back(i);
  }
}

const Rules<Config>& top_rules() {
  static const Rules<Config> rules{
      {"settings", Scope::both, [](const Field&, Config&) {}},
      {"jobs", Scope::both, [](const Field&, Config&) {}},
      {"auth", Scope::both, [](const Field&, Config&) {}},
      {"x-*", Scope::both, [](const Field&, Config&) {}},  // free for anchors (`x-defaults: &d`)
      {"serve", Scope::both, [](const Field& f, Config& c) { read_mapping(f, serve_rules(), c.serve); }},
  };
  return rules;
}

/// Validates the document root into `cfg`; problems go to ctx.issues.
void read_root(Ctx& ctx, const YAML::Node& root, Config& cfg) {
  const Field top(ctx, root, "");
  if (!root.IsMap()) {
    if (root.IsNull()) {
      ctx.add(root.Mark(), "", "the configuration is empty (expected settings: and jobs:)");
    } else {
      ctx.add(root.Mark(), "",
              fmt::format("the top level must be a mapping with settings: and jobs:, got {}", kind_name(root)));
    }
    return;
  }
  read_mapping(top, top_rules(), cfg);  // unknown/duplicate top-level keys

  // std::optional: assigning to a YAML::Node would overwrite the node it refers to.
  std::optional<YAML::Node> settings_node;
  std::optional<YAML::Node> jobs_node;
  for (const auto& kv : root) {
    if (!kv.first.IsScalar()) continue;
    const auto& key = kv.first.Scalar();
    if (key == "settings" && !settings_node) settings_node.emplace(kv.second);
    if (key == "jobs" && !jobs_node) jobs_node.emplace(kv.second);
    if (key == "auth") {
      cfg.notices.push_back(ConfigIssue{ctx.where(kv.first.Mark()), "auth",
                                        "ignored (web login of the Python Hōzō; use serve.password_hash_file)",
                                        Severity::error, {}}
                                .to_string());
    }
  }

  Draft base;
  if (settings_node) {
    read_mapping(Field(ctx, *settings_node, "settings"), job_rules(), base, Scope::settings, &base.present);
  }
  cfg.history_limit = base.history;
  cfg.log_keep = base.log_keep;

  if (!jobs_node) {
    ctx.add(root.Mark(), "jobs", "required key missing (a list of backup jobs)");
    return;
  }
  const Field jobs(ctx, *jobs_node, "jobs");
  if (jobs.unset()) {
    cfg.notices.push_back("no jobs defined");
    return;
  }
  if (!jobs.node().IsSequence()) {
    jobs.error(fmt::format("expected a list of jobs, got {}", kind_name(jobs.node())));
    return;
  }
  if (jobs.node().size() == 0) cfg.notices.push_back("no jobs defined");
  std::map<std::string, int> first_line;  // job name -> line of its first definition
  std::set<std::string> duplicated;
  std::map<std::string, std::string> paths;  // job name -> "jobs[N]"
  std::size_t index = 0;
  for (const auto& element : jobs.node()) {
    const Field entry = jobs.item(element, index);
    const std::string fallback_label = entry.path();
    ++index;
    if (!element.IsMap()) {
      entry.error(fmt::format("expected a job mapping (name, source_dataset, ...), got {}", kind_name(element)));
      ctx.issues.back().job = fallback_label;
      cfg.broken_jobs.push_back({fallback_label, ctx.where(element.Mark()), {}});
      continue;
    }
    Draft d = base;
    d.job.index = index - 1;
    const auto issues_before = ctx.issues.size();
    read_mapping(entry, job_rules(), d, Scope::job, &d.present);
    finish_job(entry, d, issues_before);
    if (!d.job.name.empty()) {
      const auto [it, inserted] = first_line.emplace(d.job.name, d.job.where.line);
      if (!inserted) {
        entry.error(fmt::format("duplicate job name {} (first defined at line {}); both entries are unusable",
                                show(d.job.name), it->second));
        duplicated.insert(d.job.name);
      }
    }
    const std::string label = d.job.name.empty() ? fallback_label : d.job.name;
    for (auto i = issues_before; i < ctx.issues.size(); ++i) ctx.issues[i].job = label;
    if (ctx.issues.size() != issues_before) {
      cfg.broken_jobs.push_back({label, d.job.where, {}});
    } else {
      paths[d.job.name] = fallback_label;
      cfg.jobs.push_back(std::move(d.job));
    }
  }
  // A name defined twice: neither entry runs (which one was meant is anyone's guess).
  for (auto it = cfg.jobs.begin(); it != cfg.jobs.end();) {
    if (duplicated.contains(it->name)) {
      cfg.broken_jobs.push_back({it->name, it->where, {}});
      it = cfg.jobs.erase(it);
    } else {
      ++it;
    }
  }
  cross_job_warnings(ctx, cfg, paths);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

std::string ConfigIssue::to_string() const {
  std::string out = severity == Severity::warning ? "warning: " : "";
  out += where.file.empty() ? std::string("<config>") : where.file;
  if (where.line > 0) out += fmt::format(":{}:{}", where.line, where.column);
  out += ": ";
  if (!path.empty()) out += path + ": ";
  out += message;
  return out;
}

const char* to_string(Severity s) { return s == Severity::warning ? "warning" : "error"; }

const Job* Config::find_job(std::string_view name) const {
  const auto it = std::find_if(jobs.begin(), jobs.end(), [&](const Job& j) { return j.name == name; });
  return it == jobs.end() ? nullptr : &*it;
}

const BrokenJob* Config::find_broken(std::string_view name) const {
  const auto it = std::find_if(broken_jobs.begin(), broken_jobs.end(), [&](const BrokenJob& j) { return j.name == name; });
  return it == broken_jobs.end() ? nullptr : &*it;
}

Result<Config> parse_config(std::string_view yaml_text, const std::string& file_name,
                            std::vector<ConfigIssue>* issues_out, JobErrors job_errors) {
  Ctx ctx;
  ctx.file = file_name;
  Config cfg;
  cfg.path = file_name;
  try {
    const std::string text(yaml_text);
    std::vector<YamlProblem> problems;
    const auto report = [&] {
      for (auto& p : problems) ctx.add(p.mark, std::move(p.key), std::move(p.message));
      problems.clear();
    };
    const bool one_document = plainly_one_document(text) || check_stream(text, problems);
    report();
    if (one_document) {
      YAML::Node root = YAML::Load(text);
      const bool merged = resolve_merge_keys(root, problems);
      report();
      if (merged) read_root(ctx, root, cfg);
    }
  } catch (const YAML::Exception& e) {
    ctx.add(e.mark, "", fmt::format("YAML syntax error: {}", e.msg));
  } catch (const std::exception& e) {
    ctx.add(YAML::Mark::null_mark(), "", fmt::format("cannot read the configuration: {}", e.what()));
  }
  std::vector<ConfigIssue> errors;
  std::vector<ConfigIssue> warnings;
  for (auto& issue : ctx.issues) (issue.severity == Severity::error ? errors : warnings).push_back(std::move(issue));
  const auto by_position = [](const ConfigIssue& a, const ConfigIssue& b) {
    return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
  };
  std::stable_sort(errors.begin(), errors.end(), by_position);
  std::stable_sort(warnings.begin(), warnings.end(), by_position);
  if (issues_out != nullptr) {
    *issues_out = errors;
    issues_out->insert(issues_out->end(), warnings.begin(), warnings.end());
  }
  const bool global_error =
      std::any_of(errors.begin(), errors.end(), [](const ConfigIssue& i) { return i.job.empty(); });
  if (!errors.empty() && (job_errors == JobErrors::fail || global_error)) {
    std::vector<std::string> lines;
    lines.reserve(errors.size());
    for (const auto& issue : errors) lines.push_back(issue.to_string());
    return Error{join(lines, "\n"), ExitCode::config};
  }
  for (auto& broken : cfg.broken_jobs) {
    for (const auto& issue : errors) {
      if (issue.job == broken.name) broken.issues.push_back(issue);
    }
  }
  cfg.warnings = std::move(warnings);
  cfg.inputs = std::move(ctx.inputs);
  return cfg;
}

Result<Config> load_config(const std::filesystem::path& path, std::vector<ConfigIssue>* issues_out,
                           JobErrors job_errors) {
  const auto fail = [&](std::string message) -> Result<Config> {
    ConfigIssue issue{{path.string(), 0, 0}, "", std::move(message), Severity::error, {}};
    if (issues_out != nullptr) *issues_out = {issue};
    return Error{issue.to_string(), ExitCode::config};
  };
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return fail("config file does not exist");
  if (std::filesystem::is_directory(path, ec)) return fail("is a directory, not a config file");
  auto text = read_file(path);
  if (!text) return fail(text.error().message);
  return parse_config(*text, path.string(), issues_out, job_errors);
}

std::filesystem::path default_config_path() {
  if (::geteuid() == 0) return "/etc/hozo/hozo.yaml";
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  if (xdg != nullptr && xdg[0] == '/') return std::filesystem::path(xdg) / "hozo" / "config.yaml";
  return expand_home("~/.config/hozo/config.yaml");
}

std::vector<std::string> known_job_keys() {
  std::vector<std::string> keys;
  const auto add_block = [&keys](std::string_view prefix, const auto& rules) {
    for (const auto& r : rules) keys.push_back(fmt::format("{}.{}", prefix, r.name));
  };
  for (const auto& r : job_rules()) keys.emplace_back(r.name);
  add_block("datasets[]", pair_rules());
  add_block("wol_relay", relay_rules());
  add_block("agent", agent_rules());
  add_block("syncoid", syncoid_rules());
  add_block("notifications", notification_rules());
  add_block("notifications.smtp", smtp_rules());
  add_block("serve", serve_rules());
  return keys;
}

}  // namespace hozo
