#include "nodelayd/server.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>

namespace nodelayd {

namespace asio = boost::asio;

server::server(const daemon_config& config, std::vector<std::unique_ptr<route_runtime>> routes)
    : config_(config), routes_(std::move(routes)), deadline_(control_), signals_(control_) {
    for (std::size_t i = 0; i < config_.threads; ++i)
        workers_.push_back(std::make_unique<worker>(i));
    for (auto& route : routes_) {
        // The first bind settles a port-0 request; the other workers share that port.
        route->listen = workers_.front()->bind(*route);
        for (std::size_t i = 1; i < workers_.size(); ++i)
            workers_[i]->bind(*route);
    }
}

server::~server() = default;

void server::stop() {
    asio::post(control_, [this] { begin_shutdown(); });
}

void server::begin_shutdown() {
    if (shutting_down_)
        return;
    shutting_down_ = true;
    std::size_t open = 0;
    for (const auto& route : routes_)
        open += route->active.load();
    spdlog::info("shutting down: no longer accepting; {} open session(s) get {}ms to finish", open,
                 config_.shutdown_timeout.count());
    for (auto& w : workers_)
        w->stop_accepting();
    deadline_.expires_after(config_.shutdown_timeout);
    deadline_.async_wait([this](const boost::system::error_code& ec) {
        if (ec)
            return;
        spdlog::warn("shutdown timeout reached: closing the remaining sessions");
        for (auto& w : workers_)
            w->abort_sessions();
    });
}

void server::run(bool handle_signals) {
    if (handle_signals) {
        signals_.add(SIGINT);
        signals_.add(SIGTERM);
        signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
            if (ec)
                return;
            spdlog::info("received {}", sig == SIGINT ? "SIGINT" : "SIGTERM");
            begin_shutdown();
        });
    }
    // Keeps control_ running until every worker has exited, however that happens.
    auto guard = asio::make_work_guard(control_);
    std::atomic<std::size_t> running{workers_.size()};
    for (auto& w : workers_) {
        w->start([this, &running, &guard] {
            if (--running == 0)
                asio::post(control_, [this, &guard] {
                    boost::system::error_code ignored;
                    signals_.cancel(ignored);
                    deadline_.cancel();
                    guard.reset();
                });
        });
    }
    control_.run();
    for (auto& w : workers_)
        w->join();
    spdlog::info("stopped");
}

} // namespace nodelayd
