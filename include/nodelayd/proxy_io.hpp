#pragma once
// The PROXY protocol on a session's sockets: taking a header off the front of the client's
// stream without touching the bytes behind it, and sending one to the upstream.

#include "nodelayd/proxy_protocol.hpp"
#include "nodelayd/relay.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>

namespace nodelayd {

/// How long a client announced by accept-proxy has to deliver its whole header (the spec
/// asks for at least 3 s, to cover a TCP retransmit).
inline constexpr std::chrono::milliseconds proxy_header_timeout{5'000};

/// Whom a session serves: the client's address and the address it connected to.
struct connection_addresses {
    /// The client.
    boost::asio::ip::tcp::endpoint source;
    /// The address the client connected to.
    boost::asio::ip::tcp::endpoint destination;
};

/// Waits up to `timeout` for a PROXY header (v1 or v2) at the start of `client`'s stream and
/// consumes exactly its bytes: whatever follows stays queued for the relay (the header's end
/// is found with MSG_PEEK, so nothing after it is read early). Returns `complete` with the
/// announced addresses, or `invalid` with the reason (also for a timeout, the client closing,
/// a read error, or `control` being aborted). With `quickack`, re-arms TCP_QUICKACK while
/// waiting, as the relay would.
boost::asio::awaitable<proxy_parse_result> receive_proxy_header(tcp_socket& client,
                                                                const relay& control,
                                                                std::chrono::milliseconds timeout,
                                                                bool quickack);

/// Writes the `version` header announcing `addresses` to `upstream`, completely (nothing for
/// off). Returns the write's error.
boost::asio::awaitable<boost::system::error_code>
send_proxy_header(tcp_socket& upstream, proxy_version version,
                  const connection_addresses& addresses);

} // namespace nodelayd
