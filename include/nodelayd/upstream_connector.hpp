#pragma once
// Connects a session to one of its route's upstream servers: round-robin start, failover to
// the next server on refusal or timeout, each attempt bounded by the connect timeout.

#include "nodelayd/relay.hpp"
#include "nodelayd/route_runtime.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace nodelayd {

/// Connects `socket` to the first upstream server of `route` that accepts, starting at the
/// route's round-robin cursor. Returns the server, or null when every server
/// failed or `control` was aborted. Failed attempts are logged, and with `stats` counted
/// (failures) and timed (successes).
boost::asio::awaitable<const upstream_server*> connect_upstream(route_runtime& route,
                                                                tcp_socket& socket,
                                                                const relay& control,
                                                                route_stats* stats);

} // namespace nodelayd
