#pragma once
// Notifications about runs: ntfy, Pushover, e-mail (SMTP), healthchecks-style pings, JSON webhook.
//
// The message and every request are built by pure functions (unit-tested); a Transport sends them
// (libcurl in production, a fake in tests). A failing channel never changes a run's outcome: each
// channel gets one retry, short timeouts (NotificationSettings::timeout for connect and total), and
// its result is returned as a NotificationResult for RunRecord::notifications.
//
// Secrets (tokens, passwords) go only onto the wire. Results and logs name a channel's host, never
// its full URL (healthchecks and webhook URLs often carry a key in the path).

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hozo/config.hpp"
#include "hozo/state.hpp"
#include "hozo/util/result.hpp"
#include "hozo/util/time.hpp"

namespace hozo {

/// What a run's notification says, independent of the channel.
struct NotificationMessage {
  std::string title;              ///< one line, e.g. "hozo: nightly failed (sync)"
  std::string body;               ///< plain text, '\n' line ends
  bool failure = false;           ///< failed or interrupted: high priority
  std::vector<std::string> tags;  ///< ntfy tags (emoji short codes)
};

/// Builds the message for a finished run (`record.outcome` must not be running).
NotificationMessage build_run_message(const Job& job, const RunRecord& record);

/// The message `hozo notify test` sends.
NotificationMessage build_test_message(const Job& job);

/// True when `outcome` is selected by notify_on (interrupted and failed count as failure).
bool should_notify(const NotificationSettings& settings, RunOutcome outcome);

/// Names of the configured channels, in sending order ("ntfy", "pushover", "smtp", "healthchecks",
/// "webhook"); empty when notifications are off.
std::vector<std::string> configured_channels(const NotificationSettings& settings);

/// One HTTP request as sent by a Transport.
struct HttpRequest {
  std::string method = "POST";       ///< "GET" or "POST"
  std::string url;                   ///< may contain credentials: never logged
  std::vector<std::string> headers;  ///< "Name: value"
  std::string body;
};

/// The answer to an HttpRequest (any status; the Notifier judges it).
struct HttpResponse {
  long status = 0;
  std::string body;
};

/// One e-mail as sent by a Transport.
struct MailRequest {
  std::string url;                 ///< smtp://host:port or smtps://host:port
  bool require_tls = false;        ///< STARTTLS required (CURLUSESSL_ALL)
  std::string user;                ///< empty = no login
  Secret password;                 ///< only with user
  std::string from;                ///< envelope sender
  std::vector<std::string> to;     ///< envelope recipients
  std::string data;                ///< the whole message, CRLF line ends
};

/// Sends requests. Implementations report transport problems (connect, timeout, TLS) as Error;
/// the message must not contain the URL's path or query.
class Transport {
 public:
  virtual ~Transport() = default;
  /// Performs one HTTP request with `timeout` for connecting and for the whole exchange.
  virtual Result<HttpResponse> http(const HttpRequest& request, std::chrono::seconds timeout) = 0;
  /// Delivers one e-mail with `timeout` for connecting and for the whole exchange.
  virtual Result<void> mail(const MailRequest& request, std::chrono::seconds timeout) = 0;
};

/// The libcurl transport (curl_global_init runs once per process).
std::unique_ptr<Transport> make_curl_transport();

/// The ntfy request: POST SERVER/TOPIC with Title/Priority/Tags headers, or, when the title is not
/// ASCII, ntfy's JSON publish format (POST SERVER/ with {topic,title,message,priority,tags}).
HttpRequest build_ntfy_request(const NotificationSettings& settings, const NotificationMessage& message);

/// The Pushover request: form-encoded token, user, title, message, priority (1 on failure).
HttpRequest build_pushover_request(const NotificationSettings& settings, const NotificationMessage& message);

/// What a healthchecks-style ping reports.
enum class PingKind { start, success, failure };

/// The ping: URL/start, URL, or URL/fail with the message body (healthchecks.io). For an Uptime Kuma
/// push URL (".../api/push/..."): status=up|down&msg=... on the query; no request for start
/// (the returned request has an empty url then).
HttpRequest build_ping_request(const std::string& ping_url, PingKind kind, const NotificationMessage& message);

/// The webhook request: POST of the run record as JSON.
HttpRequest build_webhook_request(const std::string& url, const RunRecord& record);

/// "Tue, 24 Nov 2026 08:00:00 +0000" (RFC 5322 date-time in UTC).
std::string rfc5322_date(SystemTime t);

/// `text` as it may stand in a header: unchanged when printable ASCII, else RFC 2047 encoded words
/// (UTF-8, base64), folded so that no encoded word exceeds 75 characters.
std::string encode_header_text(std::string_view text);

/// The complete e-mail: Date, Message-ID, From, To, Subject, MIME-Version, Content-Type
/// (text/plain; charset=UTF-8), Content-Transfer-Encoding 8bit, blank line, body; CRLF line ends.
std::string build_email(const SmtpSettings& smtp, const NotificationMessage& message, SystemTime now,
                        std::string_view message_id);

/// The SMTP delivery for `message` (smtps:// on port 465, STARTTLS required when use_tls).
MailRequest build_mail_request(const SmtpSettings& smtp, const NotificationMessage& message, SystemTime now);

/// The host of `url` ("https://user:pw@hc-ping.com/uuid" -> "hc-ping.com"): what logs may show.
std::string url_host(std::string_view url);

/// Sends messages through a job's channels over a Transport, one retry per channel.
class Notifier {
 public:
  /// `retry_delay` is the pause before the one retry.
  explicit Notifier(Transport& transport, Millis retry_delay = Millis(1000));

  /// After a run: every channel selected by notify_on (healthchecks always pings: it is a
  /// dead man's switch, not a message). Empty when nothing was due. An interrupted run gets no
  /// retries (the service manager is waiting for the process to stop).
  std::vector<NotificationResult> run_finished(const Job& job, const RunRecord& record);
  /// At run start: the healthchecks /start ping (if configured). Empty when nothing was sent.
  std::vector<NotificationResult> run_started(const Job& job);
  /// A test message through every configured channel, ignoring notify_on.
  std::vector<NotificationResult> test(const Job& job);

 private:
  std::vector<NotificationResult> send_all(const Job& job, const NotificationMessage& message,
                                           const RunRecord* record, PingKind ping, bool messages);
  NotificationResult send_http(const Job& job, std::string channel, const HttpRequest& request);
  NotificationResult send_mail(const Job& job, const MailRequest& request);

  Transport& transport_;
  Millis retry_delay_;
  int max_attempts_ = 2;
};

/// Notifies about a finished run over libcurl (see Notifier::run_finished).
std::vector<NotificationResult> notify_run(const Job& job, const RunRecord& record);
/// The healthchecks /start ping over libcurl (see Notifier::run_started).
std::vector<NotificationResult> notify_start(const Job& job);
/// `hozo notify test`: a test message through every configured channel over libcurl.
std::vector<NotificationResult> notify_test(const Job& job);

}  // namespace hozo
