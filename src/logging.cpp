#include "nodelayd/logging.hpp"

#include "nodelayd/log_sink.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

namespace nodelayd {
namespace {

// The default logger's sink, for flush_logs(); lives as long as the logger (the process).
batching_sink* the_sink = nullptr;

// "<N>" for the journal: sd-daemon(3) priority prefixes.
class syslog_priority final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& msg, const std::tm& /*time*/,
                spdlog::memory_buf_t& dest) override {
        const char* prefix = "<6>";
        switch (msg.level) {
        case spdlog::level::trace:
        case spdlog::level::debug:
            prefix = "<7>";
            break;
        case spdlog::level::info:
            prefix = "<6>";
            break;
        case spdlog::level::warn:
            prefix = "<4>";
            break;
        case spdlog::level::err:
            prefix = "<3>";
            break;
        case spdlog::level::critical:
            prefix = "<2>";
            break;
        default:
            break;
        }
        dest.append(prefix, prefix + 3);
    }
    [[nodiscard]] std::unique_ptr<custom_flag_formatter> clone() const override {
        return std::make_unique<syslog_priority>();
    }
};

} // namespace

bool stderr_is_journal() {
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (stream == nullptr)
        return false;
    unsigned long long dev = 0;
    unsigned long long ino = 0;
    if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2)
        return false;
    struct stat st {};
    if (::fstat(STDERR_FILENO, &st) != 0)
        return false;
    return st.st_dev == dev && st.st_ino == ino;
}

void setup_logging(const std::string& level) {
    auto sink = std::make_shared<batching_sink>(STDERR_FILENO);
    the_sink = sink.get();
    auto logger = std::make_shared<spdlog::logger>("nodelayd", std::move(sink));
    if (stderr_is_journal()) {
        auto formatter = std::make_unique<spdlog::pattern_formatter>();
        formatter->add_flag<syslog_priority>('*').set_pattern("%*%v");
        logger->set_formatter(std::move(formatter));
    } else {
        logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
    }
    logger->set_level(spdlog::level::from_str(level));
    // No flush_on(): the sink writes each line at once, except where a worker's loop flushes.
    spdlog::set_default_logger(logger);
}

void flush_logs() {
    if (the_sink != nullptr && the_sink->holding())
        the_sink->flush();
}

} // namespace nodelayd
