#include "nodelayd/relay.hpp"

#include "nodelayd/pump.hpp"
#include "nodelayd/socket_ops.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <optional>

namespace nodelayd {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

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
    case close_reason::shutdown:
        return "shutdown";
    case close_reason::connect_failed:
        return "connect-failed";
    case close_reason::proxy_header:
        return "proxy-header";
    }
    return "unknown";
}

relay_control::relay_control(tcp::socket& client, tcp::socket& upstream)
    : client_(client), upstream_(upstream) {}

void relay_control::abort(close_reason reason) {
    if (aborted_)
        return;
    aborted_ = true;
    reason_ = reason;
    boost::system::error_code ignored;
    client_.cancel(ignored);
    upstream_.cancel(ignored);
}

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// Everything one direction needs, borrowed from the relay's frame.
struct flow {
    tcp::socket& source;
    tcp::socket& sink;
    const side_policy& source_policy;
    const side_policy& sink_policy;
    close_reason source_failure;
    close_reason sink_failure;
    std::uint64_t& bytes;
    std::uint64_t& source_stalls;
    const pump_meter* meter;
};

// Shared by the two pumps and the watchdog of one relay.
struct relay_state {
    relay_control& control;
    asio::steady_timer watchdog;
    int running = 2;
};

asio::awaitable<void> wait_ready(tcp::socket& s, tcp::socket::wait_type w) {
    co_await s.async_wait(w, use_tuple);
}

asio::awaitable<void> run_pump(flow d, std::size_t bound, relay_state& state) {
    pump p(d.source.native_handle(), d.sink.native_handle(), d.source_policy, d.sink_policy, bound,
           d.meter);
    for (;;) {
        if (state.control.aborted())
            break;
        const auto next = p.step();
        if (p.progressed())
            state.control.touch();
        d.bytes = p.bytes();
        d.source_stalls = p.source_stalls();
        if (next == pump::wait_for::done) {
            if (p.failed() == pump::failure::source)
                state.control.abort(d.source_failure);
            else if (p.failed() == pump::failure::sink)
                state.control.abort(d.sink_failure);
            break;
        }
        // Waits report no data, only readiness; the next step() finds out what happened,
        // and an abort() shows up as aborted() above.
        switch (next) {
        case pump::wait_for::nothing:
            // The source has more, but other sessions on this thread get a turn first: a
            // bulk flow must not add its transfer time to everyone else's latency.
            co_await asio::post(d.source.get_executor(), asio::use_awaitable);
            break;
        case pump::wait_for::read:
            co_await d.source.async_wait(tcp::socket::wait_read, use_tuple);
            break;
        case pump::wait_for::write:
            co_await d.sink.async_wait(tcp::socket::wait_write, use_tuple);
            break;
        case pump::wait_for::read_or_write:
            co_await (wait_ready(d.source, tcp::socket::wait_read) ||
                      wait_ready(d.sink, tcp::socket::wait_write));
            break;
        case pump::wait_for::done:
            break;
        }
    }
    if (--state.running == 0)
        state.watchdog.cancel();
}

asio::awaitable<void> run_watchdog(std::chrono::milliseconds idle, relay_state& state) {
    while (state.running > 0 && !state.control.aborted()) {
        const auto deadline = state.control.last_activity() + idle;
        if (std::chrono::steady_clock::now() >= deadline) {
            state.control.abort(close_reason::idle_timeout);
            break;
        }
        state.watchdog.expires_at(deadline);
        co_await state.watchdog.async_wait(use_tuple);
    }
}

} // namespace

namespace {

// Meters for one direction; `from`/`to` index the per-side metrics.
pump_meter meter_for(route_stats& stats, direction dir, side from, side to, peer_watch& source,
                     peer_watch& sink) {
    const auto d = static_cast<std::size_t>(dir);
    const auto f = static_cast<std::size_t>(from);
    const auto t = static_cast<std::size_t>(to);
    return pump_meter{stats.added_latency[d],
                      stats.bytes_total[d],
                      stats.writes_total[t],
                      stats.chunks_total[t],
                      stats.peer_stalls_total[f],
                      source,
                      sink};
}

peer_watch watch_for(tcp::socket& s) {
    peer_watch w;
    sys::enable_rx_timestamps(s.native_handle());
    if (const auto mss = sys::max_segment(s.native_handle()); mss > 0)
        w.full_segment = mss;
    return w;
}

} // namespace

asio::awaitable<relay_outcome> relay(tcp::socket& client, tcp::socket& upstream,
                                     const relay_settings& settings, relay_control& control,
                                     route_stats* stats) {
    relay_outcome out;
    relay_state state{control, asio::steady_timer(client.get_executor())};
    control.touch();
    std::optional<peer_watch> client_watch;
    std::optional<peer_watch> upstream_watch;
    std::optional<pump_meter> c2u_meter;
    std::optional<pump_meter> u2c_meter;
    if (stats != nullptr) {
        client_watch = watch_for(client);
        upstream_watch = watch_for(upstream);
        c2u_meter.emplace(meter_for(*stats, direction::client_to_upstream, side::client,
                                    side::upstream, *client_watch, *upstream_watch));
        u2c_meter.emplace(meter_for(*stats, direction::upstream_to_client, side::upstream,
                                    side::client, *upstream_watch, *client_watch));
    }
    flow c2u{client,
             upstream,
             settings.client,
             settings.upstream,
             close_reason::client_reset,
             close_reason::upstream_reset,
             out.client_to_upstream,
             out.client_stalls,
             c2u_meter ? &*c2u_meter : nullptr};
    flow u2c{upstream,
             client,
             settings.upstream,
             settings.client,
             close_reason::upstream_reset,
             close_reason::client_reset,
             out.upstream_to_client,
             out.upstream_stalls,
             u2c_meter ? &*u2c_meter : nullptr};
    co_await (run_pump(c2u, settings.buffer_size, state) &&
              run_pump(u2c, settings.buffer_size, state) &&
              run_watchdog(settings.idle_timeout, state));
    out.reason = control.aborted() ? control.reason() : close_reason::completed;
    co_return out;
}

} // namespace nodelayd
