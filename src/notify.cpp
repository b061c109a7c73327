#include "hozo/notify.hpp"

#include <unistd.h>

#include <array>
#include <ctime>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "hozo/curl_api.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/version.hpp"

namespace hozo {

namespace {

constexpr std::size_t kMaxResponseBytes = 64 * 1024;
constexpr std::size_t kPushoverMessageLimit = 1024;
constexpr std::size_t kPushoverTitleLimit = 250;

bool is_printable_ascii(std::string_view s) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e) return false;
  }
  return true;
}

/// One line: control characters (CR, LF, tabs...) become spaces.
std::string one_line(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7f ? ' ' : c);
  }
  return out;
}

/// At most `limit` bytes of UTF-8 text, never cutting a multi-byte sequence.
std::string utf8_prefix(std::string_view s, std::size_t limit) {
  if (s.size() <= limit) return std::string(s);
  std::size_t n = limit;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0U) == 0x80U) --n;
  return std::string(s.substr(0, n));
}

std::string url_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4U]);
      out.push_back(kHex[u & 0xFU]);
    }
  }
  return out;
}

std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t{static_cast<unsigned char>(in[i])} << 16U) |
                            (std::uint32_t{static_cast<unsigned char>(in[i + 1])} << 8U) |
                            std::uint32_t{static_cast<unsigned char>(in[i + 2])};
    out.push_back(kAlphabet[(v >> 18U) & 0x3FU]);
    out.push_back(kAlphabet[(v >> 12U) & 0x3FU]);
    out.push_back(kAlphabet[(v >> 6U) & 0x3FU]);
    out.push_back(kAlphabet[v & 0x3FU]);
  }
  const std::size_t rest = in.size() - i;
  if (rest > 0) {
    std::uint32_t v = std::uint32_t{static_cast<unsigned char>(in[i])} << 16U;
    if (rest == 2) v |= std::uint32_t{static_cast<unsigned char>(in[i + 1])} << 8U;
    out.push_back(kAlphabet[(v >> 18U) & 0x3FU]);
    out.push_back(kAlphabet[(v >> 12U) & 0x3FU]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6U) & 0x3FU] : '=');
    out.push_back('=');
  }
  return out;
}

std::string strip_trailing_slashes(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

/// Replaces every occurrence of each non-empty needle in `text` by "***".
std::string redact(std::string text, const std::vector<std::string>& needles) {
  for (const auto& n : needles) {
    if (n.empty()) continue;
    for (auto pos = text.find(n); pos != std::string::npos; pos = text.find(n, pos + 3)) text.replace(pos, n.size(), "***");
  }
  return text;
}

/// The URL's path + query ("/uuid/fail?x=1"): sensitive, kept out of messages.
std::string url_path(std::string_view url) {
  const auto scheme = url.find("://");
  const auto start = scheme == std::string_view::npos ? 0 : scheme + 3;
  const auto slash = url.find_first_of("/?#", start);
  return slash == std::string_view::npos ? std::string() : std::string(url.substr(slash));
}

std::string this_hostname() {
  std::array<char, 256> buf{};
  if (::gethostname(buf.data(), buf.size() - 1) != 0) return "localhost";
  return std::string(buf.data());
}

std::string outcome_word(RunOutcome o) {
  switch (o) {
    case RunOutcome::success: return "succeeded";
    case RunOutcome::failed: return "FAILED";
    case RunOutcome::interrupted: return "interrupted";
    case RunOutcome::running: break;
  }
  return "running";
}

std::string box_line(const RunRecord& r) {
  if (r.woke_host) return "woken by hozo";
  if (r.was_up_before) return "was already up";
  return "not woken";
}

std::string poweroff_line(const ShutdownResult& s) {
  if (s.outcome == ShutdownOutcome::done) return "yes";
  std::string out = fmt::format("no ({})", to_string(s.outcome));
  if (!s.message.empty()) out += ": " + s.message;
  return out;
}

/// Everything of a job's notification settings that must not appear in a result or log line:
/// secrets (also form-encoded) and the paths/queries of channel URLs (keys, UUIDs, ntfy topics).
std::vector<std::string> sensitive_strings(const NotificationSettings& n) {
  std::vector<std::string> out;
  for (const Secret* s : {&n.ntfy_token, &n.pushover_token, &n.pushover_user}) {
    if (s->empty()) continue;
    out.push_back(s->reveal());
    out.push_back(url_encode(s->reveal()));
  }
  if (n.smtp && !n.smtp->password.empty()) out.push_back(n.smtp->password.reveal());
  for (const std::string* url : {&n.healthchecks_url, &n.webhook_url}) {
    if (url->empty()) continue;
    out.push_back(*url);
    const std::string path = strip_trailing_slashes(url_path(*url));
    if (path.size() > 1) out.push_back(path);
    if (const auto q = url->find('?'); q != std::string::npos && q + 1 < url->size()) out.push_back(url->substr(q + 1));
  }
  if (!n.ntfy_topic.empty()) out.push_back(strip_trailing_slashes(n.ntfy_server) + "/" + n.ntfy_topic);
  return out;
}

}  // namespace

// ------------------------------------------------------------------------------------ messages

NotificationMessage build_run_message(const Job& job, const RunRecord& r) {
  NotificationMessage m;
  m.failure = r.outcome != RunOutcome::success;
  m.title = fmt::format("hozo: {} {}", job.name, outcome_word(r.outcome));
  if (r.outcome == RunOutcome::failed && !r.failed_stage.empty()) m.title += fmt::format(" ({})", r.failed_stage);
  switch (r.outcome) {
    case RunOutcome::success: m.tags = {"white_check_mark", "floppy_disk"}; break;
    case RunOutcome::interrupted: m.tags = {"warning", "floppy_disk"}; break;
    default: m.tags = {"rotating_light", "floppy_disk"}; break;
  }
  std::string b;
  b += fmt::format("Job: {}{}\n", job.name, job.description.empty() ? "" : " (" + job.description + ")");
  b += fmt::format("Outcome: {}\n", to_string(r.outcome));
  if (!r.failed_stage.empty()) b += fmt::format("Failed stage: {}\n", r.failed_stage);
  if (!r.error.empty()) b += fmt::format("Error: {}\n", r.error);
  b += fmt::format("Duration: {}\n", format_duration(std::chrono::duration<double>(r.duration_seconds)));
  if (!r.started.empty()) b += fmt::format("Started: {}\n", r.started);
  if (r.datasets.empty()) {
    b += "Datasets: none verified\n";
  } else {
    b += "Datasets:\n";
    for (const auto& d : r.datasets) {
      b += fmt::format("  {} -> {}: newest {}, GUID {}, {} snapshot(s) on the box\n", d.source, d.target,
                       d.newest_source_snapshot.empty() ? "(none)" : d.newest_source_snapshot,
                       d.guid_match ? "match" : "MISMATCH", d.remote_snapshot_count);
    }
  }
  b += fmt::format("Syncoid attempts: {}\n", r.attempts);
  b += fmt::format("Box: {}\n", box_line(r));
  b += fmt::format("Powered off: {}\n", poweroff_line(r.shutdown));
  if (!r.log_file.empty()) b += fmt::format("Log: {}\n", r.log_file);
  b += fmt::format("Run: {} on {}\n", r.run_id, r.hostname.empty() ? this_hostname() : r.hostname);
  m.body = std::move(b);
  return m;
}

NotificationMessage build_test_message(const Job& job) {
  NotificationMessage m;
  m.title = fmt::format("hozo: test notification for {}", job.name);
  m.body = fmt::format("This is a test message from hozo {} on {} for job {}.\nIf you read this, the channel works.\n",
                       kVersion, this_hostname(), job.name);
  m.tags = {"test_tube"};
  return m;
}

bool should_notify(const NotificationSettings& settings, RunOutcome outcome) {
  const NotifyOn wanted = outcome == RunOutcome::success ? NotifyOn::success : NotifyOn::failure;
  if (outcome == RunOutcome::running) return false;
  for (const auto on : settings.notify_on) {
    if (on == wanted) return true;
  }
  return false;
}

std::vector<std::string> configured_channels(const NotificationSettings& s) {
  std::vector<std::string> out;
  if (!s.ntfy_topic.empty()) out.emplace_back("ntfy");
  if (!s.pushover_token.empty()) out.emplace_back("pushover");
  if (s.smtp && !s.smtp->host.empty()) out.emplace_back("smtp");
  if (!s.healthchecks_url.empty()) out.emplace_back("healthchecks");
  if (!s.webhook_url.empty()) out.emplace_back("webhook");
  return out;
}

// ------------------------------------------------------------------------------------ requests

HttpRequest build_ntfy_request(const NotificationSettings& s, const NotificationMessage& m) {
  HttpRequest r;
  const std::string server = strip_trailing_slashes(s.ntfy_server);
  const std::string title = one_line(m.title);
  if (is_printable_ascii(title)) {
    r.url = server + "/" + s.ntfy_topic;
    r.headers = {"Content-Type: text/plain; charset=utf-8", "Title: " + title,
                 std::string("Priority: ") + (m.failure ? "high" : "default")};
    if (!m.tags.empty()) r.headers.push_back("Tags: " + join(m.tags, ","));
    r.body = m.body;
  } else {
    // Headers must not carry raw UTF-8: ntfy's JSON publish format, POSTed to the server root.
    r.url = server + "/";
    r.headers = {"Content-Type: application/json"};
    nlohmann::json j{{"topic", s.ntfy_topic}, {"title", title}, {"message", m.body}, {"priority", m.failure ? 4 : 3}};
    if (!m.tags.empty()) j["tags"] = m.tags;
    r.body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  if (!s.ntfy_token.empty()) r.headers.push_back("Authorization: Bearer " + s.ntfy_token.reveal());
  return r;
}

HttpRequest build_pushover_request(const NotificationSettings& s, const NotificationMessage& m) {
  HttpRequest r;
  r.url = s.pushover_url;
  r.headers = {"Content-Type: application/x-www-form-urlencoded"};
  r.body = "token=" + url_encode(s.pushover_token.reveal()) + "&user=" + url_encode(s.pushover_user.reveal()) +
           "&title=" + url_encode(utf8_prefix(one_line(m.title), kPushoverTitleLimit)) +
           "&message=" + url_encode(utf8_prefix(m.body, kPushoverMessageLimit)) + "&priority=" + (m.failure ? "1" : "0");
  return r;
}

HttpRequest build_ping_request(const std::string& ping_url, PingKind kind, const NotificationMessage& m) {
  HttpRequest r;
  const auto q = ping_url.find('?');
  const std::string base = strip_trailing_slashes(ping_url.substr(0, q));
  const std::string query = q == std::string::npos ? std::string() : ping_url.substr(q + 1);
  if (base.find("/api/push/") != std::string::npos) {
    // Uptime Kuma push monitor: GET with status and msg; it has no "started" state.
    if (kind == PingKind::start) return r;
    r.method = "GET";
    std::string params = kind == PingKind::success ? "status=up&msg=OK" : "status=down&msg=" + url_encode(one_line(m.title));
    r.url = base + "?" + params;
    return r;
  }
  std::string path = base;
  if (kind == PingKind::start) path += "/start";
  if (kind == PingKind::failure) path += "/fail";
  r.url = query.empty() ? path : path + "?" + query;
  r.method = "POST";
  r.headers = {"Content-Type: text/plain; charset=utf-8"};
  if (kind != PingKind::start) r.body = m.title + "\n\n" + m.body;
  return r;
}

HttpRequest build_webhook_request(const std::string& url, const RunRecord& record) {
  HttpRequest r;
  r.url = url;
  r.headers = {"Content-Type: application/json"};
  r.body = nlohmann::json(record).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

std::string rfc5322_date(SystemTime t) {
  static constexpr std::array<const char*, 7> kDays{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr std::array<const char*, 12> kMonths{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  return fmt::format("{}, {:02} {} {} {:02}:{:02}:{:02} +0000", kDays.at(static_cast<std::size_t>(tm.tm_wday)),
                     tm.tm_mday, kMonths.at(static_cast<std::size_t>(tm.tm_mon)), tm.tm_year + 1900, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

std::string encode_header_text(std::string_view text) {
  const std::string line = one_line(text);
  if (is_printable_ascii(line)) return line;
  // Encoded words of at most 75 characters: "=?UTF-8?B?" (10) + base64 + "?=" (2); 45 bytes -> 60.
  constexpr std::size_t kChunk = 45;
  std::string out;
  std::string_view rest = line;
  while (!rest.empty()) {
    std::string piece = utf8_prefix(rest, kChunk);
    if (piece.empty()) piece = std::string(rest.substr(0, 1));  // invalid UTF-8: still progress
    if (!out.empty()) out += "\r\n ";
    out += "=?UTF-8?B?" + base64(piece) + "?=";
    rest.remove_prefix(piece.size());
  }
  return out;
}

std::string build_email(const SmtpSettings& smtp, const NotificationMessage& m, SystemTime now,
                        std::string_view message_id) {
  std::string d;
  d += "Date: " + rfc5322_date(now) + "\r\n";
  d += fmt::format("Message-ID: <{}>\r\n", message_id);
  d += "From: " + smtp.from_addr + "\r\n";
  d += "To: " + join(smtp.to_addr, ",\r\n ") + "\r\n";
  d += "Subject: " + encode_header_text(m.title) + "\r\n";
  d += "MIME-Version: 1.0\r\n";
  d += "Content-Type: text/plain; charset=UTF-8\r\n";
  d += "Content-Transfer-Encoding: 8bit\r\n";
  d += fmt::format("X-Mailer: hozo {}\r\n", kVersion);
  d += "\r\n";
  // CRLF line ends; lines longer than RFC 5322's 998 octets are split (dot-stuffing is curl's job).
  constexpr std::size_t kMaxLine = 990;
  for (auto line : split_lines(m.body)) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    do {
      const std::string piece = utf8_prefix(line, kMaxLine);
      const std::size_t n = piece.empty() ? std::min<std::size_t>(line.size(), kMaxLine) : piece.size();
      d += std::string(line.substr(0, n)) + "\r\n";
      line.remove_prefix(n);
    } while (!line.empty());
  }
  return d;
}

MailRequest build_mail_request(const SmtpSettings& smtp, const NotificationMessage& m, SystemTime now) {
  MailRequest r;
  const bool implicit_tls = smtp.port == 465;
  r.url = fmt::format("{}://{}:{}", implicit_tls ? "smtps" : "smtp", smtp.host, smtp.port);
  r.require_tls = smtp.use_tls && !implicit_tls;
  r.user = smtp.user;
  if (!smtp.user.empty()) r.password = smtp.password;
  r.from = smtp.from_addr;
  r.to = smtp.to_addr;
  std::random_device rd;
  const auto at = smtp.from_addr.find('@');
  const std::string domain = at == std::string::npos ? this_hostname() : smtp.from_addr.substr(at + 1);
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const std::string id = fmt::format("hozo.{}.{:08x}{:08x}@{}", secs, rd(), rd(), domain);
  r.data = build_email(smtp, m, now, id);
  return r;
}

std::string url_host(std::string_view url) {
  const auto scheme = url.find("://");
  std::string_view rest = scheme == std::string_view::npos ? url : url.substr(scheme + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
  return std::string(rest);
}

// ------------------------------------------------------------------------------------ notifier

Notifier::Notifier(Transport& transport, Millis retry_delay) : transport_(transport), retry_delay_(retry_delay) {}

NotificationResult Notifier::send_http(const Job& job, std::string channel, const HttpRequest& request) {
  NotificationResult res;
  res.channel = std::move(channel);
  const std::string host = url_host(request.url);
  std::vector<std::string> hidden{request.url};
  if (const auto path = url_path(request.url); path.size() > 1) hidden.push_back(path);
  for (auto& s : sensitive_strings(job.notifications)) hidden.push_back(std::move(s));
  std::string last_error;
  for (int attempt = 1; attempt <= max_attempts_; ++attempt) {
    auto r = transport_.http(request, job.notifications.timeout);
    bool retry = true;
    if (r && r->status >= 200 && r->status < 300) {
      res.ok = true;
      res.message = fmt::format("sent to {} (HTTP {}){}", host, r->status, attempt > 1 ? " after a retry" : "");
      spdlog::info("[{}] notify {}: {}", job.name, res.channel, res.message);
      return res;
    }
    if (r) {
      last_error = fmt::format("{} answered HTTP {}", host, r->status);
      retry = r->status >= 500 || r->status == 429 || r->status == 408;
    } else {
      last_error = fmt::format("{}: {}", host, redact(r.error().message, hidden));
    }
    if (attempt < max_attempts_ && retry) {
      spdlog::warn("[{}] notify {}: {}; retrying once", job.name, res.channel, last_error);
      std::this_thread::sleep_for(retry_delay_);
      continue;
    }
    if (attempt < max_attempts_) last_error += " (not retried)";
    break;
  }
  res.ok = false;
  res.message = redact(last_error, hidden);
  spdlog::warn("[{}] notify {} failed: {}", job.name, res.channel, res.message);
  return res;
}

NotificationResult Notifier::send_mail(const Job& job, const MailRequest& request) {
  NotificationResult res;
  res.channel = "smtp";
  const std::string host = url_host(request.url);
  std::vector<std::string> hidden = sensitive_strings(job.notifications);
  hidden.push_back(request.password.reveal());
  std::string last_error;
  for (int attempt = 1; attempt <= max_attempts_; ++attempt) {
    auto r = transport_.mail(request, job.notifications.timeout);
    if (r) {
      res.ok = true;
      res.message = fmt::format("sent to {} recipient(s) via {}{}", request.to.size(), host,
                                attempt > 1 ? " after a retry" : "");
      spdlog::info("[{}] notify smtp: {}", job.name, res.message);
      return res;
    }
    last_error = fmt::format("{}: {}", host, redact(r.error().message, hidden));
    if (attempt < max_attempts_) {
      spdlog::warn("[{}] notify smtp: {}; retrying once", job.name, last_error);
      std::this_thread::sleep_for(retry_delay_);
    }
  }
  res.message = last_error;
  spdlog::warn("[{}] notify smtp failed: {}", job.name, res.message);
  return res;
}

std::vector<NotificationResult> Notifier::send_all(const Job& job, const NotificationMessage& message,
                                                   const RunRecord* record, PingKind ping, bool messages) {
  const auto& n = job.notifications;
  std::vector<NotificationResult> out;
  if (messages && !n.ntfy_topic.empty()) {
    out.push_back(send_http(job, "ntfy", build_ntfy_request(n, message)));
  }
  if (messages && !n.pushover_token.empty()) {
    if (n.pushover_user.empty()) {
      out.push_back(NotificationResult{"pushover", false, "pushover_user is not set", nlohmann::json::object()});
    } else {
      out.push_back(send_http(job, "pushover", build_pushover_request(n, message)));
    }
  }
  if (messages && n.smtp && !n.smtp->host.empty()) {
    out.push_back(send_mail(job, build_mail_request(*n.smtp, message, std::chrono::system_clock::now())));
  }
  if (!n.healthchecks_url.empty()) {
    const auto req = build_ping_request(n.healthchecks_url, ping, message);
    if (!req.url.empty()) out.push_back(send_http(job, "healthchecks", req));
  }
  if (messages && !n.webhook_url.empty()) {
    if (record != nullptr) {
      out.push_back(send_http(job, "webhook", build_webhook_request(n.webhook_url, *record)));
    } else {
      HttpRequest req;
      req.url = n.webhook_url;
      req.headers = {"Content-Type: application/json"};
      req.body = nlohmann::json{{"test", true}, {"job", job.name}, {"title", message.title}, {"message", message.body}}
                     .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      out.push_back(send_http(job, "webhook", req));
    }
  }
  return out;
}

std::vector<NotificationResult> Notifier::run_finished(const Job& job, const RunRecord& record) {
  const bool messages = should_notify(job.notifications, record.outcome);
  if (!messages) {
    spdlog::info("[{}] notify: {} is not in notify_on; no messages", job.name, to_string(record.outcome));
  }
  const auto ping = record.outcome == RunOutcome::success ? PingKind::success : PingKind::failure;
  // After a signal the service manager is waiting for us to stop: one attempt per channel.
  max_attempts_ = record.outcome == RunOutcome::interrupted ? 1 : 2;
  auto results = send_all(job, build_run_message(job, record), &record, ping, messages);
  max_attempts_ = 2;
  return results;
}

std::vector<NotificationResult> Notifier::run_started(const Job& job) {
  if (job.notifications.healthchecks_url.empty()) return {};
  const auto req = build_ping_request(job.notifications.healthchecks_url, PingKind::start, NotificationMessage{});
  if (req.url.empty()) return {};
  return {send_http(job, "healthchecks", req)};
}

std::vector<NotificationResult> Notifier::test(const Job& job) {
  return send_all(job, build_test_message(job), nullptr, PingKind::success, true);
}

// ------------------------------------------------------------------------------------ libcurl

namespace {

struct CurlDeleter {
  void operator()(CURL* c) const noexcept { curl::easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const noexcept { curl::slist_free_all(l); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

std::size_t collect_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* out = static_cast<std::string*>(user);
  const std::size_t n = size * count;
  if (out->size() < kMaxResponseBytes) out->append(data, std::min(n, kMaxResponseBytes - out->size()));
  return n;
}

struct UploadCursor {
  const std::string* data = nullptr;
  std::size_t pos = 0;
};

std::size_t feed_upload(char* buffer, std::size_t size, std::size_t count, void* user) {
  auto* c = static_cast<UploadCursor*>(user);
  const std::size_t n = std::min(size * count, c->data->size() - c->pos);
  std::copy_n(c->data->data() + c->pos, n, buffer);
  c->pos += n;
  return n;
}

Result<void> append_header(Slist& list, const std::string& line) {
  curl_slist* next = curl::slist_append(list.get(), line.c_str());
  if (next == nullptr) return make_error("out of memory building a request");
  (void)list.release();
  list.reset(next);
  return ok();
}


void set_common(CURL* c, std::chrono::seconds timeout, char* errbuf) {
  const long secs = static_cast<long>(timeout.count());
  curl::easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl::easy_setopt(c, CURLOPT_CONNECTTIMEOUT, secs);
  curl::easy_setopt(c, CURLOPT_TIMEOUT, secs);
  curl::easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
}

std::string curl_error(CURLcode rc, const char* errbuf) {
  return errbuf[0] != '\0' ? std::string(trim(errbuf)) : std::string(curl::easy_strerror(rc));
}

class CurlTransport final : public Transport {
 public:

  Result<HttpResponse> http(const HttpRequest& request, std::chrono::seconds timeout) override {
    if (auto lib = curl::load(); !lib) return lib.error();
    CurlHandle c(curl::easy_init());
    if (!c) return make_error("cannot initialise libcurl");
    std::array<char, CURL_ERROR_SIZE> errbuf{};
    set_common(c.get(), timeout, errbuf.data());
    curl::easy_setopt(c.get(), CURLOPT_URL, request.url.c_str());
    curl::easy_setopt(c.get(), CURLOPT_PROTOCOLS_STR, "http,https");
    curl::easy_setopt(c.get(), CURLOPT_FOLLOWLOCATION, 0L);
    const std::string agent = std::string("hozo/") + kVersion;
    curl::easy_setopt(c.get(), CURLOPT_USERAGENT, agent.c_str());
    Slist headers;
    for (const auto& h : request.headers) {
      if (auto r = append_header(headers, h); !r) return r.error();
    }
    if (auto r = append_header(headers, "Expect:"); !r) return r.error();
    curl::easy_setopt(c.get(), CURLOPT_HTTPHEADER, headers.get());
    if (request.method == "GET") {
      curl::easy_setopt(c.get(), CURLOPT_HTTPGET, 1L);
    } else {
      curl::easy_setopt(c.get(), CURLOPT_POST, 1L);
      curl::easy_setopt(c.get(), CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
      curl::easy_setopt(c.get(), CURLOPT_POSTFIELDS, request.body.c_str());
    }
    HttpResponse response;
    curl::easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, &collect_body);
    curl::easy_setopt(c.get(), CURLOPT_WRITEDATA, &response.body);
    const CURLcode rc = curl::easy_perform(c.get());
    if (rc != CURLE_OK) return make_error(ExitCode::unavailable, "{}", curl_error(rc, errbuf.data()));
    curl::easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &response.status);
    return response;
  }

  Result<void> mail(const MailRequest& request, std::chrono::seconds timeout) override {
    if (auto lib = curl::load(); !lib) return lib.error();
    CurlHandle c(curl::easy_init());
    if (!c) return make_error("cannot initialise libcurl");
    std::array<char, CURL_ERROR_SIZE> errbuf{};
    set_common(c.get(), timeout, errbuf.data());
    curl::easy_setopt(c.get(), CURLOPT_URL, request.url.c_str());
    curl::easy_setopt(c.get(), CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    if (request.require_tls) curl::easy_setopt(c.get(), CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL));
    if (!request.user.empty()) {
      curl::easy_setopt(c.get(), CURLOPT_USERNAME, request.user.c_str());
      curl::easy_setopt(c.get(), CURLOPT_PASSWORD, request.password.reveal().c_str());
    }
    const std::string from = "<" + request.from + ">";
    curl::easy_setopt(c.get(), CURLOPT_MAIL_FROM, from.c_str());
    Slist rcpt;
    for (const auto& to : request.to) {
      if (auto r = append_header(rcpt, "<" + to + ">"); !r) return r.error();
    }
    curl::easy_setopt(c.get(), CURLOPT_MAIL_RCPT, rcpt.get());
    UploadCursor cursor{&request.data, 0};
    curl::easy_setopt(c.get(), CURLOPT_READFUNCTION, &feed_upload);
    curl::easy_setopt(c.get(), CURLOPT_READDATA, &cursor);
    curl::easy_setopt(c.get(), CURLOPT_UPLOAD, 1L);
    const CURLcode rc = curl::easy_perform(c.get());
    if (rc != CURLE_OK) return make_error(ExitCode::unavailable, "{}", curl_error(rc, errbuf.data()));
    return ok();
  }
};

}  // namespace

std::unique_ptr<Transport> make_curl_transport() { return std::make_unique<CurlTransport>(); }

std::vector<NotificationResult> notify_run(const Job& job, const RunRecord& record) {
  if (configured_channels(job.notifications).empty()) return {};  // no libcurl at all
  auto transport = make_curl_transport();
  Notifier notifier(*transport);
  return notifier.run_finished(job, record);
}

std::vector<NotificationResult> notify_start(const Job& job) {
  if (job.notifications.healthchecks_url.empty()) return {};  // no libcurl at all
  auto transport = make_curl_transport();
  Notifier notifier(*transport);
  return notifier.run_started(job);
}

std::vector<NotificationResult> notify_test(const Job& job) {
  if (configured_channels(job.notifications).empty()) return {};
  auto transport = make_curl_transport();
  Notifier notifier(*transport);
  return notifier.test(job);
}

}  // namespace hozo
