#pragma once
// One worker thread: its own io_context, one listener per route (SO_REUSEPORT, or a shared
// socket passed by the service manager), and the sessions those listeners accepted. Nothing
// is shared with other workers but the routes' connection counters.

#include "nodelayd/asio_support.hpp"
#include "nodelayd/route_runtime.hpp"
#include "nodelayd/session_registry.hpp"
#include "nodelayd/socket_ops.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <thread>
#include <vector>

namespace nodelayd {

/// A thread serving routes through its own listeners.
class worker {
public:
    /// A bound, listening socket for a route that this worker has not started yet.
    struct staged_listener {
        /// The acceptor, already listening.
        tcp_acceptor acceptor;
        /// The route it serves.
        route_runtime* route;
        /// What the sockets it accepts inherit from it.
        sys::inherited_options inherited;
    };

    /// Creates the io_context; the thread busy-polls for `busy_poll` after its last event.
    worker(std::size_t index, std::chrono::microseconds busy_poll);
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;
    ~worker();

    /// Binds and listens for `route` on this worker's context (SO_REUSEPORT, so every worker
    /// can bind the same address). Throws std::system_error naming the failing step.
    staged_listener bind(route_runtime& route);
    /// Wraps a listening socket passed by the service manager (takes ownership of `fd`).
    staged_listener adopt(route_runtime& route, int fd);
    /// Starts the thread with `listeners`; `on_exit` runs on it when it runs out of work.
    void start(std::vector<staged_listener> listeners, std::function<void()> on_exit);
    /// Starts accepting on more listeners (from any thread, after start()).
    void add(std::vector<staged_listener> listeners);
    /// New connections on `from`'s listeners belong to `to` from now on (any thread).
    void retarget(route_runtime* from, route_runtime* to);
    /// Closes the listeners of `route` (any thread); its sessions carry on.
    void stop_route(route_runtime* route);
    /// Closes every listener (any thread); sessions carry on.
    void stop_accepting();
    /// Aborts every session (any thread).
    void abort_sessions();
    /// Runs `f` on the worker's thread (a heartbeat proves the loop turns).
    void post(std::function<void()> f);
    /// Joins the thread.
    void join();
    /// Position among the workers.
    [[nodiscard]] std::size_t index() const { return index_; }

private:
    // A listening socket being served. Exactly one of its edge wait, its back-off timer or a
    // posted continuation is pending at any time; whichever ends after the socket was closed
    // removes the listener.
    struct listener {
        // Held as a stream socket only to wait on it: edge waits (edge_wait.hpp) need a
        // socket's implementation, which Asio's acceptor keeps to itself.
        tcp_socket socket;
        route_runtime* route;
        sys::inherited_options inherited;
        boost::asio::steady_timer backoff;
        worker* owner;
        std::list<listener>::iterator self;
        // Out-of-descriptor pauses since the last warning, and when the next may be logged.
        std::size_t pauses = 0;
        std::chrono::steady_clock::time_point next_warning;
    };
    void spawn(std::vector<staged_listener> listeners);
    static void on_listener_ready(void* self, std::uint8_t tag, bool aborted);
    static void resume_accepting(listener& l);
    void wait_for_connections(listener& l);
    bool remove_if_closed(listener& l);
    void accept_next(listener& l);
    void serve(listener& l, sys::accept_result& accepted);

    std::size_t index_;
    std::chrono::microseconds busy_poll_;
    boost::asio::io_context ctx_{1};
    std::list<listener> listeners_;
    session_registry sessions_{ctx_};
    std::thread thread_;
};

} // namespace nodelayd
