#include "nodelayd/session.hpp"

#include "nodelayd/proxy_io.hpp"
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

// TCP_INFO is sampled once, at close: RTT and segment counts over the connection's life.
void record_tcp_info(tcp::socket& s, route_stats& stats, side which) {
    sys::tcp_info_sample info;
    if (!s.is_open() || !sys::read_tcp_info(s.native_handle(), info))
        return;
    const auto i = static_cast<std::size_t>(which);
    stats.tcp_rtt[i].record_ns(std::uint64_t{info.rtt_us} * 1000);
    stats.tcp_segments_out_total[i].add(info.segments_out);
    stats.tcp_retransmits_total[i].add(info.retransmits);
}

} // namespace

asio::awaitable<void> run_session(tcp::socket client, route_runtime& route,
                                  session_registry& registry, route_stats* stats) {
    active_guard guard{route.active};
    const auto started = std::chrono::steady_clock::now();
    std::string client_name = peer_of(client);
    connection_addresses addresses = addresses_of(client);
    tcp::socket upstream(client.get_executor());
    relay_control control(client, upstream);
    session_registry::entry registered(registry, control);
    if (stats != nullptr)
        stats->connections_total.add();

    sys::set_nodelay(client.native_handle(), route.config.client.nodelay);
    relay_outcome outcome;
    std::optional<std::string> server;
    bool proxy_header_ok = true;
    if (route.config.accept_proxy) {
        const auto header = co_await receive_proxy_header(client, control, proxy_header_timeout,
                                                          route.config.client.quickack);
        proxy_header_ok = header.status == proxy_parse_status::complete;
        if (header.source) { // none for v1 UNKNOWN, v2 LOCAL: the connection's own apply
            addresses = {*header.source, *header.destination};
            client_name = to_string(*header.source);
        } else if (!proxy_header_ok && !control.aborted()) {
            spdlog::warn("route={} client={} no valid PROXY header: {}", route.config.name,
                         client_name, header.error);
        }
    }
    if (!proxy_header_ok) {
        outcome.reason = control.aborted() ? control.reason() : close_reason::proxy_header;
    } else if (server = co_await connect_upstream(route, upstream, control, stats); !server) {
        outcome.reason = control.aborted() ? control.reason() : close_reason::connect_failed;
    } else if (const auto ec =
                   co_await send_proxy_header(upstream, route.config.send_proxy, addresses)) {
        if (!control.aborted())
            spdlog::warn("route={} client={} sending the PROXY header to {} failed: {}",
                         route.config.name, client_name, *server, ec.message());
        outcome.reason = control.aborted() ? control.reason() : close_reason::upstream_reset;
    } else {
        sys::set_nodelay(upstream.native_handle(), route.config.upstream.nodelay);
        outcome = co_await relay(client, upstream, route.relay, control, stats);
    }
    if (stats != nullptr) {
        record_tcp_info(client, *stats, side::client);
        record_tcp_info(upstream, *stats, side::upstream);
    }

    close_socket(upstream, outcome.reason == close_reason::client_reset);
    close_socket(client, outcome.reason == close_reason::upstream_reset ||
                             outcome.reason == close_reason::connect_failed ||
                             outcome.reason == close_reason::proxy_header);
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
    spdlog::info("route={} client={} upstream={} bytes_c2u={} bytes_u2c={} duration={:.3f}s "
                 "close={} stalls_client={} stalls_upstream={}",
                 route.config.name, client_name, server.value_or("-"), outcome.client_to_upstream,
                 outcome.upstream_to_client, took.count(), to_string(outcome.reason),
                 outcome.client_stalls, outcome.upstream_stalls);
}

} // namespace nodelayd
