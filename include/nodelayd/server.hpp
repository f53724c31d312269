#pragma once
// The daemon: routes, worker threads and their listeners, the stats endpoint, the service
// manager protocol (readiness, status, watchdog, socket activation), reload on SIGHUP, and
// graceful shutdown (stop accepting, let sessions drain up to a deadline, then close them).

#include "nodelayd/config.hpp"
#include "nodelayd/route_runtime.hpp"
#include "nodelayd/stats.hpp"
#include "nodelayd/stats_server.hpp"
#include "nodelayd/worker.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <sys/signalfd.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace nodelayd {

/// Owns every listener and worker; run() serves until SIGTERM/SIGINT or stop().
class server {
public:
    /// Produces the configuration to switch to on reload (re-reads the file); throws
    /// config_error (or std::exception) when it is invalid.
    using config_source = std::function<daemon_config()>;

    /// Binds every route on every worker (or adopts the sockets passed by the service
    /// manager) and the stats endpoint. Throws std::system_error (with the failing step and
    /// address in what()) before any thread starts, so a failure leaves nothing bound.
    /// With `handle_signals`, SIGINT/SIGTERM (graceful stop) and SIGHUP (reload) are caught
    /// from here on, before the daemon reports readiness.
    server(const daemon_config& config, std::vector<std::unique_ptr<route_runtime>> routes,
           config_source reload_source = {}, bool handle_signals = true);
    server(const server&) = delete;
    server& operator=(const server&) = delete;
    ~server();

    /// Current routes with their bound listen addresses (control thread only once running).
    [[nodiscard]] const std::vector<std::unique_ptr<route_runtime>>& routes() const {
        return routes_;
    }
    /// Serves until a signal or stop(); returns once every worker has exited. Sessions get
    /// the configured shutdown timeout to finish.
    void run();
    /// Begins a graceful shutdown from any thread.
    void stop();
    /// Re-reads the configuration and applies it, from any thread (as SIGHUP does).
    void reload();
    /// Merges every worker's statistics (control thread).
    [[nodiscard]] stats_snapshot snapshot() const;
    /// The stats endpoint's address, or empty when it is off.
    [[nodiscard]] std::string stats_address() const;

private:
    void watch_signals();
    void begin_shutdown();
    void apply_reload();
    void open_stats();
    void tick();
    [[nodiscard]] std::string status_text() const;
    std::shared_ptr<route_stats_set> stats_for(const std::string& route_name);
    std::vector<std::vector<worker::staged_listener>> listen_everywhere(route_runtime& route);
    void adopt_passed_sockets();

    daemon_config config_;
    config_source reload_source_;
    std::vector<std::unique_ptr<route_runtime>> routes_;
    // Routes replaced or removed by a reload: their sessions may still run and refer to them.
    std::vector<std::unique_ptr<route_runtime>> retired_;
    std::map<std::string, std::shared_ptr<route_stats_set>> stats_sets_;
    std::vector<std::unique_ptr<worker>> workers_;
    // Listeners bound (or adopted) before run(), per worker.
    std::vector<std::vector<worker::staged_listener>> initial_;
    // Sockets passed by the service manager, by route index, until bound to workers.
    std::map<std::size_t, int> passed_;
    boost::asio::io_context control_;
    boost::asio::steady_timer deadline_;
    boost::asio::steady_timer ticker_;
    boost::asio::posix::stream_descriptor signals_; // a signalfd
    signalfd_siginfo signal_info_{};
    std::vector<std::atomic<std::uint64_t>> heartbeats_;
    std::vector<std::uint64_t> last_heartbeats_;
    bool handle_signals_;
    bool shutting_down_ = false;
    // Every worker has exited. The ticker and the signal wait must not re-arm from now on:
    // a completion already queued when they were cancelled still reports success.
    bool finished_ = false;
    std::string status_note_;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    std::unique_ptr<stats_server> stats_;
};

} // namespace nodelayd
