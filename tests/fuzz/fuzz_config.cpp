// libFuzzer target: config file text through parse_config() and build_config(), as
// `nodelayd --config FILE` reads it at startup and on every reload. A rejection must be a
// config_error (its message names the file, route and key); any other exception escaping, a
// sanitizer report, or an accepted config that breaks a guarantee validation gives is a
// finding.

#include "nodelayd/config.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <string>

namespace {

using namespace nodelayd;

void require(bool ok, const char* guarantee) {
    if (ok)
        return;
    std::fprintf(stderr, "fuzz_config: accepted a config that breaks: %s\n", guarantee);
    std::abort();
}

// Timers add durations to now() in nanoseconds: parse_duration keeps them far inside that.
bool sane(std::chrono::milliseconds d) {
    return d.count() > 0 && d.count() <= std::numeric_limits<std::int64_t>::max() / 2'000'000;
}

void check(const daemon_config& cfg) {
    require(!cfg.routes.empty(), "at least one route");
    require(cfg.threads >= 1 && cfg.threads <= 256, "threads in 1..256");
    require(sane(cfg.shutdown_timeout), "shutdown-timeout positive and bounded");
    require(!(cfg.stats && !cfg.stats_path.empty()), "stats on TCP or a path, not both");
    require(cfg.stats_path.empty() || cfg.stats_path.front() == '/', "stats path absolute");
    static const std::set<std::string> levels{"trace", "debug",    "info", "warn",
                                              "error", "critical", "off"};
    require(levels.contains(cfg.log_level), "log-level is a level");
    std::set<std::pair<std::string, std::uint16_t>> fixed_listens;
    for (const auto& r : cfg.routes) {
        require(!r.name.empty(), "route named");
        require(!r.listen.host.empty(), "every route listens");
        require(r.listen.port == 0 || fixed_listens.emplace(r.listen.host, r.listen.port).second,
                "no two routes on one address");
        require(!r.upstreams.empty(), "every route has upstreams");
        for (const auto& u : r.upstreams)
            require(!u.host.empty() && u.port != 0, "upstreams have a host and a port");
        require(r.buffer_size >= 4096 && r.buffer_size <= (std::size_t{256} << 20),
                "buffer-size in 4k..256m");
        require(r.max_connections >= 1 && r.max_connections <= 10'000'000,
                "max-connections in 1..10m");
        require(sane(r.connect_timeout) && sane(r.idle_timeout) && sane(r.half_closed_timeout),
                "timeouts positive and bounded");
    }
}

void build_and_check(const config_file& file, const settings& command_line) {
    try {
        check(build_config(file, command_line, 4));
    } catch (const config_error&) {
        // Rejected with a message: what a bad file must get.
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
    std::optional<config_file> file;
    try {
        file = parse_config(in, "fuzz.conf");
    } catch (const config_error&) {
        return 0;
    }
    require(file->path == "fuzz.conf", "the path is kept for messages");
    build_and_check(*file, {});
    // With a command-line route and overrides on top: the other layers build_config merges.
    build_and_check(*file, {{"listen", "127.0.0.1:0"},
                            {"upstream", "127.0.0.1:1"},
                            {"buffer-size", "16k"},
                            {"threads", "2"}});
    return 0;
}
