#include "nodelayd/worker.hpp"

#include "nodelayd/asio_support.hpp"
#include "nodelayd/event_loop.hpp"
#include "nodelayd/log_sink.hpp"
#include "nodelayd/logging.hpp"
#include "nodelayd/session.hpp"
#include "nodelayd/socket_ops.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <utility>

namespace nodelayd {

namespace asio = boost::asio;
using asio::ip::tcp;

worker::worker(std::size_t index, std::chrono::microseconds busy_poll)
    : index_(index), busy_poll_(busy_poll) {}

worker::~worker() {
    if (thread_.joinable()) {
        stop_accepting();
        abort_sessions();
        thread_.join();
    }
}

worker::staged_listener worker::bind(route_runtime& route) {
    const std::string where = "route '" + route.config.name + "': ";
    tcp_acceptor acceptor(ctx_);
    boost::system::error_code ec;
    acceptor.open(route.listen.protocol(), ec);
    throw_if(ec, where + "socket");
    acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    throw_if(ec, where + "setsockopt SO_REUSEADDR");
    throw_if(sys::set_reuse_port(acceptor.native_handle()), where + "setsockopt SO_REUSEPORT");
    acceptor.bind(route.listen, ec);
    throw_if(ec, where + "bind " + to_string(route.listen));
    // Before listen(): a connection is cloned from the listener when its handshake ends.
    const auto inherited = sys::set_listener_options(
        acceptor.native_handle(), route.config.client.nodelay, route.stats != nullptr);
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
    throw_if(ec, where + "listen " + to_string(route.listen));
    return {std::move(acceptor), &route, inherited};
}

worker::staged_listener worker::adopt(route_runtime& route, int fd) {
    tcp_acceptor acceptor(ctx_);
    boost::system::error_code ec;
    acceptor.assign(route.listen.protocol(), fd, ec);
    if (ec)
        ::close(fd);
    throw_if(ec, "route '" + route.config.name + "': adopt passed socket");
    // Read, not set: connections queued before the daemon started (the one that started it,
    // under socket activation) were cloned with what the socket unit set (NoDelay=,
    // Timestamping=); sockets whose options differ from the route's get them set.
    const auto inherited =
        sys::read_listener_options(acceptor.native_handle(), route.config.client.nodelay);
    return {std::move(acceptor), &route, inherited};
}

void worker::spawn(std::vector<staged_listener> listeners) {
    for (auto& staged : listeners) {
        const auto it = listeners_.insert(
            listeners_.end(), {std::move(staged.acceptor), staged.route, staged.inherited});
        asio::co_spawn(ctx_, accept_loop(it),
                       log_failure{"route=" + staged.route->config.name + " accept loop"});
    }
}

void worker::start(std::vector<staged_listener> listeners, std::function<void()> on_exit) {
    spawn(std::move(listeners));
    // The thread starts with SIGINT, SIGTERM and SIGHUP blocked (a new thread inherits the
    // mask): the server reads them from a signalfd, and a worker must never take one, also
    // in a process whose other threads do not block them (tests embedding a server).
    const sigset_t block = sys::handled_signals();
    sigset_t old{};
    ::pthread_sigmask(SIG_BLOCK, &block, &old);
    thread_ = std::thread([this, on_exit = std::move(on_exit)] {
        {
            // Session lines are written once per burst of handlers, not one write each.
            const batching_sink::batched_logging batched;
            try {
                run_event_loop(ctx_, busy_poll_, flush_logs);
            } catch (const std::exception& e) {
                spdlog::critical("worker {} stopped: {}", index_, e.what());
            }
            flush_logs();
        }
        on_exit();
    });
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

void worker::add(std::vector<staged_listener> listeners) {
    // The acceptors move into the posted handler; shared_ptr keeps it copyable.
    auto moved = std::make_shared<std::vector<staged_listener>>(std::move(listeners));
    asio::post(ctx_, [this, moved] { spawn(std::move(*moved)); });
}

void worker::retarget(route_runtime* from, route_runtime* to) {
    asio::post(ctx_, [this, from, to] {
        for (auto& l : listeners_)
            if (l.route == from)
                l.route = to;
    });
}

void worker::stop_route(route_runtime* route) {
    asio::post(ctx_, [this, route] {
        for (auto& l : listeners_)
            if (l.route == route) {
                boost::system::error_code ignored;
                l.acceptor.close(ignored);
            }
    });
}

void worker::stop_accepting() {
    asio::post(ctx_, [this] {
        for (auto& l : listeners_) {
            boost::system::error_code ignored;
            l.acceptor.close(ignored);
        }
        sessions_.drain();
    });
}

void worker::abort_sessions() {
    asio::post(ctx_, [this] { sessions_.abort_all(close_reason::shutdown); });
}

void worker::post(std::function<void()> f) {
    asio::post(ctx_, std::move(f));
}

void worker::join() {
    if (thread_.joinable())
        thread_.join();
}

asio::awaitable<void> worker::accept_loop(std::list<listener>::iterator it) {
    constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
    tcp_acceptor& acceptor = it->acceptor;
    asio::steady_timer backoff(ctx_);
    // Out-of-descriptor pauses since the last warning, and when the next may be logged.
    std::size_t pauses = 0;
    auto next_warning = std::chrono::steady_clock::time_point::min();
    while (acceptor.is_open()) {
        auto [ec, client] = co_await acceptor.async_accept(use_tuple);
        if (ec == asio::error::operation_aborted || !acceptor.is_open())
            break;
        // Read after every accept: a reload may have handed the listener to a new route.
        route_runtime& route = *it->route;
        if (ec) {
            if (out_of_descriptors(ec)) {
                // Retrying at once would spin: the pending connection stays in the backlog
                // until a descriptor frees up. Warned about at most every 10 s: under
                // pressure an accept succeeds between pauses now and then, so a warning per
                // episode would still come every 100 ms.
                const auto now = std::chrono::steady_clock::now();
                if (now >= next_warning) {
                    spdlog::warn("route={} accept: {}; pausing 100ms ({} more pause(s) since "
                                 "the last such warning; one per 10s at most)",
                                 route.config.name, ec.message(), std::exchange(pauses, 0));
                    next_warning = now + std::chrono::seconds(10);
                } else {
                    ++pauses;
                }
                backoff.expires_after(std::chrono::milliseconds(100));
                co_await backoff.async_wait(use_tuple);
            } else {
                spdlog::warn("route={} accept: {}", route.config.name, ec.message());
            }
            continue;
        }
        route_stats* stats = route.stats ? route.stats->per_worker[index_].get() : nullptr;
        if (route.active.fetch_add(1, std::memory_order_relaxed) >= route.config.max_connections) {
            route.active.fetch_sub(1, std::memory_order_relaxed);
            if (stats != nullptr)
                stats->refused_total.add();
            spdlog::warn("route={} refused a connection: max-connections ({}) reached",
                         route.config.name, route.config.max_connections);
            sys::set_reset_on_close(client.native_handle());
            client.close(ec);
            continue;
        }
        session::launch(std::move(client), route, sessions_, stats, it->inherited);
    }
    listeners_.erase(it);
}

} // namespace nodelayd
