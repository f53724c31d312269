#include "nodelayd/session.hpp"

#include "nodelayd/asio_support.hpp"
#include "nodelayd/proxy_io.hpp"
#include "nodelayd/session_registry.hpp"
#include "nodelayd/socket_ops.hpp"
#include "nodelayd/upstream_connector.hpp"

#include <boost/asio/co_spawn.hpp>
#include <spdlog/spdlog.h>

namespace nodelayd {

namespace asio = boost::asio;

namespace {

// Closes `s`; with `reset`, the peer gets RST instead of FIN, mirroring what the other side did.
void close_socket(tcp_socket& s, bool reset) {
    if (!s.is_open())
        return;
    if (reset)
        sys::set_reset_on_close(s.native_handle());
    boost::system::error_code ignored;
    s.close(ignored);
}

// TCP_INFO is sampled once, at close: RTT and segment counts over the connection's life.
void record_tcp_info(tcp_socket& s, route_stats& stats, side which) {
    sys::tcp_info_sample info;
    if (!s.is_open() || !sys::read_tcp_info(s.native_handle(), info))
        return;
    const auto i = static_cast<std::size_t>(which);
    stats.tcp_rtt[i].record_ns(std::uint64_t{info.rtt_us} * 1000);
    stats.tcp_segments_out_total[i].add(info.segments_out);
    stats.tcp_retransmits_total[i].add(info.retransmits);
}

std::string name_of(const asio::ip::tcp::endpoint& ep) {
    return ep.port() == 0 ? std::string("?") : to_string(ep);
}

} // namespace

void session::launch(tcp_socket client, const asio::ip::tcp::endpoint& peer, route_runtime& route,
                     session_registry& registry, route_stats* stats,
                     sys::inherited_options inherited) {
    auto* s = new session(std::move(client), route, registry, stats);
    s->client_address_ = peer;
    auto executor = s->client().get_executor();
    // The handler must not touch the session once the relay started: by the time it runs,
    // the relay may already have finished and deleted it.
    asio::co_spawn(executor, s->set_up(inherited), [s](const std::exception_ptr& e, bool relaying) {
        if (relaying)
            return;
        if (e)
            log_failure{"route=" + s->route_.config.name + " session"}(e);
        s->close(s->aborted() ? s->reason() : close_reason::connect_failed);
    });
}

session::session(tcp_socket client, route_runtime& route, session_registry& registry,
                 route_stats* stats)
    : relay(std::move(client), route.relay, stats), route_(route) {
    registry.add(*this);
    if (stats != nullptr)
        stats->connections_total.add();
}

session::~session() {
    route_.active.fetch_sub(1, std::memory_order_relaxed);
}

asio::awaitable<bool> session::set_up(sys::inherited_options inherited) {
    const auto& config = route_.config;
    // The listener's value differs after a reload changed the route's policy.
    if (inherited.nodelay != config.client.nodelay)
        sys::set_nodelay(client().native_handle(), config.client.nodelay);
    // The client's address came with the accept; the local one is only looked up when a
    // PROXY header will carry it.
    connection_addresses addresses{client_address_, {}};
    if (config.send_proxy != proxy_version::off) {
        boost::system::error_code ec;
        addresses.source = client().remote_endpoint(ec);
        if (ec) {
            // The client has reset the connection already (often while it waited to be
            // accepted): nothing is left to relay, and no upstream should be told of a
            // client that is gone.
            abort(close_reason::client_reset);
            co_return false;
        }
        addresses.destination = client().local_endpoint(ec);
    }
    if (config.accept_proxy) {
        const auto header = co_await receive_proxy_header(
            client(), *this, proxy_header_timeout, config.client.quickack != quickack_mode::off);
        if (header.source) { // none for v1 UNKNOWN, v2 LOCAL: the connection's own apply
            addresses = {*header.source, *header.destination};
            client_address_ = *header.source;
        }
        if (header.status != proxy_parse_status::complete) {
            if (aborted())
                co_return false;
            spdlog::warn("route={} client={} no valid PROXY header: {}", config.name,
                         name_of(client_address_), header.error);
            abort(close_reason::proxy_header);
            co_return false;
        }
    }
    const auto [server, reset] = co_await connect_upstream(route_, upstream(), *this, stats());
    if (server == nullptr) {
        abort(close_reason::connect_failed); // a no-op when already aborted
        co_return false;
    }
    server_ = static_cast<std::uint16_t>(server - route_.upstreams.data());
    if (const auto ec = co_await send_proxy_header(upstream(), config.send_proxy, addresses)) {
        if (!aborted())
            spdlog::warn("route={} client={} sending the PROXY header to {} failed: {}",
                         config.name, name_of(client_address_), server->name, ec.message());
        abort(close_reason::upstream_reset);
        co_return false;
    }
    if (aborted())
        co_return false;
    sys::set_nodelay(upstream().native_handle(), config.upstream.nodelay);
    start(inherited.rx_timestamps, config.send_proxy != proxy_version::off, reset);
    co_return true;
}

void session::expire_if_idle(std::chrono::steady_clock::time_point now) {
    if (!started() || aborted())
        return; // set-up phases have timeouts of their own
    const auto idle = now - last_activity();
    if (idle >= route_.relay.idle_timeout)
        abort(close_reason::idle_timeout);
    else if (half_closed() && idle >= route_.relay.half_closed_timeout)
        abort(close_reason::half_closed_timeout);
}

std::chrono::milliseconds session::shortest_timeout() const {
    return std::min(route_.relay.idle_timeout, route_.relay.half_closed_timeout);
}

const std::string& session::server_name() const {
    static const std::string none = "-";
    return server_ == no_server ? none : route_.upstreams[server_].name;
}

void session::finished() {
    close(outcome().reason);
}

void session::close(close_reason reason) {
    if (stats() != nullptr) {
        record_tcp_info(client(), *stats(), side::client);
        record_tcp_info(upstream(), *stats(), side::upstream);
    }
    close_socket(upstream(), reason == close_reason::client_reset);
    close_socket(client(), reason == close_reason::upstream_reset ||
                               reason == close_reason::connect_failed ||
                               reason == close_reason::proxy_header);
    if (logs_session(route_.config.log_sessions, reason == close_reason::completed)) {
        const auto out = outcome();
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - started_at_;
        spdlog::info("route={} client={} upstream={} bytes_c2u={} bytes_u2c={} duration={:.3f}s "
                     "close={} stalls_client={} stalls_upstream={}",
                     route_.config.name, name_of(client_address_), server_name(),
                     out.client_to_upstream, out.upstream_to_client, took.count(),
                     to_string(reason), out.client_stalls, out.upstream_stalls);
    }
    delete this;
}

} // namespace nodelayd
