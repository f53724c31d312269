#include "nodelayd/server.hpp"

#include "nodelayd/service_manager.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <system_error>

namespace nodelayd {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

// Our listeners use SO_REUSEPORT, which would let a second daemon (or a stale one) bind the
// same address and take a share of its connections. A bind without it fails while anyone
// listens there, so "address in use" is reported as it would be without SO_REUSEPORT.
void ensure_unused(const route_runtime& route) {
    if (route.listen.port() == 0)
        return;
    asio::io_context ctx;
    tcp::acceptor probe(ctx);
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

bool local_endpoint_of(int fd, tcp::endpoint& out) {
    tcp::endpoint ep;
    socklen_t len = sizeof(sockaddr_storage);
    if (::getsockname(fd, ep.data(), &len) != 0)
        return false;
    ep.resize(len);
    out = ep;
    return true;
}

} // namespace

server::server(const daemon_config& config, std::vector<std::unique_ptr<route_runtime>> routes,
               config_source reload_source, bool handle_signals)
    : config_(config), reload_source_(std::move(reload_source)), routes_(std::move(routes)),
      deadline_(control_), ticker_(control_), signals_(control_), heartbeats_(config.threads),
      last_heartbeats_(config.threads, 0), handle_signals_(handle_signals) {
    if (handle_signals_) {
        // Blocked in every thread (the workers, created below, inherit the mask) and read
        // from a signalfd by the control loop, as systemd does: no handler ever interrupts a
        // thread, and a signal is never left waiting for a thread that blocks it. (With
        // asynchronous handlers, ThreadSanitizer deferred a SIGTERM past a test's 5 s.) Set
        // up before anything is bound or logged: a SIGTERM that arrives as soon as the daemon
        // looks ready must still mean a graceful exit, not the default action.
        const sigset_t handled = sys::handled_signals();
        ::pthread_sigmask(SIG_BLOCK, &handled, nullptr);
        const int fd = ::signalfd(-1, &handled, SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd < 0)
            throw std::system_error(errno, std::generic_category(), "signalfd");
        signals_.assign(fd);
        watch_signals();
    }
    for (std::size_t i = 0; i < config_.threads; ++i)
        workers_.push_back(std::make_unique<worker>(i, config_.busy_poll));
    initial_.resize(workers_.size());
    adopt_passed_sockets();
    for (auto& route : routes_) {
        route->stats = stats_for(route->config.name);
        auto staged = listen_everywhere(*route);
        for (std::size_t i = 0; i < staged.size(); ++i)
            for (auto& l : staged[i])
                initial_[i].push_back(std::move(l));
    }
    open_stats();
}

server::~server() = default;

// Sockets passed by systemd belong to the route of the same name (FileDescriptorName=), or
// else to the route listening on the same address.
void server::adopt_passed_sockets() {
    std::vector<std::string> rejected;
    auto passed = service::take_passed_listeners(rejected);
    for (const auto& r : rejected)
        spdlog::warn("ignoring a socket passed by the service manager: {}", r);
    for (auto& p : passed) {
        tcp::endpoint local;
        const bool has_local = local_endpoint_of(p.fd, local);
        route_runtime* match = nullptr;
        for (auto& route : routes_)
            if (route->config.name == p.name && !passed_.contains(route->index))
                match = route.get();
        if (match == nullptr && has_local)
            for (auto& route : routes_)
                if (route->listen == local && !passed_.contains(route->index))
                    match = route.get();
        if (match == nullptr) {
            spdlog::warn("ignoring socket '{}' ({}) passed by the service manager: no route "
                         "has that name or listen address",
                         p.name, has_local ? to_string(local) : std::string("?"));
            ::close(p.fd);
            continue;
        }
        match->listen = local;
        passed_[match->index] = p.fd;
        spdlog::info("route={} uses the socket passed by the service manager ('{}', {})",
                     match->config.name, p.name, to_string(local));
    }
}

// One listener per worker: SO_REUSEPORT binds, or the passed socket shared by every worker.
std::vector<std::vector<worker::staged_listener>> server::listen_everywhere(route_runtime& route) {
    std::vector<std::vector<worker::staged_listener>> out(workers_.size());
    if (const auto it = passed_.find(route.index); it != passed_.end()) {
        const int fd = it->second;
        passed_.erase(it);
        out[0].push_back(workers_[0]->adopt(route, fd));
        for (std::size_t i = 1; i < workers_.size(); ++i)
            out[i].push_back(workers_[i]->adopt(route, ::dup(fd)));
        return out;
    }
    ensure_unused(route);
    // The first bind settles a port-0 request; the other workers share that port.
    out[0].push_back(workers_[0]->bind(route));
    route.listen = out[0].back().acceptor.local_endpoint();
    for (std::size_t i = 1; i < workers_.size(); ++i)
        out[i].push_back(workers_[i]->bind(route));
    return out;
}

std::shared_ptr<route_stats_set> server::stats_for(const std::string& route_name) {
    if (!config_.stats && config_.stats_path.empty())
        return nullptr;
    auto& set = stats_sets_[route_name];
    if (!set)
        set = std::make_shared<route_stats_set>(workers_.size());
    return set;
}

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
    tcp::resolver resolver(control_);
    boost::system::error_code ec;
    const auto results = resolver.resolve(config_.stats->host, std::to_string(config_.stats->port),
                                          tcp::resolver::passive, ec);
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
        // Sessions accepted under an earlier configuration of the route still count.
        r.connections_active = route->active.load(std::memory_order_relaxed);
        for (const auto& old : retired_)
            if (old->config.name == r.name)
                r.connections_active += old->active.load(std::memory_order_relaxed);
        if (route->stats)
            for (const auto& s : route->stats->per_worker)
                r.add(*s);
        out.routes.push_back(std::move(r));
    }
    return out;
}

std::string server::stats_address() const {
    return stats_ ? stats_->address() : std::string();
}

std::string server::status_text() const {
    std::size_t open = 0;
    for (const auto& route : routes_)
        open += route->active.load(std::memory_order_relaxed);
    for (const auto& route : retired_)
        open += route->active.load(std::memory_order_relaxed);
    std::string s = (shutting_down_ ? "shutting down: " : "") + std::to_string(routes_.size()) +
                    " route(s), " + std::to_string(open) + " open session(s)";
    if (!status_note_.empty())
        s += "; " + status_note_;
    return s;
}

void server::watch_signals() {
    auto on_signal = [this](const boost::system::error_code& ec, std::size_t n) {
        if (ec || finished_)
            return;
        // A signalfd read returns whole records; anything else is ignored.
        const auto sig = n == sizeof signal_info_ ? static_cast<int>(signal_info_.ssi_signo) : 0;
        if (sig == SIGHUP) {
            spdlog::info("received SIGHUP");
            apply_reload();
        } else if (sig == SIGINT || sig == SIGTERM) {
            spdlog::info("received {}", sig == SIGINT ? "SIGINT" : "SIGTERM");
            begin_shutdown();
        }
        watch_signals();
    };
    signals_.async_read_some(asio::buffer(&signal_info_, sizeof signal_info_), on_signal);
}

void server::stop() {
    asio::post(control_, [this] { begin_shutdown(); });
}

void server::reload() {
    asio::post(control_, [this] { apply_reload(); });
}

void server::begin_shutdown() {
    if (shutting_down_)
        return;
    shutting_down_ = true;
    service::notify("STOPPING=1\nSTATUS=" + status_text());
    spdlog::info("shutting down: no longer accepting; open sessions get {}ms to finish ({})",
                 config_.shutdown_timeout.count(), status_text());
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

// Listeners whose address is unchanged keep their socket (no connection is refused while
// reloading) and serve the new route from the next accept on; new addresses are bound
// before anything changes, so a failure leaves the running configuration untouched.
void server::apply_reload() {
    if (shutting_down_)
        return;
    service::notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(service::monotonic_usec()));
    spdlog::info("reloading the configuration");
    try {
        if (!reload_source_)
            throw config_error("no configuration to re-read");
        daemon_config next = reload_source_();
        auto fresh = resolve_routes(next);
        if (next.threads != config_.threads)
            spdlog::warn("reload: 'threads' changes need a restart; keeping {}", config_.threads);
        if (next.busy_poll != config_.busy_poll)
            spdlog::warn("reload: 'busy-poll' changes need a restart; keeping {}us",
                         config_.busy_poll.count());
        if (next.stats != config_.stats || next.stats_path != config_.stats_path)
            spdlog::warn("reload: 'stats' changes need a restart; keeping the endpoint");

        std::vector<route_runtime*> kept(fresh.size(), nullptr);
        std::vector<std::vector<std::vector<worker::staged_listener>>> staged(fresh.size());
        for (std::size_t i = 0; i < fresh.size(); ++i) {
            auto& r = *fresh[i];
            r.index = i;
            for (auto& old : routes_)
                if (old->listen == r.listen && r.listen.port() != 0 &&
                    std::find(kept.begin(), kept.end(), old.get()) == kept.end())
                    kept[i] = old.get();
            if (kept[i] == nullptr)
                staged[i] = listen_everywhere(r); // throws: staged sockets close, nothing changed
            else
                r.listen = kept[i]->listen;
        }
        // Commit: nothing below fails.
        std::size_t added = 0;
        for (std::size_t i = 0; i < fresh.size(); ++i) {
            fresh[i]->stats = stats_for(fresh[i]->config.name);
            for (std::size_t w = 0; w < workers_.size(); ++w) {
                if (kept[i] != nullptr)
                    workers_[w]->retarget(kept[i], fresh[i].get());
                else
                    workers_[w]->add(std::move(staged[i][w]));
            }
            added += kept[i] == nullptr ? 1 : 0;
        }
        std::size_t removed = 0;
        for (auto& old : routes_) {
            if (std::find(kept.begin(), kept.end(), old.get()) == kept.end()) {
                ++removed;
                for (auto& w : workers_)
                    w->stop_route(old.get());
            }
            retired_.push_back(std::move(old));
        }
        routes_ = std::move(fresh);
        config_.routes = next.routes;
        config_.shutdown_timeout = next.shutdown_timeout;
        config_.log_level = next.log_level;
        spdlog::set_level(spdlog::level::from_str(next.log_level));
        status_note_.clear();
        spdlog::info("reloaded: {} route(s): {} kept, {} added, {} removed", routes_.size(),
                     routes_.size() - added, added, removed);
        for (const auto& route : routes_)
            spdlog::info("route={} listening on {}", route->config.name, to_string(route->listen));
    } catch (const std::exception& e) {
        status_note_ = std::string("reload failed: ") + e.what();
        spdlog::error("reload failed; still serving the previous configuration: {}", e.what());
    }
    service::notify("READY=1\nSTATUS=" + status_text());
}

// Housekeeping: STATUS= updates, and WATCHDOG=1 only while every worker's loop turns (each
// tick posts a heartbeat to every worker; the next tick checks they all ran).
void server::tick() {
    bool alive = true;
    for (std::size_t i = 0; i < workers_.size(); ++i) {
        const auto beats = heartbeats_[i].load(std::memory_order_relaxed);
        if (beats == last_heartbeats_[i] && beats != 0 && !shutting_down_) {
            alive = false;
            spdlog::warn("worker {} did not run its event loop since the last check", i);
        }
        last_heartbeats_[i] = beats;
    }
    const auto watchdog = service::watchdog_interval();
    service::notify((watchdog && alive ? "WATCHDOG=1\n" : "") + std::string("STATUS=") +
                    status_text());
    for (std::size_t i = 0; i < workers_.size(); ++i)
        workers_[i]->post([this, i] { heartbeats_[i].fetch_add(1, std::memory_order_relaxed); });
    ticker_.expires_after(watchdog
                              ? std::chrono::duration_cast<std::chrono::milliseconds>(*watchdog / 2)
                              : std::chrono::milliseconds(5'000));
    ticker_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec && !finished_)
            tick();
    });
}

void server::run() {
    if (stats_)
        stats_->start();
    // Keeps control_ running until every worker has exited, however that happens.
    auto guard = asio::make_work_guard(control_);
    std::atomic<std::size_t> running{workers_.size()};
    for (std::size_t i = 0; i < workers_.size(); ++i) {
        workers_[i]->start(std::move(initial_[i]), [this, &running, &guard] {
            if (--running == 0)
                asio::post(control_, [this, &guard] {
                    finished_ = true;
                    boost::system::error_code ignored;
                    signals_.cancel(ignored);
                    deadline_.cancel();
                    ticker_.cancel();
                    if (stats_)
                        stats_->stop();
                    guard.reset();
                });
        });
    }
    initial_.clear();
    // Every listener is bound and listening, and every worker is accepting.
    service::notify("READY=1\nSTATUS=" + status_text());
    tick();
    control_.run();
    for (auto& w : workers_)
        w->join();
    spdlog::info("stopped");
}

} // namespace nodelayd
