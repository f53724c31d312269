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

namespace {

// Our listeners use SO_REUSEPORT, which would let a second daemon (or a stale one) bind the
// same address and take a share of its connections. A bind without it fails while anyone
// listens there, so "address in use" is reported as it would be without SO_REUSEPORT.
void ensure_unused(const route_runtime& route) {
    if (route.listen.port() == 0)
        return;
    asio::io_context ctx;
    asio::ip::tcp::acceptor probe(ctx);
    boost::system::error_code ec;
    probe.open(route.listen.protocol(), ec);
    if (!ec)
        probe.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec)
        probe.bind(route.listen, ec);
    if (ec)
        throw std::system_error(ec, "route '" + route.config.name + "': bind " +
                                        to_string(route.listen));
}

} // namespace

server::server(const daemon_config& config, std::vector<std::unique_ptr<route_runtime>> routes,
               bool handle_signals)
    : config_(config), routes_(std::move(routes)), deadline_(control_), signals_(control_) {
    if (handle_signals) {
        // Registered before anything is bound or logged: a SIGTERM that arrives as soon as
        // the daemon looks ready must still mean a graceful exit, not the default action.
        signals_.add(SIGINT);
        signals_.add(SIGTERM);
        signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
            if (ec)
                return;
            spdlog::info("received {}", sig == SIGINT ? "SIGINT" : "SIGTERM");
            begin_shutdown();
        });
    }
    const bool measure = config_.stats.has_value() || !config_.stats_path.empty();
    for (std::size_t i = 0; i < config_.threads; ++i)
        workers_.push_back(std::make_unique<worker>(i, measure));
    for (auto& route : routes_) {
        ensure_unused(*route);
        // The first bind settles a port-0 request; the other workers share that port.
        route->listen = workers_.front()->bind(*route);
        for (std::size_t i = 1; i < workers_.size(); ++i)
            workers_[i]->bind(*route);
    }
    open_stats();
}

server::~server() = default;

void server::open_stats() {
    auto snapshot_fn = [this] { return snapshot(); };
    // Healthy while the listeners accept: not once shutdown has begun.
    auto healthy_fn = [this] { return !shutting_down_; };
    if (!config_.stats_path.empty()) {
        stats_ =
            std::make_unique<stats_server>(control_, config_.stats_path, snapshot_fn, healthy_fn);
        return;
    }
    if (!config_.stats)
        return;
    asio::ip::tcp::resolver resolver(control_);
    boost::system::error_code ec;
    const auto results = resolver.resolve(config_.stats->host, std::to_string(config_.stats->port),
                                          asio::ip::tcp::resolver::passive, ec);
    if (ec || results.empty())
        throw std::system_error(ec, "stats: cannot resolve '" + config_.stats->host + "'");
    stats_ = std::make_unique<stats_server>(control_, results.begin()->endpoint(), snapshot_fn,
                                            healthy_fn);
}

stats_snapshot server::snapshot() const {
    stats_snapshot out;
    out.version = NODELAYD_VERSION;
    out.uptime_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    for (const auto& route : routes_) {
        route_snapshot r;
        r.name = route->config.name;
        r.connections_active = route->active.load(std::memory_order_relaxed);
        for (const auto& w : workers_)
            r.add(w->stats(route->index));
        out.routes.push_back(std::move(r));
    }
    return out;
}

std::string server::stats_address() const {
    return stats_ ? stats_->address() : std::string();
}

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

void server::run() {
    // Keeps control_ running until every worker has exited, however that happens.
    if (stats_)
        stats_->start();
    auto guard = asio::make_work_guard(control_);
    std::atomic<std::size_t> running{workers_.size()};
    for (auto& w : workers_) {
        w->start([this, &running, &guard] {
            if (--running == 0)
                asio::post(control_, [this, &guard] {
                    boost::system::error_code ignored;
                    signals_.cancel(ignored);
                    deadline_.cancel();
                    if (stats_)
                        stats_->stop();
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
