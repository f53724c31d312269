#pragma once
// Peer-stall detection: the pure rule and the per-socket facts it needs.
//
// A peer stall is suspected when, after a read from that peer shorter than a full segment,
// the peer's next bytes arrive 30-250 ms later (kernel receive timestamps) and nodelayd sent
// nothing to that peer in between. That gap is the signature of a sender whose Nagle holds
// a small segment until its previous one is ACKed while the ACK is delayed (40 ms on Linux,
// up to 200 ms elsewhere). A peer that was answered and then thought for a while is not
// counted: something was sent to it in between.

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace nodelayd {

/// What nodelayd has seen on one side's socket; shared by the session's two pumps. Kept
/// small (every idle session holds two): times in microseconds modulo 2^32 (71 minutes,
/// plenty for gaps of at most 250 ms), sizes in 16 bits (a TCP segment is smaller).
struct peer_watch {
    /// Kernel receive time of the last bytes read from this peer (µs, wrapping).
    std::uint32_t last_rx_us = 0;
    /// Bytes that read returned, up to 65535.
    std::uint16_t last_read_bytes = 0;
    /// Bytes in a full segment from this peer (the connection's MSS); 0 until needed: it
    /// costs a syscall and only matters once the gap already looks like a stall.
    std::uint16_t full_segment = 0;
    /// Whether any read was recorded.
    bool seen = false;
    /// Whether nodelayd wrote to this peer since that read.
    bool sent_since = false;
};

/// Shortest gap counted as a stall.
inline constexpr std::chrono::nanoseconds stall_min_gap = std::chrono::milliseconds(30);
/// Longest gap counted as a stall.
inline constexpr std::chrono::nanoseconds stall_max_gap = std::chrono::milliseconds(250);

/// Whether bytes from the peer received at `rx_ns` would end a stall, all but the segment
/// size: nothing was sent to the peer since its last bytes, which came 30-250 ms earlier.
constexpr bool is_stall_gap(const peer_watch& w, std::int64_t rx_ns) {
    if (!w.seen || w.sent_since)
        return false;
    // Unsigned: the difference is right across the wrap.
    const std::uint32_t gap_us = static_cast<std::uint32_t>(rx_ns / 1000) - w.last_rx_us;
    return gap_us * std::int64_t{1000} >= stall_min_gap.count() &&
           gap_us * std::int64_t{1000} <= stall_max_gap.count();
}

/// Whether bytes from the peer received at `rx_ns` end a suspected stall (needs
/// full_segment once is_stall_gap() holds).
constexpr bool is_peer_stall(const peer_watch& w, std::int64_t rx_ns) {
    return is_stall_gap(w, rx_ns) && w.last_read_bytes < w.full_segment;
}

/// Records a read of `bytes` received at `rx_ns`.
constexpr void note_read(peer_watch& w, std::size_t bytes, std::int64_t rx_ns) {
    w.last_rx_us = static_cast<std::uint32_t>(rx_ns / 1000);
    w.last_read_bytes = bytes > UINT16_MAX ? UINT16_MAX : static_cast<std::uint16_t>(bytes);
    w.seen = true;
    w.sent_since = false;
}

/// Records that nodelayd wrote to the peer.
constexpr void note_sent(peer_watch& w) {
    w.sent_since = true;
}

} // namespace nodelayd
