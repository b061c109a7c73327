#include "hozo/log.hpp"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include <mutex>
#include <vector>

#include <spdlog/details/log_msg_buffer.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "hozo/util/strings.hpp"

namespace hozo {

namespace {

/// %* flag: the syslog priority prefix for the message level ("<3>" for errors).
class SyslogPriorityFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm& /*tm*/, spdlog::memory_buf_t& dest) override {
    const char* prefix = "<6>";
    switch (msg.level) {
      case spdlog::level::trace:
      case spdlog::level::debug: prefix = "<7>"; break;
      case spdlog::level::info: prefix = "<6>"; break;
      case spdlog::level::warn: prefix = "<4>"; break;
      case spdlog::level::err: prefix = "<3>"; break;
      case spdlog::level::critical: prefix = "<2>"; break;
      default: break;
    }
    dest.append(prefix, prefix + 3);
  }
  [[nodiscard]] std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<SyslogPriorityFlag>();
  }
};

/// See run_log: idle, buffering (begin until open) or writing the run's file.
class RunLogRouter final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  void begin() {
    std::lock_guard lock(mutex_);
    active_ = true;
    file_.reset();
    pending_.clear();
  }
  std::string open(const std::filesystem::path& path) {
    std::lock_guard lock(mutex_);
    try {
      file_ = std::make_unique<spdlog::sinks::basic_file_sink_st>(path.string(), /*truncate=*/false);
    } catch (const spdlog::spdlog_ex& e) {
      active_ = false;
      pending_.clear();
      return e.what();
    }
    file_->set_pattern("%Y-%m-%dT%H:%M:%S.%e %-5l %v");
    for (const auto& line : pending_) file_->log(line);
    pending_.clear();
    file_->flush();
    return {};
  }
  void end() {
    std::lock_guard lock(mutex_);
    active_ = false;
    file_.reset();
    pending_.clear();
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (!active_) return;
    if (file_) {
      file_->log(msg);
    } else if (pending_.size() < kMaxPending) {
      pending_.emplace_back(msg);
    }
  }
  void flush_() override {
    if (file_) file_->flush();
  }

 private:
  static constexpr std::size_t kMaxPending = 1000;  ///< lines before the file is open (a few in practice)
  bool active_ = false;
  std::unique_ptr<spdlog::sinks::basic_file_sink_st> file_;
  std::vector<spdlog::details::log_msg_buffer> pending_;
};

std::shared_ptr<RunLogRouter>& router() {
  static auto instance = std::make_shared<RunLogRouter>();
  return instance;
}

/// Puts the router on the default logger unless it is there (setup_logging does it first).
void ensure_router() {
  auto& sinks = spdlog::default_logger()->sinks();
  if (std::find(sinks.begin(), sinks.end(), router()) == sinks.end()) sinks.push_back(router());
}

}  // namespace

namespace run_log {

void begin() {
  ensure_router();
  router()->set_level(spdlog::level::debug);
  router()->begin();
}

std::string open(const std::filesystem::path& path) { return router()->open(path); }

void end() { router()->end(); }

}  // namespace run_log

bool stderr_is_journal() {
  const char* env = std::getenv("JOURNAL_STREAM");
  if (env == nullptr) return false;
  const auto parts = split(env, ':');
  if (parts.size() != 2) return false;
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  const auto dev = parse_int(parts[0]);
  const auto ino = parse_int(parts[1]);
  return dev && ino && static_cast<unsigned long long>(*dev) == st.st_dev &&
         static_cast<unsigned long long>(*ino) == st.st_ino;
}

void setup_logging(int verbosity) {
  // The run log's sink is there from the start: adding it later would change the sink list while
  // threads (the libssh preload, the early contact) may be logging.
  auto logger = std::make_shared<spdlog::logger>(
      "hozo", spdlog::sinks_init_list{std::make_shared<spdlog::sinks::stderr_sink_mt>(), router()});
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  if (stderr_is_journal()) {
    formatter->add_flag<SyslogPriorityFlag>('*').set_pattern("%*%v");
  } else if (::isatty(STDERR_FILENO) == 1) {
    formatter->set_pattern("%^%l%$: %v");  // interactive: short lines
  } else {
    formatter->set_pattern("%Y-%m-%d %H:%M:%S %-5l %v");  // cron, pipes: timestamps
  }
  logger->set_formatter(std::move(formatter));
  spdlog::level::level_enum level = spdlog::level::info;
  if (verbosity < 0) level = spdlog::level::warn;
  if (verbosity == 1) level = spdlog::level::debug;
  if (verbosity >= 2) level = spdlog::level::trace;
  logger->set_level(level);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace hozo
