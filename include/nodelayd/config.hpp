#pragma once
// The daemon's configuration: what routes exist and how each behaves. Built from layers
// (built-in defaults < config file globals < route section < command line), validated as a
// whole, so a bad value is reported before any socket is opened.

#include "nodelayd/endpoint.hpp"
#include "nodelayd/policy.hpp"
#include "nodelayd/proxy_protocol.hpp"
#include "nodelayd/session_log.hpp"

#include <chrono>
#include <cstddef>
#include <istream>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace nodelayd {

/// A configuration problem; what() names the file, route and key involved.
class config_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// One listener and the upstream servers it relays to.
struct route_config {
    /// Route name, used in logs ("default" for the command-line route).
    std::string name;
    /// Address the route listens on.
    host_port listen;
    /// Upstream servers, tried round-robin with failover.
    std::vector<host_port> upstreams;
    /// Policy for the accepted (client) sockets.
    side_policy client;
    /// Policy for the sockets to upstream servers.
    side_policy upstream;
    /// How long one connect attempt to one upstream server may take.
    std::chrono::milliseconds connect_timeout{5'000};
    /// A session with no bytes moving either way for this long is closed.
    std::chrono::milliseconds idle_timeout{600'000};
    /// A session with one direction closed (FIN relayed) and no bytes moving for this long is
    /// closed: a peer that half-closed and vanished must not pin a session for idle_timeout.
    std::chrono::milliseconds half_closed_timeout{60'000};
    /// Sessions open at once on this route; accepted connections past it are refused.
    std::size_t max_connections = 10'000;
    /// Bytes buffered per direction before the relay stops reading the source.
    std::size_t buffer_size = std::size_t{64} * 1024;
    /// Bulk flows move with splice(2), kernel-side, while they fill the buffer.
    bool splice = true;
    /// Capacity asked of each splice pipe (F_SETPIPE_SZ): the bytes one splice(2) moves.
    std::size_t pipe_size = std::size_t{1} << 20;
    /// PROXY protocol header sent to the upstream before any relayed byte.
    proxy_version send_proxy = proxy_version::off;
    /// Clients must start with a PROXY protocol header (from a trusted proxy in front), whose
    /// addresses then stand for the client's.
    bool accept_proxy = false;
    /// Which closed sessions get a log line.
    session_log log_sessions = session_log::on;
};

/// The whole daemon configuration.
struct daemon_config {
    /// Routes, in the order they were defined.
    std::vector<route_config> routes;
    /// Worker threads, each with its own io_context and SO_REUSEPORT listeners.
    std::size_t threads = 1;
    /// spdlog level name: trace, debug, info, warn, error, critical, off.
    std::string log_level = "info";
    /// Stats endpoint on TCP; unset when it is off or on a Unix socket.
    std::optional<host_port> stats = host_port{"127.0.0.1", 9900};
    /// Stats endpoint on a Unix socket (a path), when given instead of an address.
    std::string stats_path;
    /// On SIGTERM, how long open sessions may take to finish before they are closed.
    std::chrono::milliseconds shutdown_timeout{30'000};
    /// How long a worker keeps polling for events after its last one before it sleeps
    /// (0: sleep at once).
    std::chrono::microseconds busy_poll{50};
};

/// Key/value pairs of one layer, in the order written; a key may repeat (upstream).
using settings = std::vector<std::pair<std::string, std::string>>;

/// A config file as read, before interpretation.
struct config_file {
    /// Path it was read from, for messages.
    std::string path;
    /// Keys outside any section.
    settings globals;
    /// [route.NAME] sections, in file order.
    std::vector<std::pair<std::string, settings>> routes;
};

/// Parses INI-style config text (Boost.Program_options syntax); `path` names it in messages.
/// Throws config_error. Pure, so the config fuzzer (tests/fuzz/) drives it without files.
config_file parse_config(std::istream& in, const std::string& path);

/// Reads an INI-style config file: parse_config() on the file's text. Throws config_error.
config_file read_config_file(const std::string& path);

/// Combines defaults, an optional file and command-line settings into a validated config.
/// Command-line `listen`/`upstream` define a route named "default"; other command-line keys
/// override the same key everywhere. Throws config_error naming the key and the problem.
daemon_config build_config(const std::optional<config_file>& file, const settings& command_line,
                           std::size_t default_threads);

/// Keys valid inside a route section (and, but for listen/upstream, as global defaults).
const std::vector<std::string>& route_keys();

/// Keys valid only outside route sections.
const std::vector<std::string>& global_keys();

} // namespace nodelayd
