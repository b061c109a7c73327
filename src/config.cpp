#include "hozo/config.hpp"

#include <arpa/inet.h>
#include <unistd.h>
#include <algorithm>
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

// ---------------------------------------------------------------------------------------------
// Small value checks. Each returns an error message, or nullopt when the value is fine.
// ---------------------------------------------------------------------------------------------
namespace {

using Check = std::optional<std::string> (*)(std::string_view);

/// A value for an error message: quoted, control characters escaped, shortened.
std::string show(std::string_view v) {
  constexpr std::size_t kMax = 80;
  if (v.size() > kMax) return fmt::format("\"{}...\"", printable(v.substr(0, kMax)));
  return fmt::format("\"{}\"", printable(v));
}

bool is_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool all_of(std::string_view s, std::string_view extra) {
  return std::all_of(s.begin(), s.end(),
                     [&](char c) { return is_alnum(c) || extra.find(c) != std::string_view::npos; });
}

std::optional<std::string> check_job_name(std::string_view v) {
  if (!v.empty() && v.size() <= 64 && is_alnum(v.front()) && all_of(v, "_.-")) return std::nullopt;
  return fmt::format("invalid job name {} (1-64 characters of A-Z a-z 0-9 _ . -, starting with a letter or digit)",
                     show(v));
}

/// "AA-bb-cc-dd-ee-ff" -> "aa:bb:cc:dd:ee:ff"; nullopt when not a MAC-style 6-byte hex string.
std::optional<std::string> normalize_mac(std::string_view v) {
  if (v.size() != 17) return std::nullopt;
  const char sep = v[2];
  if (sep != ':' && sep != '-') return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i % 3 == 2) {
      if (v[i] != sep) return std::nullopt;
      out += ':';
    } else {
      if (!is_hex(v[i])) return std::nullopt;
      out += static_cast<char>(v[i] >= 'A' && v[i] <= 'F' ? v[i] - 'A' + 'a' : v[i]);
    }
  }
  return out;
}

std::optional<std::string> check_mac(std::string_view v) {
  if (normalize_mac(v)) return std::nullopt;
  return fmt::format("invalid MAC {} (expected six hex bytes like aa:bb:cc:dd:ee:ff)", show(v));
}

std::optional<std::string> check_secureon(std::string_view v) {
  if (normalize_mac(v)) return std::nullopt;
  return std::string("invalid SecureOn password (expected six hex bytes like aa:bb:cc:dd:ee:ff)");
}

std::optional<std::string> check_dataset(std::string_view v) {
  const auto bad = [&](std::string_view why) { return fmt::format("invalid dataset name {}: {}", show(v), why); };
  if (v.empty()) return bad("empty");
  if (v.size() > 255) return bad("longer than 255 characters");
  if (v.find_first_of("@#") != std::string_view::npos) return bad("snapshots/bookmarks (@, #) are not datasets");
  if (v.front() == '-') return bad("must not start with '-'");
  if (v.front() == '/' || v.back() == '/') return bad("must not start or end with '/'");
  for (const char c : v) {
    if (!is_alnum(c) && c != '_' && c != '.' && c != ':' && c != '-' && c != '/') {
      return bad(fmt::format("character {} is not allowed (only A-Z a-z 0-9 _ . : - and /)", show({&c, 1})));
    }
  }
  const auto parts = split(v, '/');
  for (const auto part : parts) {
    if (part.empty()) return bad("empty component ('//')");
    if (part == "." || part == "..") return bad("'.' and '..' components are not allowed");
  }
  const auto pool = parts.front();
  if (!((pool.front() >= 'a' && pool.front() <= 'z') || (pool.front() >= 'A' && pool.front() <= 'Z'))) {
    return bad("the pool name must begin with a letter");
  }
  for (const std::string_view reserved : {"mirror", "raidz", "draid", "spare", "log"}) {
    if (pool.starts_with(reserved) && (pool == reserved || reserved != "log")) {
      return bad(fmt::format("\"{}\" is a reserved pool name", reserved));
    }
  }
  return std::nullopt;
}

bool is_hostname(std::string_view v) {
  if (v.empty() || v.size() > 253) return false;
  for (const auto label : split(v, '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-' || !all_of(label, "-")) {
      return false;
    }
  }
  return true;
}

bool is_ip_literal(std::string_view v) {
  const std::string s(v);
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

std::optional<std::string> check_host(std::string_view v) {
  if (is_ip_literal(v) || is_hostname(v)) return std::nullopt;
  if (v.find('@') != std::string_view::npos) {
    return fmt::format("invalid host {} (put the user in ssh_user, not in the host)", show(v));
  }
  return fmt::format("invalid host {} (expected a host name or an IPv4/IPv6 address)", show(v));
}

std::optional<std::string> check_optional_host(std::string_view v) { return v.empty() ? std::nullopt : check_host(v); }

std::optional<std::string> check_user(std::string_view v) {
  if (!v.empty() && v.size() <= 32 && ((v.front() >= 'a' && v.front() <= 'z') || v.front() == '_')) {
    if (std::all_of(v.begin(), v.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
        })) {
      return std::nullopt;
    }
  }
  return fmt::format("invalid user name {} (expected [a-z_][a-z0-9_.-]*)", show(v));
}

/// A local file path: safe characters only, no '..' tricks needed or allowed.
std::optional<std::string> check_path(std::string_view v) {
  if (v.empty()) return std::string("empty path");
  if (v.size() > 4096) return std::string("path too long");
  if (!all_of(v, "/._+,:@%=~-")) {
    return fmt::format("invalid path {} (allowed: A-Z a-z 0-9 / . _ + , : @ % = ~ -)", show(v));
  }
  if (v.front() == '-') return fmt::format("invalid path {} (must not start with '-')", show(v));
  return std::nullopt;
}

/// An absolute path or one starting with "~/".
std::optional<std::string> check_abs_path(std::string_view v) {
  if (auto err = check_path(v)) return err;
  if (v.front() != '/' && !v.starts_with("~/"))
    return fmt::format("path {} must be absolute or start with ~/", show(v));
  return std::nullopt;
}

/// A directory on the box (zpool import -d): absolute, no '~' (the box's home is not ours).
std::optional<std::string> check_abs_dir(std::string_view v) {
  if (auto err = check_path(v)) return err;
  if (v.front() != '/') return fmt::format("directory {} must be absolute", show(v));
  return std::nullopt;
}

std::optional<std::string> check_optional_abs_path(std::string_view v) {
  return v.empty() ? std::nullopt : check_abs_path(v);
}

std::optional<std::string> check_device(std::string_view v) {
  if (v.empty()) return std::nullopt;
  if (!v.starts_with("/dev/") || v.size() == 5 || !all_of(v, "/._+,:@=-")) {
    return fmt::format("invalid device {} (expected a path like /dev/disk/by-id/...)", show(v));
  }
  for (const auto part : split(v, '/')) {
    if (part == "..") return fmt::format("invalid device {} ('..' is not allowed)", show(v));
  }
  return std::nullopt;
}

std::optional<std::string> check_schedule(std::string_view v) {
  auto parsed = parse_schedule(v);
  if (parsed) return std::nullopt;
  return fmt::format("invalid schedule {}: {}", show(v), parsed.error().message);
}

std::optional<std::string> check_url(std::string_view v) {
  const bool scheme = v.starts_with("http://") || v.starts_with("https://");
  const bool clean = std::none_of(v.begin(), v.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f || c == '"' || c == '\'' || c == '`' || c == '<' || c == '>' || c == '\\';
  });
  if (scheme && clean && v.size() > 8 && v.size() <= 2048) return std::nullopt;
  return fmt::format("invalid URL {} (expected http:// or https://...)", show(v));
}

std::optional<std::string> check_optional_url(std::string_view v) { return v.empty() ? std::nullopt : check_url(v); }

std::optional<std::string> check_interface(std::string_view v) {
  if (v.empty() || (v.size() <= 15 && all_of(v, "_.:@-") && v.front() != '-')) return std::nullopt;
  return fmt::format("invalid network interface name {}", show(v));
}

std::optional<std::string> check_ntfy_topic(std::string_view v) {
  if (v.empty() || (v.size() <= 64 && all_of(v, "_-"))) return std::nullopt;
  return fmt::format("invalid ntfy topic {} (1-64 characters of A-Z a-z 0-9 _ -)", show(v));
}

std::optional<std::string> check_token(std::string_view v) {
  if (std::none_of(v.begin(), v.end(), [](char c) { return c == ' ' || c == '\t'; })) return std::nullopt;
  return std::string("must not contain blanks");
}

std::optional<std::string> check_pushover_key(std::string_view v) {
  if (v.size() <= 64 && all_of(v, "")) return std::nullopt;
  return std::string("invalid Pushover key (expected letters and digits)");
}

std::optional<std::string> check_email(std::string_view v) {
  const auto at = v.find('@');
  if (at != std::string_view::npos && at > 0 && v.size() <= 254 && all_of(v.substr(0, at), "._%+-") &&
      is_hostname(v.substr(at + 1))) {
    return std::nullopt;
  }
  return fmt::format("invalid e-mail address {}", show(v));
}

std::optional<std::string> check_bwlimit(std::string_view v) {
  std::size_t i = 0;
  while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
  bool ok = i > 0;
  if (ok && i < v.size() && v[i] == '.') {
    const auto start = ++i;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
    ok = i > start;
  }
  if (ok && i < v.size() && std::string_view("kKmMgGtT").find(v[i]) != std::string_view::npos) ++i;
  if ((ok && i == v.size()) || v.empty()) return std::nullopt;
  return fmt::format("invalid bandwidth limit {} (expected e.g. 500k, 10M, 1.5G)", show(v));
}

std::optional<std::string> check_identifier(std::string_view v) {
  if (v.empty() || (v.size() <= 64 && all_of(v, "_:.-"))) return std::nullopt;
  return fmt::format("invalid syncoid identifier {} (only A-Z a-z 0-9 _ : . -)", show(v));
}

const std::vector<std::string>& compress_methods() {
  static const std::vector<std::string> methods{"gzip",        "pigz-fast", "pigz-slow",   "zstd-fast",
                                                "zstdmt-fast", "zstd-slow", "zstdmt-slow", "lz4",
                                                "xz",          "lzo",       "none"};
  return methods;
}

std::optional<std::string> check_compress(std::string_view v) {
  if (v.empty()) return std::nullopt;
  const auto& m = compress_methods();
  if (std::find(m.begin(), m.end(), v) != m.end()) return std::nullopt;
  std::string msg = fmt::format("unknown compression {} (one of {})", show(v), join(m, ", "));
  if (const auto hint = did_you_mean(v, m)) msg += fmt::format("; did you mean \"{}\"?", *hint);
  return msg;
}

/// syncoid's location: an absolute path or a bare command name looked up in $PATH.
std::optional<std::string> check_program(std::string_view v) {
  if (!v.empty() && v.front() != '-' && all_of(v, "._+-")) return std::nullopt;
  if (!v.empty() && v.front() == '/') return check_path(v);
  return fmt::format("invalid program {} (an absolute path or a command name)", show(v));
}

std::optional<std::string> check_nonempty(std::string_view v) {
  if (trim(v).empty()) return std::string("must not be empty");
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Reading values out of the YAML tree.
// ---------------------------------------------------------------------------------------------

/// Collected issues and notices of one parse.
struct Ctx {
  std::string file;
  std::vector<ConfigIssue> issues;
  std::vector<std::string> notices;

  SourceLocation where(const YAML::Mark& m) const {
    if (m.is_null()) return {file, 0, 0};
    return {file, m.line + 1, m.column + 1};
  }
  void add(const YAML::Mark& m, std::string path, std::string message) {
    issues.push_back({where(m), std::move(path), std::move(message)});
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
    const auto rule = std::find_if(rules.begin(), rules.end(), [&](const KeyRule<T>& r) { return r.name == key; });
    if (rule == rules.end()) {
      std::vector<std::string> candidates;
      for (const auto& r : rules) {
        if (allowed_in(r.scope, here)) candidates.emplace_back(r.name);
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
      {"create_bookmark", Scope::both, [](const Field& f, S& s) { f.boolean(s.create_bookmark); }},
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

const Rules<Config>& top_rules() {
  static const Rules<Config> rules{
      {"settings", Scope::both, [](const Field&, Config&) {}},
      {"jobs", Scope::both, [](const Field&, Config&) {}},
      {"auth", Scope::both, [](const Field&, Config&) {}},
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
                                        "ignored (web login of the Python Hōzō; use serve.password_hash_file)"}
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
  std::size_t index = 0;
  for (const auto& element : jobs.node()) {
    const Field entry = jobs.item(element, index++);
    if (!element.IsMap()) {
      entry.error(fmt::format("expected a job mapping (name, source_dataset, ...), got {}", kind_name(element)));
      continue;
    }
    Draft d = base;
    const auto issues_before = ctx.issues.size();
    read_mapping(entry, job_rules(), d, Scope::job, &d.present);
    finish_job(entry, d, issues_before);
    if (!d.job.name.empty()) {
      const auto [it, inserted] = first_line.emplace(d.job.name, d.job.where.line);
      if (!inserted) {
        entry.error(fmt::format("duplicate job name {} (first defined at line {})", show(d.job.name), it->second));
      }
    }
    cfg.jobs.push_back(std::move(d.job));
  }
}

/// Thrown by ParseWatch to stop a parse that does not make progress.
struct RunawayParse {
  YAML::Mark mark;
};

/// Watches the parser's events without building nodes. yaml-cpp 0.7 never finishes some
/// malformed streams: a document starting with ',' yields empty documents forever
/// (jbeder/yaml-cpp#1040, fixed upstream after 0.7). So the events are bounded by the input
/// size, and where each document starts is recorded to spot a parser that stands still.
class ParseWatch final : public YAML::EventHandler {
 public:
  explicit ParseWatch(std::size_t max_events) : max_events_(max_events) {}

  /// Where the last document started.
  std::optional<YAML::Mark> document_start;

  void OnDocumentStart(const YAML::Mark& m) override {
    document_start = m;
    tick(m);
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t) override { tick(m); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { tick(m); }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t, const std::string&) override { tick(m); }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    tick(m);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    tick(m);
  }
  void OnMapEnd() override {}

 private:
  void tick(const YAML::Mark& m) {
    if (++events_ > max_events_) throw RunawayParse{m};
  }
  std::size_t events_ = 0;
  std::size_t max_events_;
};

/// Parses the stream once without building nodes: syntax errors, empty streams, several
/// documents and runaway parses become issues. True when `text` holds exactly one document.
bool check_stream(Ctx& ctx, const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  ParseWatch watch(8 * text.size() + 64);
  try {
    if (!parser.HandleNextDocument(watch)) {
      ctx.add(YAML::Mark::null_mark(), "", "the configuration is empty (expected settings: and jobs:)");
      return false;
    }
    const auto first = watch.document_start;
    if (parser.HandleNextDocument(watch)) {  // a second document, or a parser standing still
      const auto second = watch.document_start.value_or(YAML::Mark::null_mark());
      if (first && first->pos == second.pos) throw RunawayParse{second};
      ctx.add(second, "", "only one YAML document is allowed (remove the second ---)");
      return false;
    }
  } catch (const RunawayParse& stuck) {
    ctx.add(stuck.mark, "", "YAML syntax error: the parser makes no progress here (a stray ',' or similar?)");
    return false;
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

std::string ConfigIssue::to_string() const {
  std::string out = where.file.empty() ? std::string("<config>") : where.file;
  if (where.line > 0) out += fmt::format(":{}:{}", where.line, where.column);
  out += ": ";
  if (!path.empty()) out += path + ": ";
  out += message;
  return out;
}

const Job* Config::find_job(std::string_view name) const {
  const auto it = std::find_if(jobs.begin(), jobs.end(), [&](const Job& j) { return j.name == name; });
  return it == jobs.end() ? nullptr : &*it;
}

Result<Config> parse_config(std::string_view yaml_text, const std::string& file_name,
                            std::vector<ConfigIssue>* issues_out) {
  Ctx ctx;
  ctx.file = file_name;
  Config cfg;
  cfg.path = file_name;
  try {
    const std::string text(yaml_text);
    if (check_stream(ctx, text)) read_root(ctx, YAML::Load(text), cfg);
  } catch (const YAML::Exception& e) {
    ctx.add(e.mark, "", fmt::format("YAML syntax error: {}", e.msg));
  } catch (const std::exception& e) {
    ctx.add(YAML::Mark::null_mark(), "", fmt::format("cannot read the configuration: {}", e.what()));
  }
  std::stable_sort(ctx.issues.begin(), ctx.issues.end(), [](const ConfigIssue& a, const ConfigIssue& b) {
    return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
  });
  if (issues_out != nullptr) *issues_out = ctx.issues;
  if (!ctx.issues.empty()) {
    std::vector<std::string> lines;
    lines.reserve(ctx.issues.size());
    for (const auto& issue : ctx.issues) lines.push_back(issue.to_string());
    return Error{join(lines, "\n"), ExitCode::config};
  }
  return cfg;
}

Result<Config> load_config(const std::filesystem::path& path, std::vector<ConfigIssue>* issues_out) {
  const auto fail = [&](std::string message) -> Result<Config> {
    ConfigIssue issue{{path.string(), 0, 0}, "", std::move(message)};
    if (issues_out != nullptr) *issues_out = {issue};
    return Error{issue.to_string(), ExitCode::config};
  };
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return fail("config file does not exist");
  if (std::filesystem::is_directory(path, ec)) return fail("is a directory, not a config file");
  auto text = read_file(path);
  if (!text) return fail(text.error().message);
  return parse_config(*text, path.string(), issues_out);
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

std::string example_config() {
  // Keep byte-identical with examples/hozo.yaml (a unit test compares them).
  return R"HOZO_YAML(# Hōzō (hozo) configuration: annotated example.
#
# Where hozo looks for it: -c/--config, else $HOZO_CONFIG, else /etc/hozo/hozo.yaml (as root)
# or ~/.config/hozo/config.yaml. Check a file with:  hozo config validate
#
# The format is compatible with the Python Hōzō (settings: + jobs:, `source` and
# `broadcast_ip` aliases, "daily HH:MM" / "weekly <Day> HH:MM" schedules). Keys marked
# (ext) are hozo extensions. Defaults are shown; a commented-out line shows the default.
#
# Inheritance: every key in settings: (except history and log_keep) is a default for all
# jobs; a job's own value wins. Nested blocks (notifications, smtp, syncoid, wol_relay,
# agent) merge key by key, so a job can change one notification setting and keep the rest.
#
# Values:
#   durations  plain seconds (90) or with units: 90s, 5m, 6h, 1d, 1h30m
#   `key:` or `key: ~` means "not set": the default (or the settings: value) applies
#   secrets    every secret `x` has a twin `x_file` that reads the value from a file (one
#              line; the trailing newline is stripped). A relative path is looked up in
#              $CREDENTIALS_DIRECTORY (systemd LoadCredential=). Give x or x_file, not both.

settings:
  ssh_user: root                # user on the backup box
  ssh_timeout: 120              # how long to wait for the box to boot and answer SSH
  # ssh_port: 22
  # ssh_key: ~/.ssh/id_ed25519  # identity file; default: the usual ~/.ssh/id_* files
  # ssh_connect_timeout: 10     # (ext) per connection attempt and per remote read
  # known_hosts: /var/lib/hozo/known_hosts  # (ext) default: /var/lib/hozo/known_hosts as root, else ~/.ssh/known_hosts
  # host_key_policy: strict     # (ext) strict | accept-new (trust an unknown key once); a changed key always fails
  # retries: 3                  # syncoid attempts after the first failure (0..100)
  # retry_delay: 60             # pause between attempts
  # no_privilege_elevation: false  # passed to syncoid as --no-privilege-elevation
  # shutdown_after: true        # power the box off when done
  # shutdown_command: "shutdown -h now"  # (ext) run on the box over SSH
  # shutdown_only_if_woken: true  # (ext) leave a box alone that was already running
  # host_sharing: concurrent    # (ext) jobs for the same box: concurrent | wait (one after another)
  # host_lock_timeout: 1h       # (ext) how long host_sharing: wait waits for the box
  # target_pool_import: true    # (ext) `zpool import` the target pool when it is not imported
  # target_pool_import_dirs: [/dev/disk/by-id]  # (ext) where zpool import looks (-d); default: zpool's own
  # wol_broadcast: 255.255.255.255  # alias: broadcast_ip
  # wol_port: 9                 # (ext) UDP port of the magic packet
  # wol_interface: eth0         # (ext) send from this interface
  # wol_repeat: 3               # (ext) magic packets per wake attempt (1..100)
  # wol_password: "01:02:03:04:05:06"  # (ext) SecureOn password (or wol_password_file)
  # disk_spinup_timeout: 90     # how long backup_device may take to appear and spin up
  history: 50                   # (ext) runs remembered per job in the state file (1..10000)
  log_keep: 20                  # (ext) run logs kept per job (1..10000)

  syncoid:                      # (ext) how syncoid is run
    path: syncoid               # absolute path or a command name in $PATH
    compress: lz4               # gzip, pigz-fast, pigz-slow, zstd-fast, zstdmt-fast, zstd-slow,
                                # zstdmt-slow, lz4, xz, lzo, none; default: syncoid's own
    # source_bwlimit: 50M       # e.g. 500k, 10M, 1.5G
    # target_bwlimit: 50M
    # identifier: offsite       # --identifier, keeps sync snapshots of several targets apart
    # exclude: ["tank/data/tmp"]  # regular expressions of datasets to skip
    # create_bookmark: false
    # no_sync_snap: false
    # sendoptions: "w"          # one line each, passed to syncoid as given
    # recvoptions: "u"
    # extra_args: ["--no-rollback"]  # more syncoid arguments, one list item per argument
    timeout: 24h                # a sync running longer than this is killed

  notifications:
    # notify_on: [success, failure]  # (ext) which outcomes are reported
    ntfy_topic: hozo-example-topic   # empty: ntfy off
    # ntfy_server: https://ntfy.sh   # (ext)
    # ntfy_token_file: ntfy-token    # (ext) access token (or ntfy_token)
    # pushover_token: ...            # empty: Pushover off (or pushover_token_file)
    # pushover_user: ...             # (or pushover_user_file)
    # pushover_url: https://api.pushover.net/1/messages.json  # (ext)
    # healthchecks_url: https://hc-ping.com/00000000-0000-0000-0000-000000000000  # (ext) /start and /fail are appended
    # webhook_url: https://hooks.example.com/hozo  # (ext) receives the run result as JSON
    # timeout: 10                    # (ext) per notification request
    smtp:                            # remove the block (or set host: "") to switch e-mail off
      host: smtp.example.com
      port: 587
      user: backup@example.com
      # password: ...                # or password_file (ext)
      from_addr: backup@example.com
      to_addr: admin@example.com     # one address or a list
      use_tls: true                  # STARTTLS (smtps on port 465)

# Schedules (shown as the next run by `hozo jobs list`; "" or no schedule: manual runs only;
# put the equivalent OnCalendar= in a hozo@NAME.timer or the cron form in a crontab):
#   "daily 03:00", "weekly Sunday 03:00"  the Python Hōzō forms; times are UTC
#   "30 2 * * 1-5"                        5-field cron (local time)
#   "Mon..Fri *-*-* 02:30", "Sun 03:00", "daily", "*-*-* 03:00:00 UTC"  systemd OnCalendar

jobs:
  # The Python Hōzō form: one dataset per job.
  - name: tank-data              # 1-64 of A-Z a-z 0-9 _ . - (used in file and unit names)
    description: Photos and documents
    source_dataset: tank/data    # alias: source
    target_dataset: backup/tank-data
    target_host: 192.0.2.10      # host name or IPv4/IPv6 address
    mac_address: "00:11:22:33:44:55"  # required unless the job sets wol: false
    recursive: true              # include child datasets
    wol_broadcast: 192.0.2.255
    schedule: "weekly Sunday 03:00"
    backup_device: /dev/disk/by-id/ata-EXAMPLE-DISK-0001  # wait for this disk before syncing
    disk_spinup_timeout: 90

  # hozo extensions: several datasets, a wake-up relay, per-job overrides.
  - name: offsite-vms
    description: VMs and home directories, woken through a relay on the remote LAN
    datasets:                    # instead of source_dataset/target_dataset
      - source: tank/vms
        target: backup/vms
      - source: tank/home
        target: backup/home
        recursive: false         # default: the job's recursive
    target_host: backup.example.com
    ssh_port: 2222
    mac_address: "00-11-22-33-44-66"
    schedule: "Mon..Fri *-*-* 02:30"
    wol_relay:                   # (ext) an always-on host next to the box sends the packet
      host: 198.51.100.7
      user: pi
      port: 22
      # ssh_key: /etc/hozo/relay_key
      command: [wakeonlan, -i, "{broadcast}", -p, "{port}", "{mac}"]
    host_sharing: wait
    # agent:                     # (ext) backupd on the box
    #   url: http://198.51.100.8:9999
    #   token_file: backupd-token
    notifications:
      notify_on: [failure]       # only this key changes; the rest comes from settings
    syncoid:
      source_bwlimit: 20M

  # A box that is always on (or woken some other way): no Wake-on-LAN, no shutdown.
  - name: nas-mirror
    source: tank/media
    target_dataset: vault/media
    target_host: nas.example.com
    wol: false                   # (ext) no magic packet; mac_address may be left out
    shutdown_after: false
    schedule: ""                 # manual runs only
)HOZO_YAML";
}

}  // namespace hozo
