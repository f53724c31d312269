#pragma once
// A route as the workers use it: resolved addresses plus counters shared across threads.
// Counters here are touched once per connection, never per byte.

#include "nodelayd/config.hpp"
#include "nodelayd/relay.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace nodelayd {

/// One upstream server with the addresses its name resolved to.
struct upstream_server {
    /// As configured, for logs.
    std::string name;
    /// Resolved addresses, tried in order.
    std::vector<boost::asio::ip::tcp::endpoint> endpoints;
};

/// One route's statistics: a route_stats per worker thread, each written only by its
/// worker. Shared by the successive configurations of a route (same name) across reloads.
struct route_stats_set {
    /// Indexed by worker.
    std::vector<std::unique_ptr<route_stats>> per_worker;
    /// A set with one route_stats per worker.
    explicit route_stats_set(std::size_t workers) {
        for (std::size_t i = 0; i < workers; ++i)
            per_worker.push_back(std::make_unique<route_stats>());
    }
};

/// Upstream servers a route may list (sessions keep a 16-bit index to theirs).
inline constexpr std::size_t max_upstreams = 10'000;

/// A configured route, resolved and ready to serve.
struct route_runtime {
    /// Position in the configuration.
    std::size_t index = 0;
    /// Where sessions record; null when stats are off.
    std::shared_ptr<route_stats_set> stats;
    /// The route's configuration.
    route_config config;
    /// Address to listen on (port 0 until the first listener is bound).
    boost::asio::ip::tcp::endpoint listen;
    /// Upstream servers in configured order.
    std::vector<upstream_server> upstreams;
    /// Relay settings derived from the config.
    relay_settings relay;
    /// Sessions open right now, for max-connections.
    std::atomic<std::size_t> active{0};
    /// Round-robin cursor over upstreams.
    std::atomic<std::size_t> next_upstream{0};
};

/// Resolves every route's listen and upstream addresses (blocking DNS, at startup only).
/// Throws config_error naming the route and host that failed.
std::vector<std::unique_ptr<route_runtime>> resolve_routes(const daemon_config& config);

/// "1.2.3.4:80" or "[::1]:80".
std::string to_string(const boost::asio::ip::tcp::endpoint& ep);

} // namespace nodelayd
