#pragma once
// Routing by method and path pattern, with path parameters.
//
// A pattern is a path of '/'-separated segments: a literal ("status"), a parameter ("{dev}",
// one segment) or a rest parameter ("{dev*}", one or more segments joined with '/', used where
// a parameter may itself be junk that the handler must refuse). Segments are matched on the raw
// path and decoded after matching, so "%2F" inside a segment never creates a new segment.

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hozo/http/message.hpp"

namespace hozo::http {

/// Produces the response for a complete request.
using Handler = std::function<Response(const Request&)>;

/// Runs when the headers are in, before any body is read: a response refuses the request
/// (e.g. 401 without the token) and the body is never read. `Request::body` is still empty.
using Guard = std::function<std::optional<Response>(const Request&)>;

/// Per-route options.
struct RouteOptions {
  Guard guard;                           ///< none = everyone
  std::optional<std::size_t> max_body;   ///< none = the server's Limits::max_body
};

/// What a lookup found.
struct Match {
  const Handler* handler = nullptr;      ///< null: see `status`
  const RouteOptions* options = nullptr;
  std::map<std::string, std::string> params;
  int status = 200;                      ///< 404 no such path, 405 path exists but not for this method
  std::string allow;                     ///< for 405: the methods the path takes ("GET, POST")
};

/// A table of routes; add them before the server starts (it is read-only while serving).
/// The first route that matches wins: add more specific patterns first.
class Router {
 public:
  /// Adds METHOD PATTERN (see above). HEAD is answered by GET routes.
  void add(std::string method, std::string_view pattern, Handler handler, RouteOptions options = {});
  /// Shorthands.
  void get(std::string_view pattern, Handler handler, RouteOptions options = {});
  void post(std::string_view pattern, Handler handler, RouteOptions options = {});

  /// Finds the route for a method and a raw path (no query).
  [[nodiscard]] Match match(std::string_view method, std::string_view raw_path) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    Handler handler;
    RouteOptions options;
  };
  std::vector<Route> routes_;
};

}  // namespace hozo::http
