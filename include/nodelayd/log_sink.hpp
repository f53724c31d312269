#pragma once
// The log's way to stderr. spdlog's own stderr sink writes and flushes every line: one
// write(2) per closed session, 6% of the daemon's CPU at 10,000 connections/s, and a wake-up
// of the journal (or whoever reads the pipe) each time. This sink lets a worker thread keep
// its lines until its event loop has run out of ready handlers, then hands all of them to
// the kernel in one write. Everything else is written at once: lines from other threads,
// warnings and errors (with whatever was held before them, so the order is kept), and a
// buffer past its bound.

#include <spdlog/sinks/base_sink.h>

#include <atomic>
#include <cstddef>
#include <mutex>

namespace nodelayd {

/// An spdlog sink writing formatted lines to a file descriptor, held back on threads
/// inside a batched_logging scope until flush().
class batching_sink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    /// Held lines are written once they reach this many bytes, flush() or not.
    static constexpr std::size_t max_held = std::size_t{16} * 1024;

    /// Writes to `fd` (not owned).
    explicit batching_sink(int fd);
    /// Whether lines are waiting for flush(); cheap, no lock.
    [[nodiscard]] bool holding() const { return holding_.load(std::memory_order_relaxed); }

    /// Marks the calling thread as one whose lines may wait for its next flush(), for the
    /// scope's life.
    class batched_logging {
    public:
        batched_logging();
        ~batched_logging();
        batched_logging(const batched_logging&) = delete;
        batched_logging& operator=(const batched_logging&) = delete;
    };

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override;
    void flush_() override;

private:
    int fd_;
    spdlog::memory_buf_t held_;
    std::atomic<bool> holding_{false};
};

} // namespace nodelayd
