#pragma once
// One client connection from accept to close: a short coroutine sets it up (PROXY header,
// upstream connect), then the relay runs on callbacks, and the session closes the sockets
// (propagating resets), records and logs one line when the relay is over.

#include "nodelayd/block_pool.hpp"
#include "nodelayd/relay.hpp"
#include "nodelayd/route_runtime.hpp"
#include "nodelayd/socket_ops.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/intrusive/list_hook.hpp>

#include <chrono>

namespace nodelayd {

class session_registry;

/// A live session; it owns itself and is deleted when it closes.
// The registry's hook unlinks itself when the session is destroyed: no pointer back to the
// registry in every session.
using session_hook =
    boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>>;

class session final : public relay, public session_hook {
public:
    /// Starts a session for an accepted `client` whose address is `peer` (already counted in
    /// route.active; the session uncounts itself when it ends) and registers it with
    /// `registry`. `stats` is the worker's own copy for this route, or null when stats are
    /// off; `inherited`, what the client socket got from its listener (options it need not
    /// set again).
    static void launch(tcp_socket client, const boost::asio::ip::tcp::endpoint& peer,
                       route_runtime& route, session_registry& registry, route_stats* stats,
                       sys::inherited_options inherited = {});
    /// Aborts the session when it has idled past its route's idle timeout (or the
    /// half-closed timeout, when one direction has finished) by `now`.
    void expire_if_idle(std::chrono::steady_clock::time_point now);
    /// The shorter of the timeouts expire_if_idle() enforces (for the sweep's period).
    [[nodiscard]] std::chrono::milliseconds shortest_timeout() const;

    /// Sessions come from the thread's block pools: no malloc header on what every live
    /// connection holds.
    static void* operator new(std::size_t size) { return pool_allocate(size); }
    /// Returns a session's storage to the pool.
    static void operator delete(void* p, std::size_t size) noexcept { pool_deallocate(p, size); }

private:
    [[nodiscard]] const std::string& server_name() const;
    session(tcp_socket client, route_runtime& route, session_registry& registry,
            route_stats* stats);
    ~session();
    // Returns whether the relay started; if so, the relay owns the session's end.
    boost::asio::awaitable<bool> set_up(sys::inherited_options inherited);
    void finished() override;
    void close(close_reason reason);

    route_runtime& route_;
    std::chrono::steady_clock::time_point started_at_ = std::chrono::steady_clock::now();
    boost::asio::ip::tcp::endpoint client_address_;
    std::uint16_t server_ = no_server; // index into route_.upstreams
    static constexpr std::uint16_t no_server = 0xffff;
};

} // namespace nodelayd
