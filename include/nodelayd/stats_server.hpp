#pragma once
// The stats endpoint: a small HTTP/1.1 server (Boost.Beast) on the daemon's own io_context.
// GET /metrics, /stats, /healthz and / ; safe by default (GET only, bounded headers,
// request timeout, a cap on concurrent connections). A scrape copies counters only, so it
// never blocks the relay.

#include "nodelayd/stats.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace nodelayd {

/// Limits of the stats endpoint.
struct stats_server_limits {
    /// Request line plus headers; larger requests get 431.
    std::size_t max_header_bytes = std::size_t{8} * 1024;
    /// Time a client gets to send a whole request (and, between requests, to send the next).
    std::chrono::milliseconds request_timeout{5'000};
    /// Concurrent connections; further ones are closed at once.
    std::size_t max_connections = 32;
};

/// Serves stats over HTTP until stop().
class stats_server {
public:
    /// Produces the data for one response (called on the server's thread).
    using snapshot_source = std::function<stats_snapshot()>;
    /// Whether the listeners accept (for /healthz).
    using health_source = std::function<bool()>;

    /// Binds `endpoint` (TCP) on `ctx`. Throws std::system_error naming the step on failure.
    stats_server(boost::asio::io_context& ctx, const boost::asio::ip::tcp::endpoint& endpoint,
                 snapshot_source snapshot, health_source healthy, stats_server_limits limits = {});
    /// Binds a Unix stream socket at `path` (an existing socket file is replaced).
    stats_server(boost::asio::io_context& ctx, const std::string& path, snapshot_source snapshot,
                 health_source healthy, stats_server_limits limits = {});
    ~stats_server();
    stats_server(const stats_server&) = delete;
    stats_server& operator=(const stats_server&) = delete;

    /// Starts accepting.
    void start();
    /// Stops accepting and closes open stats connections (from the io_context's thread).
    void stop();
    /// Bound address, e.g. "127.0.0.1:9900" or the socket path.
    [[nodiscard]] std::string address() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace nodelayd
