#include "nodelayd/pump.hpp"

#include "nodelayd/socket_ops.hpp"

#include <algorithm>
#include <array>

namespace nodelayd {

pump::pump(socket_state& source, socket_state& sink, std::size_t bound, route_stats* stats,
           direction dir)
    : source_(source), sink_(sink), stats_(stats),
      bound_(static_cast<std::uint32_t>(std::min<std::size_t>(bound, UINT32_MAX))), dir_(dir) {}

namespace {

// The side a direction reads from, and the one it writes to.
std::size_t from_side(direction dir) {
    return static_cast<std::size_t>(dir == direction::client_to_upstream ? side::client
                                                                         : side::upstream);
}
std::size_t to_side(direction dir) {
    return 1 - from_side(dir);
}

} // namespace

// Returns the receive time to keep with the bytes.
std::int64_t pump::measure_read(std::size_t bytes, std::int64_t rx_ns) {
    if (rx_ns == 0)
        rx_ns = sys::realtime_ns(); // no kernel timestamp: now is the next best
    if (is_peer_stall(source_.watch, rx_ns)) {
        stats_->peer_stalls_total[from_side(dir_)].add();
        ++stalls_;
    }
    note_read(source_.watch, bytes, rx_ns);
    return rx_ns;
}

void pump::measure_write(std::size_t bytes) {
    stats_->writes_total[to_side(dir_)].add();
    stats_->bytes_total[static_cast<std::size_t>(dir_)].add(bytes);
    note_sent(sink_.watch);
}

// Reads until the source runs dry, hits EOF, or the queue reaches its bound.
// Returns false when the source failed.
bool pump::read_phase() {
    // source_has_more_ keeps its value when the queue is at its bound and nothing is read:
    // the source was not found drained, so the next step should read before waiting.
    while (!source_eof_ && queue_.size() < bound_) {
        // The kernel re-enters delayed-ACK (pingpong) mode whenever we send on this socket;
        // re-arming before the next read pushes out any ACK it is holding and keeps the
        // peer's Nagle from waiting on us.
        if (source_.policy->quickack && !source_.quickack_armed) {
            sys::arm_quickack(source_.fd);
            source_.quickack_armed = true;
        }
        auto space = queue_.prepare();
        space = space.first(std::min(space.size(), bound_ - queue_.size()));
        const auto r = sys::read_some(source_.fd, space, stats_ != nullptr);
        const bool got = !r.error && !r.would_block && !r.eof;
        queue_.commit(r.bytes, got && stats_ != nullptr ? measure_read(r.bytes, r.rx_ns) : 0);
        if (r.error) {
            failed_ = failure::source;
            return false;
        }
        if (r.would_block || r.eof) {
            source_eof_ = r.eof;
            source_has_more_ = false;
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
            sys::push_pending(sink_.fd, sink_.policy->nodelay);
            sink_.quickack_armed = false;
            corked_ = false;
        }
        return true;
    }
    std::array<iovec, 64> iov{};
    const std::size_t n = queue_.gather(iov);
    const bool more = send_with_more(sink_.policy->cork, source_has_more_, source_eof_);
    const auto w = sys::write_gathered(sink_.fd, {iov.data(), n}, more);
    ++writes_;
    if (w.error) {
        failed_ = failure::sink;
        return false;
    }
    if (w.bytes > 0) {
        sink_.quickack_armed = false; // sending data is what re-enters delayed-ACK mode
        bytes_ += w.bytes;
        progressed_ = true;
        corked_ = more;
        if (stats_ == nullptr) {
            queue_.consume(w.bytes);
        } else {
            measure_write(w.bytes);
            const std::int64_t now = sys::realtime_ns();
            auto& latency = stats_->added_latency[static_cast<std::size_t>(dir_)];
            auto& chunks = stats_->chunks_total[to_side(dir_)];
            queue_.consume(w.bytes, [&](std::int64_t rx_ns) {
                latency.record_ns(now > rx_ns ? static_cast<std::uint64_t>(now - rx_ns) : 0);
                chunks.add();
            });
        }
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
        sys::shutdown_write(sink_.fd);
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
