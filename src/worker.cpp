#include "nodelayd/worker.hpp"
#include "nodelayd/asio_support.hpp"

#include "nodelayd/session.hpp"
#include "nodelayd/socket_ops.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace nodelayd {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {} // namespace

worker::worker(std::size_t index, bool measure) : index_(index), measure_(measure) {}

worker::~worker() {
    if (thread_.joinable()) {
        stop_accepting();
        abort_sessions();
        thread_.join();
    }
}

tcp::endpoint worker::bind(route_runtime& route) {
    const std::string where = "route '" + route.config.name + "': ";
    tcp::acceptor acceptor(ctx_);
    boost::system::error_code ec;
    acceptor.open(route.listen.protocol(), ec);
    throw_if(ec, where + "socket");
    acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    throw_if(ec, where + "setsockopt SO_REUSEADDR");
    throw_if(sys::set_reuse_port(acceptor.native_handle()), where + "setsockopt SO_REUSEPORT");
    acceptor.bind(route.listen, ec);
    throw_if(ec, where + "bind " + to_string(route.listen));
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
    throw_if(ec, where + "listen " + to_string(route.listen));
    auto bound = acceptor.local_endpoint(ec);
    throw_if(ec, where + "getsockname");
    listeners_.emplace_back(std::move(acceptor), &route);
    while (stats_.size() <= route.index)
        stats_.push_back(std::make_unique<route_stats>());
    return bound;
}

void worker::start(std::function<void()> on_exit) {
    for (auto& [acceptor, route] : listeners_) {
        asio::co_spawn(ctx_, accept_loop(acceptor, *route),
                       log_failure{"route=" + route->config.name + " accept loop"});
    }
    thread_ = std::thread([this, on_exit = std::move(on_exit)] {
        try {
            ctx_.run();
        } catch (const std::exception& e) {
            spdlog::critical("worker {} stopped: {}", index_, e.what());
        }
        on_exit();
    });
}

void worker::stop_accepting() {
    asio::post(ctx_, [this] {
        for (auto& [acceptor, route] : listeners_) {
            boost::system::error_code ignored;
            acceptor.close(ignored);
        }
    });
}

void worker::abort_sessions() {
    asio::post(ctx_, [this] { sessions_.abort_all(close_reason::shutdown); });
}

void worker::join() {
    if (thread_.joinable())
        thread_.join();
}

asio::awaitable<void> worker::accept_loop(tcp::acceptor& acceptor, route_runtime& route) {
    constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
    asio::steady_timer backoff(ctx_);
    while (acceptor.is_open()) {
        auto [ec, client] = co_await acceptor.async_accept(use_tuple);
        if (ec == asio::error::operation_aborted || !acceptor.is_open())
            break;
        if (ec) {
            if (out_of_descriptors(ec)) {
                // Retrying at once would spin: the pending connection stays in the backlog
                // until a descriptor frees up.
                spdlog::warn("route={} accept: {}; pausing 100ms", route.config.name, ec.message());
                backoff.expires_after(std::chrono::milliseconds(100));
                co_await backoff.async_wait(use_tuple);
            } else {
                spdlog::warn("route={} accept: {}", route.config.name, ec.message());
            }
            continue;
        }
        if (route.active.fetch_add(1, std::memory_order_relaxed) >= route.config.max_connections) {
            route.active.fetch_sub(1, std::memory_order_relaxed);
            stats_[route.index]->refused_total.add();
            spdlog::warn("route={} refused a connection: max-connections ({}) reached",
                         route.config.name, route.config.max_connections);
            sys::set_reset_on_close(client.native_handle());
            client.close(ec);
            continue;
        }
        asio::co_spawn(ctx_,
                       run_session(std::move(client), route, sessions_,
                                   measure_ ? stats_[route.index].get() : nullptr),
                       log_failure{"route=" + route.config.name + " session"});
    }
}

} // namespace nodelayd
