#pragma once
// The HTTP server of backupd and `hozo serve`, on libmicrohttpd.
//
// Bounds come from the library: a per-connection memory pool holds the request line, the
// headers and the read buffer (an over-long line or too many headers → 431/414 and close), a
// connection limit and a per-IP limit (more connections are closed at once), an idle timeout.
// On top of it this layer adds: a body limit checked against Content-Length before anything is
// read and counted for chunked bodies (over it: 413, or the connection is closed mid-body),
// a deadline for a whole request to arrive (slow senders are cut), a cap of requests per
// connection, 415 for any Content-Encoding (request bodies are never decompressed), and an
// access log line per request with the socket's peer address.
//
// Each connection has its own thread, so handlers and streamed bodies may block.

#include <chrono>
#include <csignal>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "hozo/http/router.hpp"
#include "hozo/util/result.hpp"

namespace hozo::http {

/// Limits of a server (defaults suit backupd; `hozo serve` may raise max_body for forms).
struct Limits {
  std::size_t max_body = 16 * 1024;               ///< request body bytes (per route overridable)
  std::size_t connection_memory = 32 * 1024;       ///< per-connection pool: request line + headers + buffer
  unsigned max_connections = 64;                   ///< open connections (each one thread)
  unsigned max_connections_per_ip = 16;            ///< from one peer address (0 = no limit)
  std::chrono::seconds idle_timeout{5};            ///< silence on a connection before it is closed
  std::chrono::seconds request_timeout{10};        ///< a whole request (line, headers, body) must arrive within this
  std::size_t keep_alive_max = 20;                 ///< requests per connection
  std::size_t thread_stack = 512 * 1024;           ///< stack size of each connection thread
};

/// One line of the access log.
struct AccessEntry {
  std::string method;       ///< empty when the request line never arrived
  std::string path;         ///< raw path, printable() and cut to 120 characters
  int status = 0;           ///< 0: no response was sent (the connection was closed)
  std::string peer;         ///< socket peer address
  std::chrono::milliseconds duration{0};
  std::string note;         ///< why a request was cut ("body over the limit", "request timeout", ...)
};

/// Where the server listens.
struct Listen {
  std::string host = "127.0.0.1";  ///< IPv4 or IPv6 literal
  int port = 0;                    ///< 0 = any free port
  int fd = -1;                     ///< >= 0: an already listening socket (socket activation); host/port ignored
};

/// Server options.
struct ServerOptions {
  Listen listen;
  Limits limits;
  /// Called once per request (default: spdlog info, /ping-like 200s at debug is up to the caller).
  std::function<void(const AccessEntry&)> access_log;
  /// Called when a handler throws: log it; the client gets a generic 500.
  std::function<void(const Request&, std::string_view what)> on_exception;
};

/// A running server. start() binds and serves on libmicrohttpd's threads; stop() (or the
/// destructor) closes it and waits for the connection threads.
class Server {
 public:
  Server(Router router, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds (or takes the socket) and starts serving; returns the bound port.
  Result<int> start();
  /// Stops serving; idempotent.
  void stop();
  /// Connections currently open.
  [[nodiscard]] std::size_t connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The socket systemd passed (LISTEN_PID = this process, LISTEN_FDS = 1): its fd (3), made
/// close-on-exec and checked to be a listening TCP socket; the variables are unset so children
/// do not see them. nullopt when not socket-activated; an Error for more than one socket or a
/// socket that is not a listening stream socket.
Result<std::optional<int>> systemd_listen_socket();

/// For a server's main thread, before any other thread starts: blocks SIGINT and SIGTERM (so that
/// wait_for_stop_signal() takes them; children get a clean mask, see process.cpp) and ignores SIGPIPE.
sigset_t block_stop_signals();

/// Waits for one of the signals block_stop_signals() blocked, logs it and returns it.
int wait_for_stop_signal(const sigset_t& signals);

/// "ADDR:PORT" ("[ADDR]:PORT" for IPv6) of a bound socket, for logs; "?" on failure.
std::string describe_socket(int fd);

}  // namespace hozo::http
