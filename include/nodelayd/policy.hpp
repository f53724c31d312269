#pragma once
// Per-side socket policies and the pure decisions the relay takes from them.

#include <cstddef>
#include <string_view>

namespace nodelayd {

/// How the relay batches the bytes it sends to a side.
enum class cork_mode {
    /// MSG_MORE while the source keeps delivering full reads; flush as soon as it runs dry.
    automatic,
    /// Every gathered write is pushed at once.
    off,
};

/// When the relay re-arms TCP_QUICKACK before reading from a side.
enum class quickack_mode {
    /// Before every read that follows a write to that side.
    on,
    /// As `on` until the peer has shown it sends one segment per turn, then never (see
    /// quickack_learner.hpp).
    automatic,
    /// Never: the kernel's delayed ACKs apply.
    off,
};

/// Socket policy for one side (client or upstream) of a route.
struct side_policy {
    /// TCP_NODELAY on the socket: small writes leave without waiting for an ACK.
    bool nodelay = true;
    /// TCP_QUICKACK re-armed before reads, so the peer's Nagle never waits on our ACK.
    quickack_mode quickack = quickack_mode::automatic;
    /// Batching of outgoing bytes, see cork_mode.
    cork_mode cork = cork_mode::automatic;
    /// Field-wise equality.
    bool operator==(const side_policy&) const = default;
};

/// Parses "auto" or "off" (throws std::invalid_argument otherwise).
cork_mode parse_cork_mode(std::string_view text);

/// Parses "on", "auto" or "off" (also yes/no, true/false, 1/0; throws std::invalid_argument
/// otherwise).
quickack_mode parse_quickack_mode(std::string_view text);

/// Renders a quickack mode as written in configs.
std::string_view to_string(quickack_mode mode);

/// Renders a cork mode as written in configs.
std::string_view to_string(cork_mode mode);

/// Whether the next gathered write should carry MSG_MORE. Only while the source is known to
/// hold more bytes (its last read filled the buffer) may the kernel hold a partial segment
/// back, or when shutdown(SHUT_WR) follows the write at once (`fin_follows`: the source hit
/// EOF): the kernel then tacks the FIN onto the held segment, so the last bytes and the FIN
/// leave as one segment and the peer wakes once for both. Any other tail is pushed at once.
constexpr bool send_with_more(cork_mode mode, bool source_has_more, bool fin_follows) {
    return mode == cork_mode::automatic && (source_has_more || fin_follows);
}

} // namespace nodelayd
