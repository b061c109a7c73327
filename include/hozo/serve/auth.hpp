#pragma once
// Who may use `hozo serve`: a bearer token (API, scripts), a password login (crypt(3) hash,
// yescrypt recommended) that creates an in-memory session, CSRF tokens for every POST, the
// same-origin check, and the rate limit on failed logins. Without any credential configured the
// server is open, which serve.cpp allows on loopback addresses only.

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "hozo/http/message.hpp"
#include "hozo/util/secret.hpp"

namespace hozo::serve {

/// Name of the session cookie.
inline constexpr std::string_view kSessionCookie = "hozo_session";

/// True when `password` matches the crypt(3) `hash` ("$y$..." yescrypt, or any scheme libcrypt knows).
bool check_password(std::string_view password, std::string_view hash);

/// `bytes` random bytes from getrandom(2), hex-encoded.
std::string random_hex(std::size_t bytes);

/// True when the request comes from a page of this server: Sec-Fetch-Site is same-origin, or
/// Origin is http(s)://<Host>. At least one of the two must be present.
bool same_origin(const http::Request& req);

/// Credentials and options.
struct AuthSettings {
  std::string password_hash;  ///< empty = no password login
  Secret token;               ///< empty = no bearer token
  std::chrono::seconds session_lifetime{12 * 3600};
  bool secure_cookies = false;
  unsigned max_failures = 5;                        ///< failed logins per peer within the window
  std::chrono::seconds failure_window{15 * 60};     ///< ... before 429 until the window has passed
};

/// What a request is allowed to do.
struct Identity {
  bool authenticated = false;  ///< may read and act
  bool bearer = false;         ///< by the bearer token (no cookie: no CSRF needed)
  std::string csrf;            ///< the token POST forms of this identity must carry
};

/// How a login attempt went.
enum class LoginResult { ok, wrong, rate_limited, disabled };

/// Thread-safe; one per server.
class Auth {
 public:
  explicit Auth(AuthSettings settings);

  /// True when a password or a token is configured.
  [[nodiscard]] bool enabled() const noexcept { return !settings_.password_hash.empty() || !settings_.token.empty(); }
  /// True when password login is possible.
  [[nodiscard]] bool password_login() const noexcept { return !settings_.password_hash.empty(); }

  /// Identifies the request by its bearer token or session cookie (open server: always authenticated).
  Identity identify(const http::Request& req);

  /// Checks a password from `peer`; on success `session_out` receives a new session id.
  LoginResult login(std::string_view password, const std::string& peer, std::string& session_out);
  /// Ends the session of this request, if any.
  void logout(const http::Request& req);

  /// True for a POST that may act: the bearer token, or a same-origin request carrying this
  /// identity's CSRF token (form field "csrf" or header X-CSRF-Token).
  bool post_allowed(const http::Request& req, const Identity& who) const;

  /// Set-Cookie options for the session cookie.
  [[nodiscard]] http::CookieOptions cookie_options() const;
  /// Seconds until `peer` may try again (0 = now).
  long long retry_after(const std::string& peer);

 private:
  struct Session {
    std::chrono::steady_clock::time_point expires;
    std::string csrf;
  };
  struct Failures {
    unsigned count = 0;
    std::chrono::steady_clock::time_point first;
  };
  void expire_locked(std::chrono::steady_clock::time_point now);

  AuthSettings settings_;
  std::string open_csrf_;  ///< CSRF token of the open (no-credential) server
  std::mutex mutex_;
  std::map<std::string, Session> sessions_;
  std::map<std::string, Failures> failures_;
};

}  // namespace hozo::serve
