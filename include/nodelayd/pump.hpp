#pragma once
// One relay direction as a plain state machine over non-blocking sockets: step() drains the
// source into the queue and hands the queue to the sink in one gathered write, then says
// what to wait for. No Asio here, so it is testable on socketpairs.

#include "nodelayd/chunk_queue.hpp"
#include "nodelayd/policy.hpp"

#include <cstdint>

namespace nodelayd {

/// Moves bytes from one socket to another under a side policy and a buffer bound.
class pump {
public:
    /// What the caller must wait for before calling step() again.
    enum class wait_for {
        /// Call step() again at once (the source has more ready).
        nothing,
        /// The source becoming readable.
        read,
        /// The sink becoming writable (the queue is at its bound: backpressure).
        write,
        /// Either of the two.
        read_or_write,
        /// Finished: EOF propagated as a half-close, or a socket failed (see failed()).
        done,
    };
    /// Which socket failed, if any.
    enum class failure { none, source, sink };

    /// `source_policy` governs reads (quickack); `sink_policy` governs writes (nodelay, cork).
    pump(int source_fd, int sink_fd, const side_policy& source_policy,
         const side_policy& sink_policy, std::size_t bound);

    /// One round of non-blocking reads and at most one gathered write.
    wait_for step();
    /// Bytes written to the sink so far.
    [[nodiscard]] std::uint64_t bytes() const { return bytes_; }
    /// Whether any byte moved in the last step() (for idle timeouts).
    [[nodiscard]] bool progressed() const { return progressed_; }
    /// Which side failed, when step() returned done because of an error.
    [[nodiscard]] failure failed() const { return failed_; }
    /// Bytes queued, for tests.
    [[nodiscard]] std::size_t queued() const { return queue_.size(); }
    /// Gathered writes issued, for tests.
    [[nodiscard]] std::uint64_t writes() const { return writes_; }

private:
    bool read_phase();
    bool write_phase();

    int source_;
    int sink_;
    const side_policy& source_policy_;
    const side_policy& sink_policy_;
    std::size_t bound_;
    chunk_queue queue_;
    std::uint64_t bytes_ = 0;
    std::uint64_t writes_ = 0;
    bool source_eof_ = false;
    bool source_has_more_ = false;
    bool sink_blocked_ = false;
    bool corked_ = false;
    bool progressed_ = false;
    failure failed_ = failure::none;
};

} // namespace nodelayd
