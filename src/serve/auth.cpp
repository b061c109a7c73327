#include "hozo/serve/auth.hpp"

#include <crypt.h>
#include <sys/random.h>

#include <array>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "hozo/util/strings.hpp"

namespace hozo::serve {

bool check_password(std::string_view password, std::string_view hash) {
  if (hash.empty() || password.empty() || hash.size() > 512 || password.size() > 1024) return false;
  const std::string pw(password);
  const std::string setting(hash);
  if (pw.find('\0') != std::string::npos) return false;
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* out = crypt_r(pw.c_str(), setting.c_str(), data.get());
  // Failure is NULL or a string starting with '*' (never equal to a real hash).
  if (out == nullptr || out[0] == '*') return false;
  return http::constant_time_equal(out, setting);
}

std::string random_hex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  std::size_t got = 0;
  while (got < bytes) {
    const auto n = ::getrandom(raw.data() + got, bytes - got, 0);
    if (n <= 0) continue;  // EINTR; getrandom does not fail otherwise once the pool is ready
    got += static_cast<std::size_t>(n);
  }
  std::string out;
  out.reserve(bytes * 2);
  for (const char c : raw) out += fmt::format("{:02x}", static_cast<unsigned char>(c));
  return out;
}

bool same_origin(const http::Request& req) {
  const auto site = req.header("sec-fetch-site");
  const auto origin = req.header("origin");
  if (!site && !origin) return false;
  if (site && *site != "same-origin") return false;
  if (origin) {
    const auto host = req.header("host");
    if (!host || host->empty()) return false;
    if (*origin != "http://" + *host && *origin != "https://" + *host) return false;
  }
  return true;
}

Auth::Auth(AuthSettings settings) : settings_(std::move(settings)), open_csrf_(random_hex(32)) {}

void Auth::expire_locked(std::chrono::steady_clock::time_point now) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    it = it->second.expires <= now ? sessions_.erase(it) : std::next(it);
  }
  for (auto it = failures_.begin(); it != failures_.end();) {
    it = now - it->second.first >= settings_.failure_window ? failures_.erase(it) : std::next(it);
  }
}

Identity Auth::identify(const http::Request& req) {
  Identity who;
  if (!enabled()) {
    who.authenticated = true;
    who.csrf = open_csrf_;
    return who;
  }
  if (const auto authz = req.header("authorization")) {
    who.bearer = who.authenticated = http::bearer_matches(*authz, settings_.token);
    return who;  // a wrong token is never upgraded by a cookie
  }
  const auto cookie = req.cookie(kSessionCookie);
  if (!cookie || cookie->size() != 64) return who;
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  for (const auto& [id, session] : sessions_) {
    // Compare every id in constant time (few sessions exist).
    if (http::constant_time_equal(*cookie, id) && session.expires > now) {
      who.authenticated = true;
      who.csrf = session.csrf;
    }
  }
  return who;
}

long long Auth::retry_after(const std::string& peer) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  expire_locked(now);
  const auto it = failures_.find(peer);
  if (it == failures_.end() || it->second.count < settings_.max_failures) return 0;
  return std::chrono::duration_cast<std::chrono::seconds>(settings_.failure_window - (now - it->second.first)).count() + 1;
}

LoginResult Auth::login(std::string_view password, const std::string& peer, std::string& session_out) {
  if (!password_login()) return LoginResult::disabled;
  if (retry_after(peer) > 0) return LoginResult::rate_limited;
  const bool ok = check_password(password, settings_.password_hash);
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  if (!ok) {
    auto& f = failures_[peer];
    if (f.count == 0) f.first = now;
    ++f.count;
    return LoginResult::wrong;
  }
  failures_.erase(peer);
  if (sessions_.size() >= 1000) sessions_.erase(sessions_.begin());  // bounded memory
  session_out = random_hex(32);
  sessions_[session_out] = Session{now + settings_.session_lifetime, random_hex(32)};
  return LoginResult::ok;
}

void Auth::logout(const http::Request& req) {
  const auto cookie = req.cookie(kSessionCookie);
  if (!cookie) return;
  std::lock_guard lock(mutex_);
  sessions_.erase(*cookie);
}

bool Auth::post_allowed(const http::Request& req, const Identity& who) const {
  if (!who.authenticated) return false;
  if (who.bearer) return true;
  if (!same_origin(req)) return false;
  std::string given = req.header("x-csrf-token").value_or("");
  if (given.empty()) {
    for (const auto& [k, v] : req.form()) {
      if (k == "csrf") given = v;
    }
  }
  return !who.csrf.empty() && http::constant_time_equal(given, who.csrf);
}

http::CookieOptions Auth::cookie_options() const {
  http::CookieOptions o;
  o.secure = settings_.secure_cookies;
  o.max_age_seconds = settings_.session_lifetime.count();
  return o;
}

}  // namespace hozo::serve
