#include "nodelayd/upstream_connector.hpp"

#include "nodelayd/edge_wait.hpp"
#include "nodelayd/socket_ops.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace nodelayd {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// Opens a non-blocking socket for `ep`, hands it to `socket` and starts connecting; sets
// `in_progress` when the connect has to be waited for. Asio's async_connect would cost two
// syscalls more (its FIONBIO and a poll before SO_ERROR), and a socket it connected would
// stay registered for EPOLLOUT; that is harmless now that the relay's waits never re-arm
// (edge_wait.hpp), but it used to make every read wait report the idle socket writable.
boost::system::error_code start_connect(tcp_socket& socket, const tcp::endpoint& ep,
                                        bool& in_progress) {
    std::error_code error;
    const int fd = sys::open_tcp_socket(ep.protocol().family(), error);
    boost::system::error_code ec = error;
    if (fd < 0)
        return ec;
    adopt_socket(socket, ep.protocol(), fd, true, ec);
    if (!ec)
        ec = sys::start_connect(fd, ep.data(), static_cast<socklen_t>(ep.size()), in_progress);
    return ec;
}

struct connect_outcome {
    boost::system::error_code ec;
    bool timed_out = false;
    // A connect that fails ends in ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH...; a reset means
    // the server accepted first, and may have sent something before it.
    bool reset = false;
};

// Waits up to `timeout` for the connect to finish (an aborted relay ends the wait with
// operation_aborted).
asio::awaitable<connect_outcome> finish_connect(tcp_socket& socket, asio::steady_timer& timer,
                                                std::chrono::milliseconds timeout) {
    timer.expires_after(timeout);
    const auto result = co_await (socket.async_wait(tcp_socket::wait_write, use_tuple) ||
                                  timer.async_wait(use_tuple));
    if (result.index() == 1)
        co_return connect_outcome{asio::error::timed_out, true};
    if (auto [ec] = std::get<0>(result); ec)
        co_return connect_outcome{ec};
    const std::error_code error = sys::pending_error(socket.native_handle());
    co_return connect_outcome{error, false, error == std::errc::connection_reset};
}

} // namespace

asio::awaitable<upstream_connection> connect_upstream(route_runtime& route, tcp_socket& socket,
                                                      const relay& control, route_stats* stats) {
    const std::size_t n = route.upstreams.size();
    const std::size_t first = route.next_upstream.fetch_add(1, std::memory_order_relaxed) % n;
    asio::steady_timer timer(socket.get_executor());
    for (std::size_t i = 0; i < n; ++i) {
        const auto& server = route.upstreams[(first + i) % n];
        for (const auto& ep : server.endpoints) {
            if (control.aborted())
                co_return upstream_connection{};
            boost::system::error_code ec;
            socket.close(ec);
            const auto started = std::chrono::steady_clock::now();
            bool in_progress = false;
            connect_outcome outcome{start_connect(socket, ep, in_progress)};
            if (!outcome.ec && in_progress)
                outcome = co_await finish_connect(socket, timer, route.config.connect_timeout);
            if (!outcome.ec || outcome.reset) {
                if (stats != nullptr)
                    stats->upstream_connect.record_ns(static_cast<std::uint64_t>(
                        std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now() - started)
                            .count()));
                co_return upstream_connection{&server, outcome.reset};
            }
            if (control.aborted())
                co_return upstream_connection{};
            if (stats != nullptr)
                stats->upstream_connect_failures_total.add();
            if (outcome.timed_out)
                spdlog::warn("route={} connect to {} ({}) timed out after {}ms", route.config.name,
                             server.name, to_string(ep), route.config.connect_timeout.count());
            else
                spdlog::warn("route={} connect to {} ({}) failed: {}", route.config.name,
                             server.name, to_string(ep), outcome.ec.message());
        }
    }
    boost::system::error_code ignored;
    socket.close(ignored);
    co_return upstream_connection{};
}

} // namespace nodelayd
