// Notifications: message building, request shapes per channel, e-mail headers, notify_on, secrets,
// retry once on a failing transport. The real libcurl transport is exercised in the lab
// (tests/lab/test_notify.sh).
#include <gtest/gtest.h>

#include <deque>

#include <nlohmann/json.hpp>

#include "hozo/notify.hpp"

using namespace hozo;

namespace {

constexpr const char* kNtfyToken = "tk_ntfysecret0123456789";
constexpr const char* kPushoverToken = "azGDORePK8gMaC0QOYAMyEEuzJnyUi";
constexpr const char* kPushoverUser = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG";
constexpr const char* kSmtpPassword = "smtp-p@ss-w0rd";

Job test_job() {
  Job job;
  job.name = "nightly";
  job.datasets = {DatasetPair{"tank/data", "backup/data", true}};
  job.target_host = "192.0.2.10";
  auto& n = job.notifications;
  n.ntfy_server = "http://ntfy.example:8080/";
  n.ntfy_topic = "backups";
  n.ntfy_token = Secret(kNtfyToken, "inline");
  n.pushover_token = Secret(kPushoverToken, "inline");
  n.pushover_user = Secret(kPushoverUser, "inline");
  n.pushover_url = "http://pushover.example/1/messages.json";
  SmtpSettings smtp;
  smtp.host = "mail.example";
  smtp.port = 587;
  smtp.user = "hozo";
  smtp.password = Secret(kSmtpPassword, "inline");
  smtp.from_addr = "hozo@example.org";
  smtp.to_addr = {"ops@example.org", "admin@example.net"};
  n.smtp = smtp;
  n.healthchecks_url = "http://hc.example/ping/0b6c1a4e-5d3f-4d0e-9c7e-2f1f2a3b4c5d";
  n.webhook_url = "http://hooks.example/hozo?key=hooksecret";
  return job;
}

RunRecord success_record() {
  RunRecord r;
  r.run_id = "20261124T080000Z-4242";
  r.job = "nightly";
  r.started = "2026-11-24T08:00:00Z";
  r.duration_seconds = 125;
  r.outcome = RunOutcome::success;
  r.attempts = 1;
  r.woke_host = true;
  r.shutdown.outcome = ShutdownOutcome::done;
  r.log_file = "/var/lib/hozo/logs/nightly/20261124T080000Z-4242.log";
  r.hostname = "nas";
  DatasetVerification d;
  d.source = "tank/data";
  d.target = "backup/data";
  d.newest_source_snapshot = "tank/data@autosnap_2026-11-24_08:00:00_daily";
  d.guid_match = true;
  d.remote_snapshot_count = 42;
  r.datasets = {d};
  return r;
}

RunRecord failed_record() {
  RunRecord r = success_record();
  r.outcome = RunOutcome::failed;
  r.exit_code = 1;
  r.failed_stage = "sync";
  r.error = "syncoid exited with status 2: cannot receive";
  r.datasets.clear();
  r.attempts = 3;
  return r;
}

/// Records requests; answers from a queue (default: HTTP 200 / mail ok).
class FakeTransport final : public Transport {
 public:
  std::vector<HttpRequest> requests;
  std::vector<MailRequest> mails;
  std::deque<Result<HttpResponse>> answers;
  std::deque<Result<void>> mail_answers;

  Result<HttpResponse> http(const HttpRequest& request, std::chrono::seconds) override {
    requests.push_back(request);
    if (answers.empty()) return HttpResponse{200, "{}"};
    auto a = std::move(answers.front());
    answers.pop_front();
    return a;
  }
  Result<void> mail(const MailRequest& request, std::chrono::seconds) override {
    mails.push_back(request);
    if (mail_answers.empty()) return ok();
    auto a = std::move(mail_answers.front());
    mail_answers.pop_front();
    return a;
  }
};

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

std::string header(const HttpRequest& r, const std::string& name) {
  for (const auto& h : r.headers) {
    if (h.rfind(name + ": ", 0) == 0) return h.substr(name.size() + 2);
  }
  return {};
}

void expect_no_secret(const std::string& text) {
  for (const char* s : {kNtfyToken, kPushoverToken, kPushoverUser, kSmtpPassword, "hooksecret",
                        "0b6c1a4e-5d3f-4d0e-9c7e-2f1f2a3b4c5d"}) {
    EXPECT_FALSE(contains(text, s)) << "secret " << s << " in: " << text;
  }
}

}  // namespace

// ------------------------------------------------------------------------------------ messages

TEST(Message, SuccessSaysEverythingAboutTheRun) {
  const auto m = build_run_message(test_job(), success_record());
  EXPECT_FALSE(m.failure);
  EXPECT_EQ(m.title, "hozo: nightly succeeded");
  for (const char* part : {"Outcome: success", "Duration: ", "tank/data -> backup/data",
                           "tank/data@autosnap_2026-11-24_08:00:00_daily", "GUID match", "42 snapshot(s)",
                           "Syncoid attempts: 1", "Box: woken by hozo", "Powered off: yes",
                           "Log: /var/lib/hozo/logs/nightly/20261124T080000Z-4242.log"}) {
    EXPECT_TRUE(contains(m.body, part)) << part << "\n" << m.body;
  }
  EXPECT_FALSE(contains(m.body, "Failed stage"));
}

TEST(Message, FailureNamesStageAndError) {
  auto r = failed_record();
  r.shutdown = ShutdownResult{ShutdownOutcome::skipped_in_use, "another job still uses the host"};
  const auto m = build_run_message(test_job(), r);
  EXPECT_TRUE(m.failure);
  EXPECT_EQ(m.title, "hozo: nightly FAILED (sync)");
  EXPECT_TRUE(contains(m.body, "Failed stage: sync"));
  EXPECT_TRUE(contains(m.body, "Error: syncoid exited with status 2: cannot receive"));
  EXPECT_TRUE(contains(m.body, "Syncoid attempts: 3"));
  EXPECT_TRUE(contains(m.body, "Powered off: no (skipped_in_use)"));
}

TEST(Message, InterruptedIsAFailure) {
  auto r = failed_record();
  r.outcome = RunOutcome::interrupted;
  const auto m = build_run_message(test_job(), r);
  EXPECT_TRUE(m.failure);
  EXPECT_EQ(m.title, "hozo: nightly interrupted");
  NotificationSettings only_failure;
  only_failure.notify_on = {NotifyOn::failure};
  EXPECT_TRUE(should_notify(only_failure, RunOutcome::interrupted));
  EXPECT_TRUE(should_notify(only_failure, RunOutcome::failed));
  EXPECT_FALSE(should_notify(only_failure, RunOutcome::success));
  NotificationSettings only_success;
  only_success.notify_on = {NotifyOn::success};
  EXPECT_FALSE(should_notify(only_success, RunOutcome::interrupted));
  EXPECT_TRUE(should_notify(only_success, RunOutcome::success));
  EXPECT_TRUE(should_notify(NotificationSettings{}, RunOutcome::success));
}

TEST(Message, ConfiguredChannels) {
  EXPECT_TRUE(configured_channels(NotificationSettings{}).empty());
  EXPECT_EQ(configured_channels(test_job().notifications),
            (std::vector<std::string>{"ntfy", "pushover", "smtp", "healthchecks", "webhook"}));
}

// ------------------------------------------------------------------------------------ requests

TEST(Ntfy, AsciiTitleUsesHeaders) {
  const auto job = test_job();
  const auto r = build_ntfy_request(job.notifications, build_run_message(job, failed_record()));
  EXPECT_EQ(r.url, "http://ntfy.example:8080/backups");
  EXPECT_EQ(header(r, "Title"), "hozo: nightly FAILED (sync)");
  EXPECT_EQ(header(r, "Priority"), "high");
  EXPECT_EQ(header(r, "Tags"), "rotating_light,floppy_disk");
  EXPECT_EQ(header(r, "Authorization"), std::string("Bearer ") + kNtfyToken);
  EXPECT_TRUE(contains(r.body, "Failed stage: sync"));
}

TEST(Ntfy, NonAsciiTitleUsesJsonPublish) {
  auto job = test_job();
  job.name = "Sicherung-Büro";
  const auto r = build_ntfy_request(job.notifications, build_run_message(job, success_record()));
  EXPECT_EQ(r.url, "http://ntfy.example:8080/");
  EXPECT_EQ(header(r, "Title"), "");
  for (const auto& h : r.headers) {
    for (const char c : h) EXPECT_LT(static_cast<unsigned char>(c), 0x80) << "raw UTF-8 in header " << h;
  }
  const auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["topic"], "backups");
  EXPECT_EQ(j["title"], "hozo: Sicherung-Büro succeeded");
  EXPECT_EQ(j["priority"], 3);
  EXPECT_EQ(j["tags"][0], "white_check_mark");
  EXPECT_TRUE(contains(j["message"].get<std::string>(), "Outcome: success"));
}

TEST(Pushover, FormFields) {
  const auto job = test_job();
  const auto r = build_pushover_request(job.notifications, build_run_message(job, failed_record()));
  EXPECT_EQ(r.url, "http://pushover.example/1/messages.json");
  EXPECT_EQ(header(r, "Content-Type"), "application/x-www-form-urlencoded");
  EXPECT_TRUE(contains(r.body, std::string("token=") + kPushoverToken));
  EXPECT_TRUE(contains(r.body, std::string("&user=") + kPushoverUser));
  EXPECT_TRUE(contains(r.body, "&title=hozo%3A%20nightly%20FAILED%20%28sync%29"));
  EXPECT_TRUE(contains(r.body, "&priority=1"));
}

TEST(Ping, HealthchecksStartSuccessFail) {
  const std::string url = "https://hc-ping.com/uuid-1/";
  const auto m = build_run_message(test_job(), failed_record());
  EXPECT_EQ(build_ping_request(url, PingKind::start, m).url, "https://hc-ping.com/uuid-1/start");
  EXPECT_EQ(build_ping_request(url, PingKind::success, m).url, "https://hc-ping.com/uuid-1");
  const auto fail = build_ping_request(url, PingKind::failure, m);
  EXPECT_EQ(fail.url, "https://hc-ping.com/uuid-1/fail");
  EXPECT_TRUE(contains(fail.body, "Failed stage: sync"));
  EXPECT_EQ(build_ping_request("https://hc.example/p/key/slug?create=1", PingKind::failure, m).url,
            "https://hc.example/p/key/slug/fail?create=1");
}

TEST(Ping, UptimeKumaPush) {
  const std::string url = "https://kuma.example/api/push/AbCdEf?status=up&msg=OK&ping=";
  const auto m = build_run_message(test_job(), failed_record());
  EXPECT_TRUE(build_ping_request(url, PingKind::start, m).url.empty());
  EXPECT_EQ(build_ping_request(url, PingKind::success, m).url, "https://kuma.example/api/push/AbCdEf?status=up&msg=OK");
  const auto down = build_ping_request(url, PingKind::failure, m);
  EXPECT_EQ(down.method, "GET");
  EXPECT_TRUE(contains(down.url, "status=down&msg=hozo%3A%20nightly"));
}

TEST(Webhook, PostsTheRunRecord) {
  const auto r = build_webhook_request("http://hooks.example/x", failed_record());
  const auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["outcome"], "failed");
  EXPECT_EQ(j["failed_stage"], "sync");
  EXPECT_EQ(j["job"], "nightly");
  EXPECT_EQ(header(r, "Content-Type"), "application/json");
}

// ------------------------------------------------------------------------------------ e-mail

TEST(Email, HeadersAndCrlf) {
  const auto job = test_job();
  const auto now = std::chrono::system_clock::from_time_t(1795824000);  // 2026-11-28T00:00:00Z, a Saturday
  const auto mail = build_mail_request(*job.notifications.smtp, build_run_message(job, failed_record()), now);
  EXPECT_EQ(mail.url, "smtp://mail.example:587");
  EXPECT_TRUE(mail.require_tls);
  EXPECT_EQ(mail.user, "hozo");
  EXPECT_EQ(mail.to, (std::vector<std::string>{"ops@example.org", "admin@example.net"}));
  const auto& d = mail.data;
  EXPECT_EQ(d.rfind("Date: Sat, 28 Nov 2026 00:00:00 +0000\r\n", 0), 0u) << d;
  EXPECT_TRUE(contains(d, "\r\nMessage-ID: <hozo.1795824000."));
  EXPECT_TRUE(contains(d, "@example.org>\r\n"));
  EXPECT_TRUE(contains(d, "\r\nFrom: hozo@example.org\r\n"));
  EXPECT_TRUE(contains(d, "\r\nTo: ops@example.org,\r\n admin@example.net\r\n"));
  EXPECT_TRUE(contains(d, "\r\nSubject: hozo: nightly FAILED (sync)\r\n"));
  EXPECT_TRUE(contains(d, "\r\nMIME-Version: 1.0\r\n"));
  EXPECT_TRUE(contains(d, "\r\nContent-Type: text/plain; charset=UTF-8\r\n"));
  EXPECT_TRUE(contains(d, "\r\nContent-Transfer-Encoding: 8bit\r\n"));
  EXPECT_TRUE(contains(d, "\r\n\r\nJob: nightly\r\n"));
  // Every LF is part of a CRLF.
  for (std::size_t i = 0; i < d.size(); ++i) {
    if (d[i] == '\n') {
      ASSERT_GT(i, 0u);
      EXPECT_EQ(d[i - 1], '\r') << "bare LF at " << i;
    }
  }
  expect_no_secret(d);
}

TEST(Email, Smtps465AndNoTls) {
  SmtpSettings s = *test_job().notifications.smtp;
  s.port = 465;
  auto m = build_mail_request(s, build_test_message(test_job()), std::chrono::system_clock::now());
  EXPECT_EQ(m.url, "smtps://mail.example:465");
  EXPECT_FALSE(m.require_tls);
  s.port = 25;
  s.use_tls = false;
  s.user.clear();
  m = build_mail_request(s, build_test_message(test_job()), std::chrono::system_clock::now());
  EXPECT_EQ(m.url, "smtp://mail.example:25");
  EXPECT_FALSE(m.require_tls);
  EXPECT_TRUE(m.password.empty());
}

TEST(Email, NonAsciiSubjectIsEncodedWord) {
  EXPECT_EQ(encode_header_text("plain ascii"), "plain ascii");
  EXPECT_EQ(encode_header_text("Büro"), "=?UTF-8?B?QsO8cm8=?=");
  // Long text: several encoded words, each at most 75 characters, folded with CRLF SP.
  std::string long_title;
  for (int i = 0; i < 20; ++i) long_title += "Sicherung fürs Büro ";
  const auto enc = encode_header_text(long_title);
  std::size_t start = 0;
  int words = 0;
  while (start < enc.size()) {
    auto end = enc.find("\r\n ", start);
    if (end == std::string::npos) end = enc.size();
    const auto word = enc.substr(start, end - start);
    EXPECT_LE(word.size(), 75u) << word;
    EXPECT_EQ(word.rfind("=?UTF-8?B?", 0), 0u);
    ++words;
    start = end == enc.size() ? end : end + 3;
  }
  EXPECT_GT(words, 1);
  // No control characters survive into a header (no header injection).
  EXPECT_EQ(encode_header_text("a\r\nBcc: x@y"), "a  Bcc: x@y");
}

TEST(Email, Rfc5322Date) {
  EXPECT_EQ(rfc5322_date(std::chrono::system_clock::from_time_t(0)), "Thu, 01 Jan 1970 00:00:00 +0000");
}

// ------------------------------------------------------------------------------------ notifier

TEST(Notifier, SendsEveryChannelOnceAndRecordsResults) {
  FakeTransport t;
  Notifier n(t, Millis(0));
  const auto results = n.run_finished(test_job(), success_record());
  ASSERT_EQ(results.size(), 5u);
  EXPECT_EQ(t.requests.size(), 4u);  // ntfy, pushover, healthchecks, webhook
  EXPECT_EQ(t.mails.size(), 1u);
  for (const auto& r : results) EXPECT_TRUE(r.ok) << r.channel << ": " << r.message;
  EXPECT_EQ(t.requests[2].url, "http://hc.example/ping/0b6c1a4e-5d3f-4d0e-9c7e-2f1f2a3b4c5d");
  for (const auto& r : results) expect_no_secret(nlohmann::json(r).dump());
}

TEST(Notifier, NotifyOnFailureSendsOnlyTheHealthchecksPingOnSuccess) {
  auto job = test_job();
  job.notifications.notify_on = {NotifyOn::failure};
  FakeTransport t;
  Notifier n(t, Millis(0));
  const auto results = n.run_finished(job, success_record());
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].channel, "healthchecks");
  EXPECT_TRUE(t.mails.empty());
  // ... and everything on failure, the ping going to /fail.
  t.requests.clear();
  const auto failed = n.run_finished(job, failed_record());
  EXPECT_EQ(failed.size(), 5u);
  EXPECT_EQ(t.requests[2].url, "http://hc.example/ping/0b6c1a4e-5d3f-4d0e-9c7e-2f1f2a3b4c5d/fail");
}

TEST(Notifier, StartPing) {
  FakeTransport t;
  Notifier n(t, Millis(0));
  const auto results = n.run_started(test_job());
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].ok);
  ASSERT_EQ(t.requests.size(), 1u);
  EXPECT_EQ(t.requests[0].url, "http://hc.example/ping/0b6c1a4e-5d3f-4d0e-9c7e-2f1f2a3b4c5d/start");
  auto no_hc = test_job();
  no_hc.notifications.healthchecks_url.clear();
  EXPECT_TRUE(n.run_started(no_hc).empty());
}

/// test_job() with every channel but ntfy switched off.
Job ntfy_only_job() {
  auto job = test_job();
  job.notifications.pushover_token = Secret();
  job.notifications.smtp.reset();
  job.notifications.healthchecks_url.clear();
  job.notifications.webhook_url.clear();
  return job;
}

TEST(Notifier, FailingTransportIsRetriedOnceAndRecordedWithoutSecrets) {
  auto job = ntfy_only_job();
  FakeTransport t;
  // The error text of a transport may quote the URL or a token: none of it may be recorded.
  t.answers.push_back(Error{std::string("connect to http://ntfy.example:8080/backups failed, token ") + kNtfyToken,
                            ExitCode::unavailable});
  t.answers.push_back(HttpResponse{500, "oops"});
  Notifier n(t, Millis(0));
  const auto results = n.run_finished(job, failed_record());
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(t.requests.size(), 2u);  // one retry
  EXPECT_FALSE(results[0].ok);
  EXPECT_EQ(results[0].channel, "ntfy");
  EXPECT_TRUE(contains(results[0].message, "HTTP 500")) << results[0].message;
  EXPECT_TRUE(contains(results[0].message, "ntfy.example:8080"));
}

TEST(Notifier, RetrySucceeds) {
  auto job = test_job();
  job.notifications.ntfy_topic.clear();
  job.notifications.pushover_token = Secret();
  job.notifications.healthchecks_url.clear();
  job.notifications.webhook_url.clear();
  FakeTransport t;
  t.mail_answers.push_back(Error{std::string("Login denied for password ") + kSmtpPassword, ExitCode::unavailable});
  Notifier n(t, Millis(0));
  const auto results = n.test(job);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].ok);
  EXPECT_TRUE(contains(results[0].message, "after a retry"));
  EXPECT_EQ(t.mails.size(), 2u);
}

TEST(Notifier, SecretsNeverInErrors) {
  auto job = test_job();
  FakeTransport t;
  for (int i = 0; i < 10; ++i) {
    t.answers.push_back(Error{std::string("failed: http://hc.example/ping/0b6c1a4e-5d3f-4d0e-9c7e-2f1f2a3b4c5d/fail ") +
                                  kPushoverToken + " " + kPushoverUser + " " + kNtfyToken + " key=hooksecret",
                              ExitCode::unavailable});
  }
  t.mail_answers.push_back(Error{std::string("auth failed ") + kSmtpPassword, ExitCode::unavailable});
  t.mail_answers.push_back(Error{std::string("auth failed ") + kSmtpPassword, ExitCode::unavailable});
  Notifier n(t, Millis(0));
  const auto results = n.run_finished(job, failed_record());
  ASSERT_EQ(results.size(), 5u);
  for (const auto& r : results) {
    EXPECT_FALSE(r.ok);
    expect_no_secret(nlohmann::json(r).dump());
  }
  // The message itself never carries a secret either.
  const auto m = build_run_message(job, failed_record());
  expect_no_secret(m.title + m.body);
}

TEST(Notifier, InterruptedRunIsNotRetried) {
  auto job = ntfy_only_job();
  FakeTransport t;
  t.answers.push_back(HttpResponse{503, ""});
  Notifier n(t, Millis(0));
  auto r = failed_record();
  r.outcome = RunOutcome::interrupted;
  const auto results = n.run_finished(job, r);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].ok);
  EXPECT_EQ(t.requests.size(), 1u);
}

TEST(Notifier, FourHundredIsNotRetried) {
  auto job = ntfy_only_job();
  FakeTransport t;
  t.answers.push_back(HttpResponse{403, "forbidden"});
  Notifier n(t, Millis(0));
  const auto results = n.run_finished(job, failed_record());
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].ok);
  EXPECT_EQ(t.requests.size(), 1u);
  EXPECT_TRUE(contains(results[0].message, "HTTP 403"));
}

TEST(UrlHost, OnlyTheHost) {
  EXPECT_EQ(url_host("https://user:pw@hc-ping.com/uuid/fail?x=1"), "hc-ping.com");
  EXPECT_EQ(url_host("http://127.0.0.1:8080/topic"), "127.0.0.1:8080");
  EXPECT_EQ(url_host("smtp://mail.example:587"), "mail.example:587");
}
