#include "nodelayd/log_sink.hpp"

#include <unistd.h>

#include <cerrno>

namespace nodelayd {
namespace {

thread_local bool batched_thread = false;

} // namespace

batching_sink::batching_sink(int fd) : fd_(fd) {}

batching_sink::batched_logging::batched_logging() {
    batched_thread = true;
}

batching_sink::batched_logging::~batched_logging() {
    batched_thread = false;
}

void batching_sink::sink_it_(const spdlog::details::log_msg& msg) {
    formatter_->format(msg, held_);
    if (batched_thread && msg.level < spdlog::level::warn && held_.size() < max_held) {
        holding_.store(true, std::memory_order_relaxed);
        return;
    }
    flush_();
}

void batching_sink::flush_() {
    const char* p = held_.data();
    std::size_t left = held_.size();
    while (left > 0) {
        const ssize_t n = ::write(fd_, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; // nowhere to log to: drop the lines rather than spin or block the relay
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    held_.clear();
    holding_.store(false, std::memory_order_relaxed);
}

} // namespace nodelayd
