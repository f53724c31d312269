// nodelayd: a TCP proxy that never adds Nagle/delayed-ACK stalls.

#include "nodelayd/cli.hpp"
#include "nodelayd/config.hpp"
#include "nodelayd/logging.hpp"
#include "nodelayd/route_runtime.hpp"
#include "nodelayd/server.hpp"
#include "nodelayd/version.hpp"

#include <spdlog/spdlog.h>

#include <sys/resource.h>

#include <csignal>
#include <iostream>
#include <thread>

namespace {

// Every session needs two descriptors; the soft limit (often 1024) would cap a route far
// below max-connections, so use what the hard limit allows, as HAProxy does.
void raise_descriptor_limit() {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= lim.rlim_max)
        return;
    const rlim_t wanted = lim.rlim_max;
    lim.rlim_cur = wanted;
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0)
        spdlog::warn("could not raise the descriptor limit to {}", wanted);
}

} // namespace

// Reads the configuration the command line names: the file (if any) under the command-line
// settings. Used at startup and again on every reload.
nodelayd::daemon_config load_config(const nodelayd::cli_request& req) {
    std::optional<nodelayd::config_file> file;
    if (req.config_path)
        file = nodelayd::read_config_file(*req.config_path);
    return nodelayd::build_config(file, req.values,
                                  std::max(1u, std::thread::hardware_concurrency()));
}

int main(int argc, char** argv) {
    using namespace nodelayd;
    // splice(2) into a socket whose peer is gone raises SIGPIPE, and unlike send() it has no
    // MSG_NOSIGNAL: a dead peer must end its session with EPIPE, not the daemon.
    std::signal(SIGPIPE, SIG_IGN);
    cli_request req;
    daemon_config config;
    std::vector<std::unique_ptr<route_runtime>> routes;
    try {
        req = parse_command_line(argc, argv);
        if (req.help) {
            std::cout << req.usage;
            return 0;
        }
        if (req.version) {
            std::cout << "nodelayd " << version << "\n";
            return 0;
        }
        config = load_config(req);
        routes = resolve_routes(config);
        if (req.check) {
            std::cout << "nodelayd: configuration OK: " << config.routes.size() << " route(s)\n";
            return 0;
        }
    } catch (const config_error& e) {
        std::cerr << "nodelayd: error: " << e.what() << "\n";
        return 1;
    }

    setup_logging(config.log_level);
    raise_descriptor_limit();
    try {
        server srv(config, std::move(routes), [&req] { return load_config(req); });
        spdlog::info("nodelayd {} starting with {} worker thread(s)", version, config.threads);
        if (const auto stats = srv.stats_address(); !stats.empty())
            spdlog::info("stats endpoint at {}{}", stats.starts_with("/") ? "unix:" : "http://",
                         stats);
        for (const auto& route : srv.routes()) {
            std::string ups;
            for (const auto& u : route->upstreams)
                ups += (ups.empty() ? "" : ",") + u.name;
            spdlog::info("route={} listening on {} -> {}", route->config.name,
                         to_string(route->listen), ups);
        }
        srv.run();
    } catch (const std::exception& e) {
        spdlog::critical("{}", e.what());
        return 1;
    }
    return 0;
}
