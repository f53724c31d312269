#pragma once
// Splices two connected sockets: one pump per direction, each reading into its own bounded
// queue and handing everything queued to the kernel in one gathered write.

#include "nodelayd/asio_support.hpp"
#include "nodelayd/policy.hpp"
#include "nodelayd/pump.hpp"
#include "nodelayd/stats.hpp"

#include <array>
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
    /// One direction had finished and no byte moved for the route's half-closed timeout.
    half_closed_timeout,
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
    /// Move bulk flows with splice(2) (no copy through user space).
    bool splice = true;
    /// Capacity asked of each splice pipe.
    std::size_t pipe_size = std::size_t{1} << 20;
    /// Close the session after this long with no bytes moving.
    std::chrono::milliseconds idle_timeout{600'000};
    /// Close a session with one direction finished after this long with no bytes moving.
    std::chrono::milliseconds half_closed_timeout{60'000};
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

/// The client and upstream sockets of one session and a pump per direction between them,
/// driven by readiness callbacks: no coroutine frame and no timer, so an idle relay holds
/// its two sockets, two pending waits and no buffer. Owns both sockets; the derived class
/// (the session) connects the upstream, calls start(), and is told when the relay is over.
class relay {
public:
    relay(const relay&) = delete;
    relay& operator=(const relay&) = delete;

    /// The client's socket.
    tcp_socket& client() { return client_; }
    /// The upstream socket: closed until the session connects it.
    tcp_socket& upstream() { return upstream_; }
    /// Starts relaying (both sockets connected); finished() follows once both directions
    /// are done or abort() was called. `client_stamped`: the client socket has receive
    /// timestamps on already (inherited from its listener); `upstream_sent`: data (a PROXY
    /// header) went to the upstream before the relay started; `upstream_reset`: the upstream
    /// accepted and reset the connection before the relay started (what it sent before is
    /// still relayed, then the client is reset).
    void start(bool client_stamped = false, bool upstream_sent = false,
               bool upstream_reset = false);
    /// Ends the relay with `reason`: the first call wins and cancels every pending wait on
    /// both sockets. Safe at any time, also before start().
    void abort(close_reason reason);
    /// Whether abort() was called.
    [[nodiscard]] bool aborted() const { return aborted_; }
    /// The reason given to the first abort().
    [[nodiscard]] close_reason reason() const { return reason_; }
    /// When bytes last moved (or the session began).
    [[nodiscard]] std::chrono::steady_clock::time_point last_activity() const {
        return last_activity_;
    }
    /// Whether exactly one direction has finished (its source sent FIN).
    [[nodiscard]] bool half_closed() const { return done_[0] != done_[1]; }
    /// Bytes and stalls so far, and why it ended (completed unless aborted).
    [[nodiscard]] relay_outcome outcome() const;
    /// Whether start() was called.
    [[nodiscard]] bool started() const { return started_; }
    /// Where the relay records (the worker's own copy), or null when stats are off.
    [[nodiscard]] route_stats* stats() const { return pumps_[0].stats(); }

protected:
    /// Takes the accepted client socket. With `stats`, reads take kernel timestamps and both
    /// pumps record there (the worker's own copy).
    relay(tcp_socket client, const relay_settings& settings, route_stats* stats);
    ~relay() = default;
    /// Called once, from a completion handler, when the relay is over; nothing of the relay
    /// runs after it returns, so it may delete the object.
    virtual void finished() = 0;

private:
    // One bit per wait or posted step that may be pending; the relay is over when none is.
    enum wait_bit : std::uint8_t {
        client_readable = 1,
        client_writable = 2,
        upstream_readable = 4,
        upstream_writable = 8,
        step_c2u = 16,
        step_u2c = 32,
    };
    struct on_ready;
    static void on_edge(void* self, std::uint8_t bit, bool aborted);
    void ready(std::uint8_t bit);
    void drive(std::size_t dir);
    void wait(tcp_socket& socket, tcp_socket::wait_type what, std::uint8_t bit);

    tcp_socket client_;
    tcp_socket upstream_;
    socket_state client_state_;
    socket_state upstream_state_;
    pump pumps_[2]; // indexed by direction
    std::chrono::steady_clock::time_point last_activity_ = std::chrono::steady_clock::now();
    std::uint8_t pending_ = 0;
    std::array<bool, 2> done_{};
    bool aborted_ = false;
    bool started_ = false;
    close_reason reason_ = close_reason::completed;
};

} // namespace nodelayd
