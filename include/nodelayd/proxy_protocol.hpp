#pragma once
// The PROXY protocol (HAProxy's doc/proxy-protocol.txt, versions 1 and 2): a header a proxy
// sends before the relayed bytes so the server learns the client's address. Pure encoding and
// parsing, no I/O.

#include <boost/asio/ip/tcp.hpp>

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace nodelayd {

/// Which header to send to the upstream, if any.
enum class proxy_version { off, v1, v2 };

/// "off", "v1" or "v2"; throws std::invalid_argument otherwise.
proxy_version parse_proxy_version(std::string_view text);

/// "off", "v1" or "v2".
std::string_view to_string(proxy_version version);

/// Longest version 1 line, CRLF included ("PROXY UNKNOWN" with two full IPv6 addresses).
inline constexpr std::size_t proxy_v1_max_length = 107;
/// Longest version 2 address block (TLVs included) accepted; the spec allows 65535.
inline constexpr std::size_t proxy_v2_max_payload = 4096;
/// Longest header parse_proxy_header() can ever need to see.
inline constexpr std::size_t proxy_header_max_length = 16 + proxy_v2_max_payload;

/// The header announcing a TCP connection from `source` to `destination` (empty for off).
/// IPv4-mapped IPv6 addresses (a dual-stack listener's view of IPv4 peers) are sent as IPv4.
/// When the two addresses still differ in family, the IPv4 one is sent IPv4-mapped, so the
/// header is TCP6 / AF_INET6 and both addresses are exact.
std::string encode_proxy_header(proxy_version version, const boost::asio::ip::tcp::endpoint& source,
                                const boost::asio::ip::tcp::endpoint& destination);

/// How far parsing the start of a stream got.
enum class proxy_parse_status {
    /// A whole valid header: `length` bytes of it.
    complete,
    /// A valid prefix of a header; read more and parse again from the start. Every byte
    /// given belongs to the header then, so a reader may consume them all.
    need_more,
    /// Not a PROXY header (or a malformed one); the connection must be dropped.
    invalid,
};

/// What parse_proxy_header() found.
struct proxy_parse_result {
    /// Whether a header was found.
    proxy_parse_status status = proxy_parse_status::need_more;
    /// Bytes the header takes at the start of the stream (when complete).
    std::size_t length = 0;
    /// The client's address. None for v1 UNKNOWN, v2 LOCAL and v2 non-TCP families: the
    /// connection's own addresses apply then.
    std::optional<boost::asio::ip::tcp::endpoint> source;
    /// The address the client connected to (present exactly when `source` is).
    std::optional<boost::asio::ip::tcp::endpoint> destination;
    /// Why the header is invalid.
    std::string error;
};

/// Parses a v1 or v2 header at the start of `data`. Never looks past proxy_v1_max_length
/// bytes for a v1 line or past 16 + proxy_v2_max_payload for v2; v2 TLVs are skipped.
proxy_parse_result parse_proxy_header(std::span<const std::byte> data);

} // namespace nodelayd
