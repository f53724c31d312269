#pragma once
// Connects a session to one of its route's upstream servers: round-robin start, failover to
// the next server on refusal or timeout, each attempt bounded by the connect timeout.

#include "nodelayd/relay.hpp"
#include "nodelayd/route_runtime.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace nodelayd {

/// The server a session's upstream socket is connected to.
struct upstream_connection {
    /// The server, or null when none could be reached.
    const upstream_server* server = nullptr;
    /// It accepted and has reset the connection already (a banner and RST, say): connected,
    /// since what it sent is there to relay, but the reset has been reported once and read.
    bool reset = false;
};

/// Connects `socket` to the first upstream server of `route` that accepts, starting at the
/// route's round-robin cursor. No server when every server failed or `control` was
/// aborted. Failed attempts are logged, and with `stats` counted (failures) and timed
/// (successes).
boost::asio::awaitable<upstream_connection> connect_upstream(route_runtime& route,
                                                             tcp_socket& socket,
                                                             const relay& control,
                                                             route_stats* stats);

} // namespace nodelayd
