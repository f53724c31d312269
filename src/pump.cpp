#include "nodelayd/pump.hpp"

#include "nodelayd/socket_ops.hpp"

#include <algorithm>
#include <array>

namespace nodelayd {

pump::pump(int source_fd, int sink_fd, const side_policy& source_policy,
           const side_policy& sink_policy, std::size_t bound)
    : source_(source_fd), sink_(sink_fd), source_policy_(source_policy), sink_policy_(sink_policy),
      bound_(bound) {}

// Reads until the source runs dry, hits EOF, or the queue reaches its bound.
// Returns false when the source failed.
bool pump::read_phase() {
    source_has_more_ = false;
    while (!source_eof_ && queue_.size() < bound_) {
        // The kernel re-enters delayed-ACK (pingpong) mode whenever we send on this socket;
        // re-arming before each read pushes out any ACK it is holding and keeps the peer's
        // Nagle from waiting on us.
        if (source_policy_.quickack)
            sys::arm_quickack(source_);
        auto space = queue_.prepare();
        space = space.first(std::min(space.size(), bound_ - queue_.size()));
        const auto r = sys::read_some(source_, space);
        queue_.commit(r.bytes);
        if (r.error) {
            failed_ = failure::source;
            return false;
        }
        if (r.would_block)
            break;
        if (r.eof) {
            source_eof_ = true;
            break;
        }
        progressed_ = true;
        // A read that filled its buffer means the socket likely holds more; a short one
        // means it is drained, and probing again would only cost an EAGAIN.
        source_has_more_ = r.bytes == space.size();
        if (!source_has_more_)
            break;
    }
    return true;
}

// One gathered write of everything queued. Returns false when the sink failed.
bool pump::write_phase() {
    sink_blocked_ = false;
    if (queue_.empty()) {
        // The source ran dry after a MSG_MORE write: push the held tail now.
        if (corked_ && !source_has_more_) {
            sys::push_pending(sink_, sink_policy_.nodelay);
            corked_ = false;
        }
        return true;
    }
    std::array<iovec, 64> iov{};
    const std::size_t n = queue_.gather(iov);
    const bool more = send_with_more(sink_policy_.cork, source_has_more_, source_eof_);
    const auto w = sys::write_gathered(sink_, {iov.data(), n}, more);
    ++writes_;
    if (w.error) {
        failed_ = failure::sink;
        return false;
    }
    if (w.bytes > 0) {
        queue_.consume(w.bytes);
        bytes_ += w.bytes;
        progressed_ = true;
        corked_ = more;
    }
    sink_blocked_ = !queue_.empty();
    return true;
}

pump::wait_for pump::step() {
    progressed_ = false;
    if (!read_phase() || !write_phase())
        return wait_for::done;
    if (source_eof_ && queue_.empty()) {
        // FIN carries anything MSG_MORE held back, so no separate push is needed.
        sys::shutdown_write(sink_);
        return wait_for::done;
    }
    const bool can_read = !source_eof_ && queue_.size() < bound_;
    if (can_read && source_has_more_ && !sink_blocked_)
        return wait_for::nothing;
    if (can_read && sink_blocked_)
        return wait_for::read_or_write;
    if (can_read)
        return wait_for::read;
    return wait_for::write;
}

} // namespace nodelayd
