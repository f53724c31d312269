#pragma once
// One relay direction as a plain state machine over non-blocking sockets: step() drains the
// source into the queue and hands the queue to the sink in one gathered write, then says
// what to wait for. No Asio here, so it is testable on socketpairs. It holds no memory while
// idle but its queue's chunks.

#include "nodelayd/chunk_queue.hpp"
#include "nodelayd/peer_watch.hpp"
#include "nodelayd/policy.hpp"
#include "nodelayd/quickack_learner.hpp"
#include "nodelayd/socket_ops.hpp"
#include "nodelayd/stats.hpp"

#include <cstdint>

namespace nodelayd {

/// What both pumps of a session share about one of its sockets.
struct socket_state {
    /// The socket.
    int fd = -1;
    /// TCP_QUICKACK is armed and nothing was sent on the socket since: the kernel only goes
    /// back to delayed ACKs (pingpong mode) after it sends data, so re-arming before a read
    /// is needed only after a write.
    bool quickack_armed = false;
    /// The peer's FIN may be queued behind the bytes read last (the event loop's word, set
    /// before each step): a short read then does not prove the socket drained.
    bool peer_may_have_closed = true;
    /// Its side's policy: quickack governs reads from it; nodelay and cork, writes to it.
    const side_policy* policy = nullptr;
    /// quickack=auto: whether this peer needs re-arming.
    quickack_learner learner;
    /// Stall detection facts (kept up to date with stats or quickack=auto).
    peer_watch watch;
    /// The peer's RST was reported already (SO_ERROR took it when the connect was checked),
    /// so the end of what it sent before is read as EOF and means a reset.
    bool reset_seen = false;
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

    /// Reads `source` and writes `sink` under their policies, queueing at most `bound` bytes.
    /// With `stats`, reads take kernel receive timestamps and every write records in `dir`'s
    /// metrics (the source's peer side for stalls, the sink's for writes and chunks). With
    /// `splice_pipe` > 0, a bulk flow (a source that fills the whole buffer) moves through a
    /// pipe of that capacity (rounded up to a power of two, as the kernel does) with
    /// splice(2) instead, never copied through user space, until it slows down.
    pump(socket_state& source, socket_state& sink, std::size_t bound, route_stats* stats = nullptr,
         direction dir = direction::client_to_upstream, std::size_t splice_pipe = 0);
    pump(const pump&) = delete;
    pump& operator=(const pump&) = delete;
    /// Closes the pipe, if one is open.
    ~pump();

    /// One round of non-blocking reads and at most one gathered write. `last`: the other
    /// direction is done, so the sockets close right after this one ends and close() sends
    /// the FIN; the source's EOF then needs no shutdown(SHUT_WR) of its own.
    wait_for step(bool last = false);
    /// Bytes written to the sink so far.
    [[nodiscard]] std::uint64_t bytes() const { return bytes_; }
    /// Whether any byte moved in the last step() (for idle timeouts).
    [[nodiscard]] bool progressed() const { return progressed_; }
    /// Which side failed, when step() returned done because of an error.
    [[nodiscard]] failure failed() const { return failed_; }
    /// Bytes queued (in the chunk queue or the pipe), for tests.
    [[nodiscard]] std::size_t queued() const { return queue_.size() + piped_; }
    /// Whether the flow currently moves by splice(2), for tests.
    [[nodiscard]] bool splicing() const { return pipe_.read >= 0; }
    /// Gathered writes issued, for tests.
    [[nodiscard]] std::uint64_t writes() const { return writes_; }
    /// Where the pump records, or null.
    [[nodiscard]] route_stats* stats() const { return stats_; }
    /// Suspected stalls of the source's peer seen by this pump (needs stats).
    [[nodiscard]] std::uint64_t source_stalls() const { return stalls_; }

private:
    bool read_phase();
    bool write_phase(bool last);
    bool open_pipe();
    wait_for splice_step(bool last);
    bool source_failed(const sys::read_result& r);
    void sink_failed();
    [[nodiscard]] wait_for next_wait(bool can_read) const;
    void end_sink_turn();
    void wrote(std::size_t bytes, bool more);
    std::int64_t watch_read(std::size_t bytes, std::int64_t rx_ns);
    void measure_write(std::size_t bytes);

    // Sized for an idle session's footprint: every byte here is paid per connection.
    socket_state& source_;
    socket_state& sink_;
    chunk_queue queue_;
    route_stats* stats_;
    std::uint64_t bytes_ = 0;
    std::uint32_t writes_ = 0;
    std::uint32_t stalls_ = 0;
    std::uint32_t bound_;
    std::uint32_t piped_ = 0; // bytes in the pipe
    sys::pipe_fds pipe_;      // open only while splicing
    direction dir_;
    std::uint8_t pipe_shift_; // log2 of the pipe capacity to ask for; 0: no splice
    bool bulk_ = false;       // the last read phase filled the whole buffer
    bool source_eof_ = false;
    bool source_has_more_ = false;
    bool sink_blocked_ = false;
    bool corked_ = false;
    bool progressed_ = false;
    failure failed_ = failure::none;
};

} // namespace nodelayd
