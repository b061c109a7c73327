#pragma once
// HTTP requests and responses as the http module's handlers see them (see http/server.hpp).
// Plain values: no library types leak out, so handlers are testable without a socket.

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "hozo/util/secret.hpp"

namespace hozo::http {

/// One request, complete (headers and the whole, size-checked body) when a handler sees it.
struct Request {
  std::string method;                                   ///< "GET", "POST", ... (as sent)
  std::string target;                                   ///< raw request target: path and query, undecoded
  std::string path;                                     ///< raw path (no query), undecoded
  std::map<std::string, std::string> params;            ///< path parameters ({dev} → value), decoded
  std::vector<std::pair<std::string, std::string>> query;  ///< decoded query arguments, in order
  std::vector<std::pair<std::string, std::string>> headers;  ///< names lower-cased, in order
  std::string body;                                     ///< at most the route's max_body bytes
  std::string peer;                                     ///< the socket's peer address (never a header)

  /// First header with this name (case-insensitive), if any.
  [[nodiscard]] std::optional<std::string> header(std::string_view name) const;
  /// First query argument with this name, if any.
  [[nodiscard]] std::optional<std::string> query_param(std::string_view name) const;
  /// True for ?NAME=1, true or yes.
  [[nodiscard]] bool flag(std::string_view name) const;
  /// A path parameter ("" when the route has none of that name).
  [[nodiscard]] std::string param(std::string_view name) const;
  /// Value of cookie NAME from the Cookie header(s), if any.
  [[nodiscard]] std::optional<std::string> cookie(std::string_view name) const;
  /// Fields of an application/x-www-form-urlencoded body (empty for other content types).
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> form() const;
};

/// Options of a Set-Cookie header. Defaults are the safe ones (HttpOnly, SameSite=Strict, Path=/).
struct CookieOptions {
  std::string path = "/";
  std::optional<long long> max_age_seconds;  ///< none = session cookie; 0 deletes it
  bool http_only = true;
  bool secure = false;                       ///< set it when served over TLS
  std::string same_site = "Strict";          ///< "Strict", "Lax" or "None"
};

/// Produces a streamed body piece by piece: append up to `max` bytes to `out` and return true,
/// or return false at the end. May block (each connection has its own thread), e.g. to wait for
/// the next server-sent event; keep waits short enough for the server's write timeout.
using BodyProducer = std::function<bool(std::string& out, std::size_t max)>;

/// A response. Build with the helpers; `headers` are added as given.
struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  BodyProducer stream;  ///< set: the body is streamed (chunked) from it and `body` is ignored
  bool close = false;   ///< ask for the connection to be closed after this response

  /// JSON (invalid UTF-8 in strings is replaced, never an exception).
  static Response json(int status, const nlohmann::json& body);
  /// {"error": message}
  static Response json_error(int status, std::string_view message);
  /// text/html; charset=utf-8
  static Response html(int status, std::string body);
  /// text/plain; charset=utf-8
  static Response text(int status, std::string body);
  /// A streamed body, e.g. text/event-stream.
  static Response streamed(int status, std::string content_type, BodyProducer producer);

  /// Adds a header (name and value must be free of CR/LF: checked, bad ones are dropped).
  Response& header(std::string name, std::string value);
  /// Adds a Set-Cookie header.
  Response& set_cookie(std::string_view name, std::string_view value, const CookieOptions& options = {});
};

/// Percent-decodes `text` ('+' as space when `plus_is_space`); nullopt for a bad %XX escape.
std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space = false);

/// Splits "a=1&b=%20x" into decoded pairs ('+' is a space); bad escapes keep the raw text.
std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query);

/// Parses a Cookie header value ("a=1; b=2") into pairs.
std::vector<std::pair<std::string, std::string>> parse_cookies(std::string_view header_value);

/// Constant-time check of an Authorization header value against the token: true only for
/// "Bearer <token>" (scheme case-insensitive) with a non-empty token.
bool bearer_matches(std::string_view header_value, const Secret& token) noexcept;

/// Constant-time comparison of two strings (time depends only on `expected`'s length).
bool constant_time_equal(std::string_view given, std::string_view expected) noexcept;

/// The reason phrase of a status code ("Not Found"); "Unknown" for others.
std::string_view status_text(int status) noexcept;

}  // namespace hozo::http
