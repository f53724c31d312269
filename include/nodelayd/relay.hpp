#pragma once
// Splices two connected sockets: one pump per direction, each reading into its own bounded
// queue and handing everything queued to the kernel in one gathered write.

#include "nodelayd/policy.hpp"
#include "nodelayd/stats.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <string_view>

namespace nodelayd {

/// Why a session ended.
enum class close_reason {
    /// Both directions reached EOF and were half-closed in turn.
    completed,
    /// The client reset the connection (or its socket failed); the upstream got a reset.
    client_reset,
    /// The upstream reset the connection (or its socket failed); the client got a reset.
    upstream_reset,
    /// No byte moved for the route's idle timeout.
    idle_timeout,
    /// The daemon's shutdown deadline passed.
    shutdown,
    /// No upstream server accepted the connection.
    connect_failed,
    /// accept-proxy: the client sent no valid PROXY protocol header in time; it got a reset.
    proxy_header,
};

/// Short name for logs.
std::string_view to_string(close_reason reason);

/// What the relay needs from the route.
struct relay_settings {
    /// Policy for the client socket.
    side_policy client;
    /// Policy for the upstream socket.
    side_policy upstream;
    /// Bytes queued per direction before reading from the source pauses.
    std::size_t buffer_size = std::size_t{64} * 1024;
    /// Close the session after this long with no bytes moving.
    std::chrono::milliseconds idle_timeout{600'000};
};

/// Byte counts and outcome of one relay.
struct relay_outcome {
    /// Bytes read from the client and written to the upstream.
    std::uint64_t client_to_upstream = 0;
    /// Bytes read from the upstream and written to the client.
    std::uint64_t upstream_to_client = 0;
    /// Why it ended.
    close_reason reason = close_reason::completed;
    /// Suspected Nagle/delayed-ACK stalls of the client (when measured).
    std::uint64_t client_stalls = 0;
    /// Suspected Nagle/delayed-ACK stalls of the upstream server (when measured).
    std::uint64_t upstream_stalls = 0;
};

/// Shared between a running relay and whoever may stop it (idle watchdog, shutdown).
class relay_control {
public:
    /// Binds to the two sockets the relay runs on.
    relay_control(boost::asio::ip::tcp::socket& client, boost::asio::ip::tcp::socket& upstream);
    /// Ends the relay with `reason`: the first call wins, pending waits are cancelled.
    void abort(close_reason reason);
    /// Whether abort() was called.
    [[nodiscard]] bool aborted() const { return aborted_; }
    /// The reason given to the first abort().
    [[nodiscard]] close_reason reason() const { return reason_; }
    /// Records that bytes moved now (for the idle timeout).
    void touch() { last_activity_ = std::chrono::steady_clock::now(); }
    /// When bytes last moved.
    [[nodiscard]] std::chrono::steady_clock::time_point last_activity() const {
        return last_activity_;
    }

private:
    boost::asio::ip::tcp::socket& client_;
    boost::asio::ip::tcp::socket& upstream_;
    bool aborted_ = false;
    close_reason reason_ = close_reason::completed;
    std::chrono::steady_clock::time_point last_activity_ = std::chrono::steady_clock::now();
};

/// Relays until both directions finish or `control` aborts. Propagates half-close as
/// shutdown(SHUT_WR); leaves the closing (and reset-on-close) of the sockets to the caller,
/// guided by the outcome's reason. With `stats`, records bytes, writes, added latency and
/// peer stalls there (the calling thread's own copy).
boost::asio::awaitable<relay_outcome> relay(boost::asio::ip::tcp::socket& client,
                                            boost::asio::ip::tcp::socket& upstream,
                                            const relay_settings& settings, relay_control& control,
                                            route_stats* stats);

} // namespace nodelayd
