#include "nodelayd/worker.hpp"

#include "nodelayd/asio_support.hpp"
#include "nodelayd/edge_wait.hpp"
#include "nodelayd/event_loop.hpp"
#include "nodelayd/log_sink.hpp"
#include "nodelayd/logging.hpp"
#include "nodelayd/session.hpp"
#include "nodelayd/socket_ops.hpp"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
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
        // The staged acceptor hands its descriptor over to a stream socket (see listener).
        // Nothing here fails short of a broken descriptor; such a listener is dropped, logged.
        const auto fail = [&](const std::error_code& ec, const char* what) {
            spdlog::error("route={} listener: {}: {}", staged.route->config.name, what,
                          ec.message());
        };
        boost::system::error_code ec;
        const auto protocol = staged.acceptor.local_endpoint(ec).protocol();
        if (ec) {
            fail(ec, "getsockname");
            continue;
        }
        const int fd = staged.acceptor.release(ec);
        if (ec) {
            fail(ec, "release");
            continue;
        }
        if (const auto error = sys::set_nonblocking(fd)) {
            ::close(fd);
            fail(error, "FIONBIO");
            continue;
        }
        tcp_socket socket(ctx_);
        // Plain assign: a socket passed by the service manager is shared by every worker
        // (dup), so Asio must take it out of this worker's epoll set before closing it.
        socket.assign(protocol, fd, ec);
        if (ec) {
            ::close(fd);
            fail(ec, "register");
            continue;
        }
        auto it = listeners_.insert(listeners_.end(), listener{std::move(socket),
                                                               staged.route,
                                                               staged.inherited,
                                                               asio::steady_timer(ctx_),
                                                               this,
                                                               {},
                                                               0,
                                                               {}});
        it->self = it;
        // A socket's first edge wait ends at once: whatever is queued is accepted then.
        wait_for_connections(*it);
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
                l.socket.close(ignored);
                l.backoff.cancel();
            }
    });
}

void worker::stop_accepting() {
    asio::post(ctx_, [this] {
        for (auto& l : listeners_) {
            boost::system::error_code ignored;
            l.socket.close(ignored);
            l.backoff.cancel();
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

void worker::wait_for_connections(listener& l) {
    async_edge_wait(l.socket, tcp_socket::wait_read, &worker::on_listener_ready, &l, 0);
}

void worker::on_listener_ready(void* self, std::uint8_t /*tag*/, bool /*aborted*/) {
    resume_accepting(*static_cast<listener*>(self));
}

void worker::resume_accepting(listener& l) {
    if (!l.owner->remove_if_closed(l))
        l.owner->accept_next(l);
}

bool worker::remove_if_closed(listener& l) {
    if (l.socket.is_open())
        return false;
    listeners_.erase(l.self);
    return true;
}

// Accepts the next connection. One per turn of the event loop, so that no more than two
// sessions' set-ups wait at once, as with Asio's async_accept: accepting 32 at a time had
// 32 set-ups (coroutine frames, connect timers) alive at once, and the heap they left behind
// cost 120 bytes per idle connection (bench idle-memory: 1.10 KiB instead of 0.99), for no
// syscall saved. Once the kernel has none queued, an edge wait follows.
void worker::accept_next(listener& l) {
    for (;;) {
        auto accepted = sys::accept_connection(l.socket.native_handle());
        if (accepted.would_block) {
            wait_for_connections(l);
            return;
        }
        if (!accepted.error) {
            // Posted ahead of the session's set-up, so the next accept runs before it: out of
            // descriptors, that accept fails with EMFILE and pauses, leaving connections in
            // the backlog. After the set-up, it would always find the descriptor a failed
            // upstream socket() just freed, and accept and drop each connection instead.
            asio::post(ctx_, [&l] { resume_accepting(l); });
            serve(l, accepted);
            return;
        }
        // Read after every accept: a reload may have handed the listener to a new route.
        const route_runtime& route = *l.route;
        if (!out_of_descriptors({accepted.error.value(), boost::system::system_category()})) {
            // ECONNABORTED and the like: that connection is gone, the next may be fine.
            spdlog::warn("route={} accept: {}", route.config.name, accepted.error.message());
            continue;
        }
        // Retrying at once would spin: the pending connection stays in the backlog until a
        // descriptor frees up. Warned about at most every 10 s: under pressure an accept
        // succeeds between pauses now and then, so a warning per episode would still come
        // every 100 ms.
        const auto now = std::chrono::steady_clock::now();
        if (now >= l.next_warning) {
            spdlog::warn("route={} accept: {}; pausing 100ms ({} more pause(s) since the last "
                         "such warning; one per 10s at most)",
                         route.config.name, accepted.error.message(), std::exchange(l.pauses, 0));
            l.next_warning = now + std::chrono::seconds(10);
        } else {
            ++l.pauses;
        }
        l.backoff.expires_after(std::chrono::milliseconds(100));
        // No edge comes for connections already queued: after the pause, accept again.
        l.backoff.async_wait(
            [&l](const boost::system::error_code& /*ec*/) { resume_accepting(l); });
        return;
    }
}

void worker::serve(listener& l, sys::accept_result& accepted) {
    route_runtime& route = *l.route;
    route_stats* stats = route.stats ? route.stats->per_worker[index_].get() : nullptr;
    if (route.active.fetch_add(1, std::memory_order_relaxed) >= route.config.max_connections) {
        route.active.fetch_sub(1, std::memory_order_relaxed);
        if (stats != nullptr)
            stats->refused_total.add();
        spdlog::warn("route={} refused a connection: max-connections ({}) reached",
                     route.config.name, route.config.max_connections);
        sys::set_reset_on_close(accepted.fd);
        ::close(accepted.fd);
        return;
    }
    tcp::endpoint peer;
    const auto size = std::min<std::size_t>(accepted.peer_length, peer.capacity());
    std::memcpy(peer.data(), &accepted.peer, size);
    peer.resize(size);
    tcp_socket client(ctx_);
    boost::system::error_code ec;
    adopt_socket(client, peer.protocol(), accepted.fd, false, ec);
    if (ec) {
        route.active.fetch_sub(1, std::memory_order_relaxed);
        spdlog::warn("route={} accept: registering the connection: {}", route.config.name,
                     ec.message());
        return;
    }
    session::launch(std::move(client), peer, route, sessions_, stats, l.inherited);
}

} // namespace nodelayd
