#include "nodelayd/pump.hpp"

#include "nodelayd/socket_ops.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <bit>

namespace nodelayd {

namespace {

constexpr std::uint32_t default_pipe_size = 64 * 1024; // Linux's default pipe capacity

// 0 for no splice, else log2 of the capacity rounded up to a power of two in 4 KiB..1 GiB.
std::uint8_t pipe_shift_for(std::size_t capacity) {
    if (capacity == 0)
        return 0;
    return static_cast<std::uint8_t>(std::clamp<std::size_t>(std::bit_width(capacity - 1), 12, 30));
}

} // namespace

pump::pump(socket_state& source, socket_state& sink, std::size_t bound, route_stats* stats,
           direction dir, std::size_t splice_pipe)
    : source_(source), sink_(sink), stats_(stats),
      bound_(static_cast<std::uint32_t>(std::min<std::size_t>(bound, UINT32_MAX))), dir_(dir),
      pipe_shift_(pipe_shift_for(splice_pipe)) {}

pump::~pump() {
    sys::close_pipe(pipe_);
}

namespace {

// The side a direction reads from, and the one it writes to.
std::size_t from_side(direction dir) {
    return static_cast<std::size_t>(dir == direction::client_to_upstream ? side::client
                                                                         : side::upstream);
}
std::size_t to_side(direction dir) {
    return 1 - from_side(dir);
}

bool rearms_quickack(const socket_state& s) {
    switch (s.policy->quickack) {
    case quickack_mode::on:
        return true;
    case quickack_mode::automatic:
        return quickack_wanted(s.learner);
    case quickack_mode::off:
        return false;
    }
    return true;
}

// Stalls are watched for the stats, and on a socket that stopped re-arming quickack: a stall
// there is the sign that the peer needs it after all.
bool watches_stalls(const socket_state& s, const route_stats* stats) {
    return stats != nullptr || (s.policy->quickack == quickack_mode::automatic &&
                                s.learner.current == quickack_learner::state::lazy);
}

} // namespace

// Returns the receive time to keep with the bytes.
std::int64_t pump::watch_read(std::size_t bytes, std::int64_t rx_ns) {
    if (rx_ns == 0)
        rx_ns = sys::realtime_ns(); // no kernel timestamp: now is the next best
    peer_watch& w = source_.watch;
    if (is_stall_gap(w, rx_ns)) {
        if (w.full_segment == 0) {
            const std::size_t mss = sys::max_segment(source_.fd);
            w.full_segment = static_cast<std::uint16_t>(mss > 0 && mss <= UINT16_MAX ? mss : 536);
        }
        if (is_peer_stall(w, rx_ns)) {
            ++stalls_;
            note_peer_stall(source_.learner);
            if (stats_ != nullptr)
                stats_->peer_stalls_total[from_side(dir_)].add();
        }
    }
    note_read(w, bytes, rx_ns);
    return rx_ns;
}

// Bookkeeping common to both ways of writing.
void pump::wrote(std::size_t bytes, bool more) {
    sink_.quickack_armed = false; // sending data is what re-enters delayed-ACK mode
    note_sent(sink_.watch);
    bytes_ += bytes;
    ++writes_;
    progressed_ = true;
    corked_ = more;
    if (stats_ != nullptr)
        measure_write(bytes);
}

// Called before every write to the sink: what the peer sent since our last write is its turn.
// Before, not after: once our bytes are out the peer may answer at once, and its next
// segment must not count for the turn just ended.
void pump::end_sink_turn() {
    if (sink_.policy->quickack != quickack_mode::automatic || !note_turn_end(sink_.learner))
        return;
    // Once per socket: the kernel counted the peer's data segments; reads may have merged them.
    sys::tcp_info_sample info;
    const std::uint32_t segments = sys::read_tcp_info(sink_.fd, info) ? info.data_segments_in : 0;
    decide_from_segments(sink_.learner, segments);
    spdlog::debug("quickack=auto: {} peer sent {} data segments in {} turns: {}",
                  to_side(dir_) == static_cast<std::size_t>(side::client) ? "client" : "upstream",
                  segments, sink_.learner.turns,
                  quickack_wanted(sink_.learner) ? "re-arming for good" : "no longer re-arming");
}

void pump::measure_write(std::size_t bytes) {
    stats_->writes_total[to_side(dir_)].add();
    stats_->bytes_total[static_cast<std::size_t>(dir_)].add(bytes);
}

// Whether `r` ends the source: an error, or the EOF of a source whose reset was reported
// already (the connect check took it). What was read before goes out pushed, ahead of the
// reset the relay passes on.
bool pump::source_failed(const sys::read_result& r) {
    if (!r.error && !(r.eof && source_.reset_seen))
        return false;
    failed_ = failure::source;
    source_has_more_ = false;
    return true;
}

// A write that fails after the source did is still the source's failure: it came first.
void pump::sink_failed() {
    if (failed_ == failure::none)
        failed_ = failure::sink;
}

// Reads until the source runs dry (EAGAIN, or a short read with no FIN behind it), hits EOF,
// or the queue reaches its bound.
// Returns false when the source failed.
bool pump::read_phase() {
    std::size_t read = 0;
    // source_has_more_ keeps its value when the queue is at its bound and nothing is read:
    // the source was not found drained, so the next step should read before waiting.
    while (!source_eof_ && queue_.size() < bound_) {
        // The kernel re-enters delayed-ACK (pingpong) mode whenever we send on this socket;
        // re-arming before the next read pushes out any ACK it is holding and keeps the
        // peer's Nagle from waiting on us.
        if (!source_.quickack_armed && rearms_quickack(source_)) {
            sys::arm_quickack(source_.fd);
            source_.quickack_armed = true;
        }
        auto space = queue_.prepare();
        space = space.first(std::min(space.size(), bound_ - queue_.size()));
        const auto r = sys::read_some(source_.fd, space, stats_ != nullptr);
        const bool got = !r.error && !r.would_block && !r.eof;
        if (got)
            note_peer_read(source_.learner);
        queue_.commit(r.bytes,
                      got && watches_stalls(source_, stats_) ? watch_read(r.bytes, r.rx_ns) : 0);
        if (source_failed(r))
            return false;
        if (r.would_block || r.eof) {
            source_eof_ = r.eof;
            source_has_more_ = false;
            break;
        }
        progressed_ = true;
        read += r.bytes;
        // A short read means the socket is drained, unless the peer's FIN came right behind
        // the bytes: it would bring no edge of its own, so then the read goes on to EOF.
        source_has_more_ = r.bytes == space.size();
        if (!source_has_more_ && !source_.peer_may_have_closed)
            break;
        source_has_more_ = true;
    }
    if (read > 0)
        bulk_ = queue_.size() >= bound_ && source_has_more_;
    return true;
}

// One gathered write of everything queued. Returns false when the sink failed. `last`: as
// for step(); without it, a source at EOF means shutdown(SHUT_WR) comes right after.
bool pump::write_phase(bool last) {
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
    std::size_t offered = 0;
    for (std::size_t i = 0; i < n; ++i)
        offered += iov[i].iov_len;
    const bool more = send_with_more(sink_.policy->cork, source_has_more_, source_eof_ && !last);
    end_sink_turn();
    const auto w = sys::write_gathered(sink_.fd, {iov.data(), n}, more);
    if (w.error) {
        sink_failed();
        return false;
    }
    if (w.bytes > 0) {
        wrote(w.bytes, more);
        if (stats_ == nullptr) {
            queue_.consume(w.bytes);
        } else {
            const std::int64_t now = sys::realtime_ns();
            auto& latency = stats_->added_latency[static_cast<std::size_t>(dir_)];
            auto& chunks = stats_->chunks_total[to_side(dir_)];
            queue_.consume(w.bytes, [&](std::int64_t rx_ns) {
                latency.record_ns(now > rx_ns ? static_cast<std::uint64_t>(now - rx_ns) : 0);
                chunks.add();
            });
        }
    }
    // Blocked only when the kernel took less than it was offered: that is what sets the
    // socket's no-space flag, whose clearing brings the write edge the relay waits for. A
    // queue longer than one gathered write is simply written again.
    sink_blocked_ = w.bytes < offered;
    return true;
}

pump::wait_for pump::next_wait(bool can_read) const {
    // Waits are for edges (edge_wait.hpp): a sink that took all it was offered gives none,
    // so what is still queued is written again at once.
    if (!sink_blocked_ && queued() > 0)
        return wait_for::nothing;
    if (can_read && source_has_more_ && !sink_blocked_)
        return wait_for::nothing;
    if (can_read && sink_blocked_)
        return wait_for::read_or_write;
    if (can_read)
        return wait_for::read;
    return wait_for::write;
}

pump::wait_for pump::step(bool last) {
    progressed_ = false;
    if (pipe_.read >= 0)
        return splice_step(last);
    // A source that failed (RST) may have sent its last bytes just before: they go out ahead
    // of the reset the relay passes on, as a direct connection would have delivered them.
    const bool source_ok = read_phase();
    if (!write_phase(last) || !source_ok)
        return wait_for::done;
    if (source_eof_ && queue_.empty()) {
        // FIN carries anything MSG_MORE held back, so no separate push is needed.
        if (!last)
            sys::shutdown_write(sink_.fd);
        return wait_for::done;
    }
    // A bulk flow with nothing queued: from here on its bytes can stay in the kernel.
    if (pipe_shift_ != 0 && bulk_ && queue_.empty() && open_pipe())
        return wait_for::nothing;
    return next_wait(!source_eof_ && queue_.size() < bound_);
}

// Returns whether splicing can start; if not, this direction keeps copying for good.
bool pump::open_pipe() {
    const std::size_t wanted = std::size_t{1} << pipe_shift_;
    std::size_t granted = 0;
    pipe_ = sys::make_pipe(wanted, granted);
    // Over the user's pipe allowance the kernel hands out two-page pipes, which would cost a
    // splice per 8 KiB: copying beats that.
    if (pipe_.read >= 0 && granted >= std::min<std::size_t>(wanted, default_pipe_size) &&
        !sys::set_nonblocking(source_.fd) && !sys::set_nonblocking(sink_.fd)) {
        pipe_shift_ = pipe_shift_for(std::min(wanted, granted)); // what the kernel gave
        return true;
    }
    sys::close_pipe(pipe_);
    pipe_shift_ = 0; // out of descriptors or of pipe allowance
    return false;
}

// Splice mode: fill the pipe from the source, drain it into the sink. No receive timestamps
// or quickack here: a bulk source sends full segments, which the kernel ACKs every second one
// anyway, and bulk transfer time is not the latency the histogram is about.
pump::wait_for pump::splice_step(bool last) {
    // The pipe's capacity, not the buffer bound: one splice moves as much as the pipe holds,
    // and each write to the sink is a wake-up of its reader. The pipe holds the source
    // socket's own pages, taken from its receive queue, not copies.
    const std::uint32_t room = std::uint32_t{1} << pipe_shift_;
    std::size_t in = 0;
    while (!source_eof_ && piped_ < room) {
        const auto r = sys::splice_some(source_.fd, pipe_.write, room - piped_, false);
        if (source_failed(r))
            break; // what is in the pipe still goes out, as in step()
        source_eof_ = r.eof;
        // would-block: the source is dry, or the pipe's slots are used up by partly filled
        // pages. With bytes in the pipe it may be the latter, and the source may still hold
        // data whose edge has been reported already: it counts as not drained, so the next
        // step splices again rather than waiting for an edge that need not come.
        source_has_more_ = r.would_block ? piped_ > 0 : !r.eof;
        if (r.would_block || r.eof)
            break;
        piped_ += static_cast<std::uint32_t>(r.bytes);
        in += r.bytes;
        progressed_ = true;
    }
    sink_blocked_ = false;
    if (piped_ > 0) {
        const bool more =
            send_with_more(sink_.policy->cork, source_has_more_, source_eof_ && !last);
        end_sink_turn();
        const auto w = sys::splice_some(pipe_.read, sink_.fd, piped_, more);
        if (w.error) {
            sink_failed();
            return wait_for::done;
        }
        if (w.bytes > 0) {
            piped_ -= static_cast<std::uint32_t>(w.bytes);
            wrote(w.bytes, more);
        }
        sink_blocked_ = piped_ > 0;
    } else if (corked_ && !source_has_more_) {
        sys::push_pending(sink_.fd, sink_.policy->nodelay);
        sink_.quickack_armed = false;
        corked_ = false;
    }
    if (failed_ != failure::none)
        return wait_for::done;
    if (source_eof_ && piped_ == 0) {
        if (!last)
            sys::shutdown_write(sink_.fd);
        sys::close_pipe(pipe_);
        return wait_for::done;
    }
    if (piped_ == 0 && !source_has_more_ && in < std::min(bound_, room)) {
        // The flow slowed down (less than would have filled the buffer): back to reads with
        // timestamps and quickack.
        sys::close_pipe(pipe_);
        bulk_ = false;
    }
    return next_wait(!source_eof_ && piped_ < room);
}

} // namespace nodelayd
