#pragma once
// The daemon: routes, worker threads and their listeners, and graceful shutdown
// (stop accepting, let sessions drain up to a deadline, then close them).

#include "nodelayd/config.hpp"
#include "nodelayd/route_runtime.hpp"
#include "nodelayd/stats.hpp"
#include "nodelayd/stats_server.hpp"
#include "nodelayd/worker.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <vector>

namespace nodelayd {

/// Owns every listener and worker; run() serves until SIGTERM/SIGINT or stop().
class server {
public:
    /// Binds every route on every worker. Throws std::system_error (with the failing step
    /// and address in what()) before any thread starts, so a failure leaves nothing bound.
    /// With `handle_signals`, SIGINT/SIGTERM are caught from here on (before the daemon
    /// reports readiness) and begin a graceful shutdown.
    server(const daemon_config& config, std::vector<std::unique_ptr<route_runtime>> routes,
           bool handle_signals = true);
    server(const server&) = delete;
    server& operator=(const server&) = delete;
    ~server();

    /// Routes with their bound listen addresses.
    [[nodiscard]] const std::vector<std::unique_ptr<route_runtime>>& routes() const {
        return routes_;
    }
    /// Serves until a signal or stop(); returns once every worker has exited. Sessions get
    /// the configured shutdown timeout to finish.
    void run();
    /// Begins a graceful shutdown from any thread.
    void stop();
    /// Merges every worker's statistics (any thread; reads relaxed atomics only).
    [[nodiscard]] stats_snapshot snapshot() const;
    /// The stats endpoint's address, or empty when it is off.
    [[nodiscard]] std::string stats_address() const;

private:
    void begin_shutdown();
    void open_stats();

    daemon_config config_;
    std::vector<std::unique_ptr<route_runtime>> routes_;
    std::vector<std::unique_ptr<worker>> workers_;
    boost::asio::io_context control_;
    boost::asio::steady_timer deadline_;
    boost::asio::signal_set signals_;
    bool shutting_down_ = false;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    std::unique_ptr<stats_server> stats_;
};

} // namespace nodelayd
