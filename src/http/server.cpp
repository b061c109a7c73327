#include "hozo/http/server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "hozo/util/shared_library.hpp"
#include "hozo/util/strings.hpp"

namespace hozo::http {

namespace {

/// libmicrohttpd's functions, loaded on first use (see util/shared_library.hpp): only backupd and
/// `hozo serve` run an HTTP server, and every other hozo command is spared loading it (and GnuTLS).
struct MhdApi {
  decltype(::MHD_get_connection_info)* get_connection_info = nullptr;
  decltype(::MHD_create_response_from_callback)* create_response_from_callback = nullptr;
  decltype(::MHD_create_response_from_buffer)* create_response_from_buffer = nullptr;
  decltype(::MHD_add_response_header)* add_response_header = nullptr;
  decltype(::MHD_queue_response)* queue_response = nullptr;
  decltype(::MHD_destroy_response)* destroy_response = nullptr;
  decltype(::MHD_get_connection_values)* get_connection_values = nullptr;
  decltype(::MHD_start_daemon)* start_daemon = nullptr;
  decltype(::MHD_stop_daemon)* stop_daemon = nullptr;
};

MhdApi g_mhd;

Result<void> load_mhd() {
  static std::once_flag once;
  static Result<void> loaded = ok();
  std::call_once(once, [] {
    auto lib = SharedLibrary::open("libmicrohttpd.so.12", "libmicrohttpd12");
    if (!lib) {
      loaded = std::move(lib).error();
      return;
    }
    for (auto bound :
         {lib->bind(g_mhd.get_connection_info, "MHD_get_connection_info"),
          lib->bind(g_mhd.create_response_from_callback, "MHD_create_response_from_callback"),
          lib->bind(g_mhd.create_response_from_buffer, "MHD_create_response_from_buffer"),
          lib->bind(g_mhd.add_response_header, "MHD_add_response_header"),
          lib->bind(g_mhd.queue_response, "MHD_queue_response"),
          lib->bind(g_mhd.destroy_response, "MHD_destroy_response"),
          lib->bind(g_mhd.get_connection_values, "MHD_get_connection_values"),
          lib->bind(g_mhd.start_daemon, "MHD_start_daemon"), lib->bind(g_mhd.stop_daemon, "MHD_stop_daemon")}) {
      if (!bound) {
        loaded = bound;
        return;
      }
    }
  });
  return loaded;
}

/// The loaded functions (load_mhd() succeeded before any server started).
const MhdApi& mhd_api() noexcept { return g_mhd; }

using Clock = std::chrono::steady_clock;

std::string address_text(const sockaddr* addr) {
  if (addr == nullptr) return "?";
  char buf[INET6_ADDRSTRLEN] = {};
  if (addr->sa_family == AF_INET) {
    sockaddr_in in{};
    std::memcpy(&in, addr, sizeof(in));
    ::inet_ntop(AF_INET, &in.sin_addr, buf, sizeof(buf));
    return buf;
  }
  if (addr->sa_family == AF_INET6) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, addr, sizeof(in6));
    ::inet_ntop(AF_INET6, &in6.sin6_addr, buf, sizeof(buf));
    const std::string text = buf;
    // IPv4-mapped peers of a dual-stack socket read better as IPv4.
    if (starts_with(text, "::ffff:") && text.find('.') != std::string::npos) return text.substr(7);
    return text;
  }
  return "?";
}

int port_of(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET) {
    sockaddr_in in{};
    std::memcpy(&in, &addr, sizeof(in));
    return ntohs(in.sin_port);
  }
  if (addr.ss_family == AF_INET6) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, &addr, sizeof(in6));
    return ntohs(in6.sin6_port);
  }
  return -1;
}

std::string log_path(std::string_view path) { return printable(path.substr(0, 120)); }

/// Per connection (MHD's socket context).
struct Conn {
  int fd = -1;
  sockaddr_storage peer_addr{};
  std::string peer;
  std::size_t requests = 0;
  Clock::time_point deadline;  ///< the current request must have arrived by then
  bool waiting = true;         ///< a request is (or may be) arriving: the deadline applies
  bool cut = false;            ///< the watchdog shut the socket down
  bool logged = false;         ///< at least one request was logged
};

/// State of a streamed body.
struct Stream {
  BodyProducer producer;
  std::string pending;
  bool done = false;
};

/// Per request (created by the URI log callback, freed by the completion callback).
struct Req {
  Clock::time_point started = Clock::now();
  Request request;
  bool headers_done = false;
  bool answered = false;        ///< a response is queued
  bool handled = false;
  std::size_t max_body = 0;
  const Handler* handler = nullptr;
  int status = 0;
  std::string note;
};

}  // namespace

struct Server::Impl {
  Router router;
  ServerOptions options;
  MHD_Daemon* daemon = nullptr;
  int listen_fd = -1;
  int port = 0;

  mutable std::mutex mutex;
  std::set<Conn*> conns;
  std::condition_variable cv;
  bool stopping = false;
  std::thread watchdog;

  Impl(Router r, ServerOptions o) : router(std::move(r)), options(std::move(o)) {
    if (!options.access_log) {
      options.access_log = [](const AccessEntry& e) {
        spdlog::info("{} {} {} from {}{}{}", e.method.empty() ? "-" : e.method, e.path.empty() ? "-" : e.path, e.status,
                     e.peer, e.note.empty() ? "" : ": ", e.note);
      };
    }
  }

  void log_request(Conn* conn, Req& req, MHD_Connection* connection) {
    AccessEntry entry;
    entry.method = printable(std::string_view(req.request.method).substr(0, 16));
    entry.path = log_path(req.request.path);
    entry.status = req.status;
    if (entry.status == 0 && connection != nullptr) {
      // A response libmicrohttpd queued itself (431, 414, 400 ...).
      if (const auto* info = mhd_api().get_connection_info(connection, MHD_CONNECTION_INFO_HTTP_STATUS)) {
        entry.status = static_cast<int>(info->http_status);
      }
    }
    entry.peer = conn != nullptr ? conn->peer : "?";
    entry.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - req.started);
    entry.note = req.note;
    options.access_log(entry);
  }

  // ---- libmicrohttpd callbacks (C linkage is not required for function pointers) ----

  static void on_connection(void* cls, MHD_Connection* connection, void** socket_context,
                            MHD_ConnectionNotificationCode code) {
    auto* self = static_cast<Impl*>(cls);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
      auto* conn = new Conn();
      if (const auto* info = mhd_api().get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD)) conn->fd = info->connect_fd;
      if (const auto* info = mhd_api().get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS)) {
        conn->peer = address_text(info->client_addr);
        const socklen_t len = info->client_addr->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
        std::memcpy(&conn->peer_addr, info->client_addr, len);
      }
      conn->deadline = Clock::now() + self->options.limits.request_timeout;
      std::lock_guard lock(self->mutex);
      self->conns.insert(conn);
      *socket_context = conn;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
      auto* conn = static_cast<Conn*>(*socket_context);
      if (conn == nullptr) return;
      {
        std::lock_guard lock(self->mutex);
        self->conns.erase(conn);
      }
      if (conn->cut && !conn->logged) {
        AccessEntry entry;
        entry.peer = conn->peer;
        entry.note = "request did not arrive within the request timeout; connection closed";
        self->options.access_log(entry);
      } else if (!conn->logged && conn->requests == 0) {
        spdlog::debug("connection from {} closed without a complete request line", conn->peer);
      }
      delete conn;
      *socket_context = nullptr;
    }
  }

  static void* on_uri(void* /*cls*/, const char* uri, MHD_Connection* /*connection*/) {
    auto* req = new Req();
    req->request.target = uri != nullptr ? uri : "";
    const auto q = req->request.target.find('?');
    req->request.path = req->request.target.substr(0, q);
    if (q != std::string::npos) req->request.query = parse_query(std::string_view(req->request.target).substr(q + 1));
    return req;
  }

  static Conn* conn_of(MHD_Connection* connection) {
    const auto* info = mhd_api().get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info != nullptr ? static_cast<Conn*>(info->socket_context) : nullptr;
  }

  static void on_completed(void* cls, MHD_Connection* connection, void** req_cls, MHD_RequestTerminationCode toe) {
    auto* self = static_cast<Impl*>(cls);
    auto* req = static_cast<Req*>(*req_cls);
    if (req == nullptr) return;
    Conn* conn = conn_of(connection);
    if (req->note.empty()) {
      switch (toe) {
        case MHD_REQUEST_TERMINATED_COMPLETED_OK: break;
        case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED: req->note = "idle timeout; connection closed"; break;
        case MHD_REQUEST_TERMINATED_CLIENT_ABORT: req->note = "client closed the connection"; break;
        case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN: req->note = "server stopping"; break;
        case MHD_REQUEST_TERMINATED_READ_ERROR: req->note = "read error; connection closed"; break;
        default: req->note = "malformed or over-limit request; connection closed"; break;
      }
      if (conn != nullptr && conn->cut) req->note = "request did not arrive within the request timeout; connection closed";
    }
    self->log_request(conn, *req, connection);
    if (conn != nullptr) {
      std::lock_guard lock(self->mutex);
      conn->logged = true;
      conn->requests += 1;
      // The next request on this connection: idle time plus the request timeout.
      conn->deadline = Clock::now() + self->options.limits.idle_timeout + self->options.limits.request_timeout;
      conn->waiting = true;
    }
    delete req;
    *req_cls = nullptr;
  }

  static ssize_t read_stream(void* cls, uint64_t /*pos*/, char* buf, size_t max) {
    auto* stream = static_cast<Stream*>(cls);
    try {
      while (stream->pending.empty()) {
        if (stream->done) return MHD_CONTENT_READER_END_OF_STREAM;
        if (!stream->producer(stream->pending, max)) stream->done = true;
      }
    } catch (const std::exception& e) {
      spdlog::error("streamed response: {}", printable(e.what()));
      return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    const std::size_t n = std::min(max, stream->pending.size());
    std::memcpy(buf, stream->pending.data(), n);
    stream->pending.erase(0, n);
    return static_cast<ssize_t>(n);
  }

  static void free_stream(void* cls) { delete static_cast<Stream*>(cls); }

  MHD_Result queue(MHD_Connection* connection, Conn* conn, Req& req, Response response) {
    MHD_Response* mhd = nullptr;
    if (response.stream) {
      auto* stream = new Stream{std::move(response.stream), {}, false};
      mhd = mhd_api().create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, &Impl::read_stream, stream, &Impl::free_stream);
      if (mhd == nullptr) delete stream;
    } else {
      mhd = mhd_api().create_response_from_buffer(response.body.size(), response.body.data(), MHD_RESPMEM_MUST_COPY);
    }
    if (mhd == nullptr) return MHD_NO;
    mhd_api().add_response_header(mhd, MHD_HTTP_HEADER_CONTENT_TYPE, response.content_type.c_str());
    mhd_api().add_response_header(mhd, "X-Content-Type-Options", "nosniff");
    bool cache_set = false;
    for (const auto& [name, value] : response.headers) {
      if (to_lower(name) == "cache-control") cache_set = true;
      mhd_api().add_response_header(mhd, name.c_str(), value.c_str());
    }
    if (!cache_set) mhd_api().add_response_header(mhd, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    const bool last = conn != nullptr && conn->requests + 1 >= options.limits.keep_alive_max;
    if (response.close || last || !req.handled) mhd_api().add_response_header(mhd, MHD_HTTP_HEADER_CONNECTION, "close");
    req.status = response.status;
    req.answered = true;
    const auto result = mhd_api().queue_response(connection, static_cast<unsigned>(response.status), mhd);
    mhd_api().destroy_response(mhd);
    return result;
  }

  /// Stops the request deadline: the request is in (or answered early).
  void arrived(Conn* conn) {
    if (conn == nullptr) return;
    std::lock_guard lock(mutex);
    conn->waiting = false;
  }

  static MHD_Result collect_header(void* cls, MHD_ValueKind /*kind*/, const char* key, const char* value) {
    auto* request = static_cast<Request*>(cls);
    request->headers.emplace_back(to_lower(key != nullptr ? key : ""), value != nullptr ? value : "");
    return MHD_YES;
  }

  static MHD_Result on_request(void* cls, MHD_Connection* connection, const char* /*url*/, const char* method,
                               const char* /*version*/, const char* upload_data, size_t* upload_data_size,
                               void** req_cls) {
    auto* self = static_cast<Impl*>(cls);
    auto* req = static_cast<Req*>(*req_cls);
    if (req == nullptr) return MHD_NO;  // no URI callback ran: should not happen
    Conn* conn = conn_of(connection);
    auto& request = req->request;

    if (!req->headers_done) {
      req->headers_done = true;
      request.method = method != nullptr ? method : "";
      request.peer = conn != nullptr ? conn->peer : "?";
      mhd_api().get_connection_values(connection, MHD_HEADER_KIND, &Impl::collect_header, &request);
      auto early = [&](Response response, std::string note = {}) {
        self->arrived(conn);
        req->note = std::move(note);
        return self->queue(connection, conn, *req, std::move(response));
      };
      if (auto encoding = request.header("content-encoding"); encoding && to_lower(trim(*encoding)) != "identity") {
        return early(Response::json_error(415, "request bodies must not be encoded (Content-Encoding)"),
                     "Content-Encoding refused, nothing decompressed");
      }
      const auto match = self->router.match(request.method, request.path);
      if (match.handler == nullptr) {
        auto response = Response::json_error(match.status, match.status == 405 ? "method not allowed" : "not found");
        if (match.status == 405) response.header("Allow", match.allow);
        return early(std::move(response));
      }
      request.params = match.params;
      req->handler = match.handler;
      req->max_body = match.options->max_body.value_or(self->options.limits.max_body);
      if (match.options->guard) {
        std::optional<Response> refused;
        try {
          refused = match.options->guard(request);
        } catch (const std::exception& e) {
          if (self->options.on_exception) self->options.on_exception(request, e.what());
          refused = Response::json_error(500, "internal error");
        }
        if (refused) return early(std::move(*refused));
      }
      if (auto length = request.header("content-length")) {
        const auto n = parse_int(trim(*length));
        if (!n || *n < 0 || static_cast<unsigned long long>(*n) > req->max_body) {
          return early(Response::json_error(413, "payload too large"), "body over the limit (Content-Length)");
        }
      }
      return MHD_YES;  // now the body (if any), then the final call
    }

    if (req->answered) {  // answered early: libmicrohttpd discards what still arrives
      *upload_data_size = 0;
      return MHD_YES;
    }
    if (*upload_data_size > 0) {
      if (request.body.size() + *upload_data_size > req->max_body) {
        // Over the limit (a chunked body: no Content-Length to refuse it by). Close at once.
        req->status = 413;
        req->note = "body over the limit; connection closed";
        return MHD_NO;
      }
      request.body.append(upload_data, *upload_data_size);
      *upload_data_size = 0;
      return MHD_YES;
    }

    // The whole request is in.
    self->arrived(conn);
    req->handled = true;
    Response response;
    try {
      response = (*req->handler)(request);
    } catch (const std::exception& e) {
      if (self->options.on_exception) self->options.on_exception(request, e.what());
      response = Response::json_error(500, "internal error");
    } catch (...) {
      if (self->options.on_exception) self->options.on_exception(request, "unknown exception");
      response = Response::json_error(500, "internal error");
    }
    return self->queue(connection, conn, *req, std::move(response));
  }

  static void on_mhd_log(void* /*cls*/, const char* format, va_list ap) {
    char buf[512];
    va_list copy;
    va_copy(copy, ap);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    std::vsnprintf(buf, sizeof(buf), format, copy);
#pragma GCC diagnostic pop
    va_end(copy);
    spdlog::debug("libmicrohttpd: {}", printable(trim(buf)));
  }

  /// Shuts down sockets whose request is overdue (slow senders); libmicrohttpd then closes them.
  void watch() {
    std::unique_lock lock(mutex);
    while (!stopping) {
      cv.wait_for(lock, std::chrono::milliseconds(100));
      const auto now = Clock::now();
      for (Conn* conn : conns) {
        if (!conn->waiting || conn->cut || now < conn->deadline || conn->fd < 0) continue;
        // Still the same socket? (its peer address and port are unchanged)
        sockaddr_storage peer{};
        socklen_t len = sizeof(peer);
        if (::getpeername(conn->fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) continue;
        if (peer.ss_family != conn->peer_addr.ss_family || port_of(peer) != port_of(conn->peer_addr)) continue;
        conn->cut = true;
        ::shutdown(conn->fd, SHUT_RDWR);
      }
    }
  }
};

Server::Server(Router router, ServerOptions options) : impl_(std::make_unique<Impl>(std::move(router), std::move(options))) {}

Server::~Server() { stop(); }

namespace {

Result<int> bind_socket(const std::string& host, int port) {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_INET;
  sockaddr_in in{};
  sockaddr_in6 in6{};
  if (::inet_pton(AF_INET, host.c_str(), &in.sin_addr) == 1) {
    in.sin_family = AF_INET;
    in.sin_port = htons(static_cast<std::uint16_t>(port));
    std::memcpy(&addr, &in, sizeof(in));
    len = sizeof(in);
  } else if (::inet_pton(AF_INET6, host.c_str(), &in6.sin6_addr) == 1) {
    family = AF_INET6;
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(static_cast<std::uint16_t>(port));
    std::memcpy(&addr, &in6, sizeof(in6));
    len = sizeof(in6);
  } else {
    return make_error(ExitCode::config, "listen address '{}' is not an IPv4 or IPv6 address", printable(host));
  }
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(ExitCode::unavailable, "socket: {}", std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 64) != 0) {
    const int err = errno;
    ::close(fd);
    return make_error(ExitCode::unavailable, "cannot listen on {}:{}: {}", host, port, std::strerror(err));
  }
  return fd;
}

int bound_port(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return -1;
  return port_of(addr);
}

}  // namespace

Result<int> Server::start() {
  auto& d = *impl_;
  if (d.daemon != nullptr) return d.port;
  if (auto lib = load_mhd(); !lib) return lib.error();
  int fd = d.options.listen.fd;
  if (fd < 0) {
    auto bound = bind_socket(d.options.listen.host, d.options.listen.port);
    if (!bound) return std::move(bound).error();
    fd = *bound;
  }
  d.listen_fd = fd;
  d.port = bound_port(fd);
  const auto& limits = d.options.limits;
  const unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                         MHD_USE_ERROR_LOG | MHD_USE_ITC;
  d.daemon = mhd_api().start_daemon(
      flags, 0, nullptr, nullptr, &Impl::on_request, &d,                                          //
      MHD_OPTION_EXTERNAL_LOGGER, &Impl::on_mhd_log, &d,                                          //
      MHD_OPTION_LISTEN_SOCKET, static_cast<MHD_socket>(fd),                                      //
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<size_t>(limits.connection_memory),          //
      MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned>(limits.max_connections),                 //
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, static_cast<unsigned>(limits.max_connections_per_ip),   //
      MHD_OPTION_CONNECTION_TIMEOUT, static_cast<unsigned>(limits.idle_timeout.count()),          //
      MHD_OPTION_THREAD_STACK_SIZE, static_cast<size_t>(limits.thread_stack),                     //
      MHD_OPTION_URI_LOG_CALLBACK, &Impl::on_uri, &d,                                             //
      MHD_OPTION_NOTIFY_COMPLETED, &Impl::on_completed, &d,                                       //
      MHD_OPTION_NOTIFY_CONNECTION, &Impl::on_connection, &d,                                     //
      MHD_OPTION_STRICT_FOR_CLIENT, 1,                                                            //
      MHD_OPTION_END);
  if (d.daemon == nullptr) {
    if (d.options.listen.fd < 0) ::close(fd);
    d.listen_fd = -1;
    return make_error(ExitCode::unavailable, "cannot start the HTTP server on {}", describe_socket(fd));
  }
  {
    std::lock_guard lock(d.mutex);
    d.stopping = false;
  }
  d.watchdog = std::thread([&d] { d.watch(); });
  return d.port;
}

void Server::stop() {
  if (!impl_) return;
  auto& d = *impl_;
  {
    std::lock_guard lock(d.mutex);
    d.stopping = true;
  }
  d.cv.notify_all();
  if (d.watchdog.joinable()) d.watchdog.join();
  if (d.daemon != nullptr) {
    mhd_api().stop_daemon(d.daemon);  // closes the listen socket and joins the connection threads
    d.daemon = nullptr;
    d.listen_fd = -1;
  }
}

std::size_t Server::connections() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->conns.size();
}

sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  return signals;
}

int wait_for_stop_signal(const sigset_t& signals) {
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("signal {} received; stopping", sig);
  return sig;
}

Result<std::optional<int>> systemd_listen_socket() {
  const char* pid = std::getenv("LISTEN_PID");
  const char* fds = std::getenv("LISTEN_FDS");
  if (pid == nullptr || fds == nullptr) return std::optional<int>();
  const auto pid_value = parse_int(pid);
  const auto fds_value = parse_int(fds);
  if (!pid_value || *pid_value != static_cast<long long>(::getpid())) return std::optional<int>();
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  if (!fds_value || *fds_value < 1) return std::optional<int>();
  if (*fds_value > 1) {
    return make_error(ExitCode::config, "systemd passed {} sockets; backupd.socket must have exactly one ListenStream=",
                      *fds_value);
  }
  constexpr int kFd = 3;  // SD_LISTEN_FDS_START
  int type = 0;
  int listening = 0;
  socklen_t len = sizeof(type);
  if (::getsockopt(kFd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) {
    return make_error(ExitCode::config, "the socket systemd passed is not a stream socket");
  }
  len = sizeof(listening);
  if (::getsockopt(kFd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening == 0) {
    return make_error(ExitCode::config, "the socket systemd passed is not listening (Accept=no is needed)");
  }
  ::fcntl(kFd, F_SETFD, FD_CLOEXEC);
  return std::optional<int>(kFd);
}

std::string describe_socket(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "?";
  const std::string host = address_text(reinterpret_cast<const sockaddr*>(&addr));
  const int port = port_of(addr);
  return addr.ss_family == AF_INET6 ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

}  // namespace hozo::http
