#include "nodelayd/relay.hpp"

#include "nodelayd/block_pool.hpp"
#include "nodelayd/edge_wait.hpp"
#include "nodelayd/pump.hpp"
#include "nodelayd/socket_ops.hpp"

#include <boost/asio/post.hpp>

namespace nodelayd {

namespace asio = boost::asio;

std::string_view to_string(close_reason reason) {
    switch (reason) {
    case close_reason::completed:
        return "completed";
    case close_reason::client_reset:
        return "client-reset";
    case close_reason::upstream_reset:
        return "upstream-reset";
    case close_reason::idle_timeout:
        return "idle-timeout";
    case close_reason::half_closed_timeout:
        return "half-closed-timeout";
    case close_reason::shutdown:
        return "shutdown";
    case close_reason::connect_failed:
        return "connect-failed";
    case close_reason::proxy_header:
        return "proxy-header";
    }
    return "unknown";
}

namespace {

constexpr auto c2u = static_cast<std::size_t>(direction::client_to_upstream);
constexpr auto u2c = static_cast<std::size_t>(direction::upstream_to_client);

// What each pump asks of a splice pipe; 0 turns splicing off.
std::size_t splice_pipe(const relay_settings& settings) {
    return settings.splice ? settings.pipe_size : 0;
}

} // namespace

// The handler of a posted step: small and trivially copyable, its operation from the
// thread's block pools.
struct relay::on_ready {
    relay* self;
    std::uint8_t bit;
    /// Operations carrying this handler come from the thread's block pools.
    using allocator_type = pool_allocator<void>;
    [[nodiscard]] allocator_type get_allocator() const noexcept { return {}; }
    void operator()() const { self->ready(bit); }
};

void relay::on_edge(void* self, std::uint8_t bit, bool /*aborted*/) {
    static_cast<relay*>(self)->ready(bit);
}

relay::relay(tcp_socket client, const relay_settings& settings, route_stats* stats)
    : client_(std::move(client)),
      upstream_(client_.get_executor()), client_state_{-1, false, true, &settings.client, {}, {}},
      upstream_state_{-1, false, true, &settings.upstream, {}, {}},
      pumps_{pump(client_state_, upstream_state_, settings.buffer_size, stats,
                  direction::client_to_upstream, splice_pipe(settings)),
             pump(upstream_state_, client_state_, settings.buffer_size, stats,
                  direction::upstream_to_client, splice_pipe(settings))} {}

void relay::start(bool client_stamped, bool upstream_sent, bool upstream_reset) {
    client_state_.fd = client_.native_handle();
    upstream_state_.fd = upstream_.native_handle();
    upstream_state_.reset_seen = upstream_reset;
    // A socket that has sent no data is not in delayed-ACK (pingpong) mode, and the kernel
    // ACKs a connection's first data segments at once anyway: arming TCP_QUICKACK before the
    // first read would change nothing but cost a setsockopt per side and connection.
    client_state_.quickack_armed = true;
    upstream_state_.quickack_armed = !upstream_sent;
    if (stats() != nullptr) {
        if (!client_stamped)
            sys::enable_rx_timestamps(client_state_.fd);
        sys::enable_rx_timestamps(upstream_state_.fd);
    }
    last_activity_ = std::chrono::steady_clock::now();
    started_ = true;
    // Waits, not steps: each ends when epoll reports the socket readable, at once if it
    // already has (the client's request, often), and never in a read that finds nothing
    // (the upstream's, which has not been asked anything yet). finished() then comes from a
    // completion handler, as it must.
    wait(client_, tcp_socket::wait_read, client_readable);
    wait(upstream_, tcp_socket::wait_read, upstream_readable);
}

void relay::abort(close_reason reason) {
    if (aborted_)
        return;
    aborted_ = true;
    reason_ = reason;
    boost::system::error_code ignored;
    client_.cancel(ignored);
    upstream_.cancel(ignored);
}

relay_outcome relay::outcome() const {
    relay_outcome out;
    out.client_to_upstream = pumps_[c2u].bytes();
    out.upstream_to_client = pumps_[u2c].bytes();
    out.client_stalls = pumps_[c2u].source_stalls();
    out.upstream_stalls = pumps_[u2c].source_stalls();
    out.reason = aborted_ ? reason_ : close_reason::completed;
    return out;
}

void relay::wait(tcp_socket& socket, tcp_socket::wait_type what, std::uint8_t bit) {
    if ((pending_ & bit) != 0)
        return; // already waiting for it (left over from a read-or-write wait)
    pending_ |= bit;
    // The pump only asks to wait after it drained the socket that way (EAGAIN, a short read,
    // a partial write), which is what an edge wait needs.
    async_edge_wait(socket, what, &relay::on_edge, this, bit);
}

void relay::ready(std::uint8_t bit) {
    pending_ &= static_cast<std::uint8_t>(~bit);
    // Waits report no data, only readiness (or cancellation): the pump's next step finds out
    // what happened, and an abort shows up as aborted_.
    if (!aborted_)
        drive((bit & (client_readable | upstream_writable | step_c2u)) != 0 ? c2u : u2c);
    if (pending_ == 0 && (aborted_ || (done_[c2u] && done_[u2c])))
        finished();
}

void relay::drive(std::size_t dir) {
    if (done_[dir])
        return; // a leftover wait of a finished direction
    pump& p = pumps_[dir];
    (dir == c2u ? client_state_ : upstream_state_).peer_may_have_closed =
        peer_may_have_closed(dir == c2u ? client_ : upstream_);
    const auto next = p.step(done_[dir == c2u ? u2c : c2u]);
    if (p.progressed())
        last_activity_ = std::chrono::steady_clock::now();
    tcp_socket& source = dir == c2u ? client_ : upstream_;
    tcp_socket& sink = dir == c2u ? upstream_ : client_;
    const std::uint8_t readable = dir == c2u ? client_readable : upstream_readable;
    const std::uint8_t writable = dir == c2u ? upstream_writable : client_writable;
    switch (next) {
    case pump::wait_for::nothing:
        // The source has more, but other sessions on this thread get a turn first: a bulk
        // flow must not add its transfer time to everyone else's latency.
        pending_ |= dir == c2u ? step_c2u : step_u2c;
        asio::post(client_.get_executor(), on_ready{this, dir == c2u ? step_c2u : step_u2c});
        break;
    case pump::wait_for::read:
        wait(source, tcp_socket::wait_read, readable);
        break;
    case pump::wait_for::write:
        wait(sink, tcp_socket::wait_write, writable);
        break;
    case pump::wait_for::read_or_write:
        wait(source, tcp_socket::wait_read, readable);
        wait(sink, tcp_socket::wait_write, writable);
        break;
    case pump::wait_for::done:
        done_[dir] = true;
        if (p.failed() == pump::failure::source)
            abort(dir == c2u ? close_reason::client_reset : close_reason::upstream_reset);
        else if (p.failed() == pump::failure::sink) {
            // What the failed socket received before its reset (a server's answer to an
            // earlier request, a "busy" banner) still goes to the other side, ahead of the
            // reset: one more step of the opposite direction reads it up to the error.
            const std::size_t back = dir == c2u ? u2c : c2u;
            if (!done_[back])
                drive(back);
            abort(dir == c2u ? close_reason::upstream_reset : close_reason::client_reset);
        } else if (done_[c2u] && done_[u2c]) {
            // Both half-closes went through: drop waits left over from read-or-write.
            boost::system::error_code ignored;
            client_.cancel(ignored);
            upstream_.cancel(ignored);
        }
        break;
    }
}

} // namespace nodelayd
