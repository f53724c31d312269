#include "nodelayd/pump.hpp"

#include "nodelayd/socket_ops.hpp"

#include <algorithm>
#include <array>

namespace nodelayd {

pump::pump(int source_fd, int sink_fd, const side_policy& source_policy,
           const side_policy& sink_policy, std::size_t bound, const pump_meter* meter)
    : source_(source_fd), sink_(sink_fd), source_policy_(source_policy), sink_policy_(sink_policy),
      bound_(bound), meter_(meter) {}

void pump::measure_read(std::size_t bytes, std::int64_t rx_ns) {
    if (rx_ns == 0)
        rx_ns = sys::realtime_ns(); // no kernel timestamp: now is the next best
    if (is_peer_stall(meter_->source, rx_ns)) {
        meter_->source_stalls.add();
        ++stalls_;
    }
    note_read(meter_->source, bytes, rx_ns);
    received_ += bytes;
    if (pending_size_ == max_pending_) {
        pending_[(pending_head_ + pending_size_ - 1) % max_pending_].end = received_;
        return;
    }
    pending_[(pending_head_ + pending_size_) % max_pending_] = {received_, rx_ns};
    ++pending_size_;
}

void pump::measure_write(std::size_t bytes) {
    const std::int64_t now = sys::realtime_ns();
    meter_->writes.add();
    meter_->bytes.add(bytes);
    note_sent(meter_->sink);
    while (pending_size_ > 0 && pending_[pending_head_].end <= bytes_) {
        const std::int64_t latency = now - pending_[pending_head_].rx_ns;
        meter_->added_latency.record_ns(latency > 0 ? static_cast<std::uint64_t>(latency) : 0);
        meter_->chunks.add();
        pending_head_ = (pending_head_ + 1) % max_pending_;
        --pending_size_;
    }
}

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
        const auto r = sys::read_some(source_, space, meter_ != nullptr);
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
        if (meter_ != nullptr)
            measure_read(r.bytes, r.rx_ns);
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
        if (meter_ != nullptr)
            measure_write(w.bytes);
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
