#include "nodelayd/session.hpp"

#include "nodelayd/socket_ops.hpp"
#include "nodelayd/upstream_connector.hpp"

#include <spdlog/spdlog.h>

#include <chrono>

namespace nodelayd {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

// Decrements the route's active count however the session ends.
struct active_guard {
    std::atomic<std::size_t>& active;
    ~active_guard() { active.fetch_sub(1, std::memory_order_relaxed); }
};

std::string peer_of(const tcp::socket& s) {
    boost::system::error_code ec;
    const auto ep = s.remote_endpoint(ec);
    return ec ? std::string("?") : to_string(ep);
}

// Closes `s`; with `reset`, the peer gets RST instead of FIN, mirroring what the other side did.
void close_socket(tcp::socket& s, bool reset) {
    if (!s.is_open())
        return;
    if (reset)
        sys::set_reset_on_close(s.native_handle());
    boost::system::error_code ignored;
    s.close(ignored);
}

} // namespace

asio::awaitable<void> run_session(tcp::socket client, route_runtime& route,
                                  session_registry& registry) {
    active_guard guard{route.active};
    const auto started = std::chrono::steady_clock::now();
    const std::string client_name = peer_of(client);
    tcp::socket upstream(client.get_executor());
    relay_control control(client, upstream);
    session_registry::entry registered(registry, control);

    sys::set_nodelay(client.native_handle(), route.config.client.nodelay);
    relay_outcome outcome;
    const auto server = co_await connect_upstream(route, upstream, control);
    if (!server) {
        outcome.reason = control.aborted() ? control.reason() : close_reason::connect_failed;
    } else {
        sys::set_nodelay(upstream.native_handle(), route.config.upstream.nodelay);
        outcome = co_await relay(client, upstream, route.relay, control);
    }

    close_socket(upstream, outcome.reason == close_reason::client_reset);
    close_socket(client, outcome.reason == close_reason::upstream_reset ||
                             outcome.reason == close_reason::connect_failed);
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
    spdlog::info("route={} client={} upstream={} bytes_c2u={} bytes_u2c={} duration={:.3f}s "
                 "close={}",
                 route.config.name, client_name, server.value_or("-"), outcome.client_to_upstream,
                 outcome.upstream_to_client, took.count(), to_string(outcome.reason));
}

} // namespace nodelayd
