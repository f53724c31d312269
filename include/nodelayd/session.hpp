#pragma once
// One client connection from accept to close: connect upstream, apply socket policies,
// relay, close (propagating resets), and log one line.

#include "nodelayd/route_runtime.hpp"
#include "nodelayd/session_registry.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace nodelayd {

/// Runs one session to completion. The caller has already counted it in route.active;
/// the session uncounts itself when it ends. `stats` (the worker's own copy for this route,
/// or null when stats are off) receives everything measured.
boost::asio::awaitable<void> run_session(boost::asio::ip::tcp::socket client, route_runtime& route,
                                         session_registry& registry, route_stats* stats);

} // namespace nodelayd
