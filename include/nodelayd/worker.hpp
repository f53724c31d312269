#pragma once
// One worker thread: its own io_context, one SO_REUSEPORT listener per route, and the
// sessions those listeners accepted. Nothing is shared with other workers but the routes'
// connection counters.

#include "nodelayd/route_runtime.hpp"
#include "nodelayd/session_registry.hpp"
#include "nodelayd/stats.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace nodelayd {

/// A thread serving every route through its own listeners.
class worker {
public:
    /// Creates the io_context; listeners are added with bind(). With `measure`, sessions
    /// record statistics into this worker's own route_stats.
    worker(std::size_t index, bool measure);
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;
    ~worker();

    /// Binds a listener for `route` (SO_REUSEPORT, so every worker can bind the same address).
    /// Returns the bound endpoint; throws std::system_error with the failing step in what().
    boost::asio::ip::tcp::endpoint bind(route_runtime& route);
    /// Starts the thread; `on_exit` runs on it when its io_context runs out of work.
    void start(std::function<void()> on_exit);
    /// Closes the listeners (from any thread); sessions carry on.
    void stop_accepting();
    /// Aborts every session (from any thread).
    void abort_sessions();
    /// Joins the thread.
    void join();
    /// What this worker recorded for the route with `route_index` (read from any thread).
    [[nodiscard]] const route_stats& stats(std::size_t route_index) const {
        return *stats_.at(route_index);
    }

private:
    boost::asio::awaitable<void> accept_loop(boost::asio::ip::tcp::acceptor& acceptor,
                                             route_runtime& route);

    std::size_t index_;
    bool measure_;
    std::vector<std::unique_ptr<route_stats>> stats_;
    boost::asio::io_context ctx_{1};
    std::vector<std::pair<boost::asio::ip::tcp::acceptor, route_runtime*>> listeners_;
    session_registry sessions_;
    std::thread thread_;
};

} // namespace nodelayd
