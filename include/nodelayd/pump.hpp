#pragma once
// One relay direction as a plain state machine over non-blocking sockets: step() drains the
// source into the queue and hands the queue to the sink in one gathered write, then says
// what to wait for. No Asio here, so it is testable on socketpairs.

#include "nodelayd/chunk_queue.hpp"
#include "nodelayd/peer_watch.hpp"
#include "nodelayd/policy.hpp"
#include "nodelayd/stats.hpp"

#include <array>
#include <cstdint>

namespace nodelayd {

/// Where a pump records what it measures; every member is borrowed.
struct pump_meter {
    /// Receive timestamp to write completion, per chunk.
    histogram& added_latency;
    /// Bytes written to the sink.
    counter& bytes;
    /// Gathered writes to the sink.
    counter& writes;
    /// Chunks (reads) those writes completed.
    counter& chunks;
    /// Suspected stalls of the source's peer.
    counter& source_stalls;
    /// The source socket's watch (reads update it).
    peer_watch& source;
    /// The sink socket's watch (writes mark it as sent to).
    peer_watch& sink;
};

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
    /// With a `meter`, reads take kernel receive timestamps and every write records.
    pump(int source_fd, int sink_fd, const side_policy& source_policy,
         const side_policy& sink_policy, std::size_t bound, const pump_meter* meter = nullptr);

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
    /// Suspected stalls of the source's peer seen by this pump (needs a meter).
    [[nodiscard]] std::uint64_t source_stalls() const { return stalls_; }

private:
    bool read_phase();
    bool write_phase();
    void measure_read(std::size_t bytes, std::int64_t rx_ns);
    void measure_write(std::size_t bytes);

    // Receive time of each queued chunk, keyed by the stream offset one past its last byte.
    // When more chunks queue than fit, the newest entry absorbs them (keeping its older,
    // larger-latency timestamp): an overestimate, never an underestimate.
    struct pending_chunk {
        std::uint64_t end;
        std::int64_t rx_ns;
    };
    static constexpr std::size_t max_pending_ = 8;

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
    const pump_meter* meter_;
    std::uint64_t received_ = 0;
    std::uint64_t stalls_ = 0;
    std::array<pending_chunk, max_pending_> pending_{};
    std::size_t pending_head_ = 0;
    std::size_t pending_size_ = 0;
};

} // namespace nodelayd
