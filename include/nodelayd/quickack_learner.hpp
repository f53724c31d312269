#pragma once
// quickack=auto: which peers need TCP_QUICKACK re-armed before every read, learned per
// socket. Pure rules; the pump feeds them what it sees.
//
// An immediate ACK only matters when the peer's Nagle holds data behind an unacknowledged
// segment: a peer that sends a message in pieces (IMAP literal then CRLF, HTTP headers then
// body) waits for our ACK before the next piece. A peer that sends each message as one
// segment and then waits for the answer loses nothing when the ACK rides on that answer,
// and every immediate ACK it gets is one more packet for both kernels (and a wake-up for a
// peer that polls for writability): measured, 25% of a keep-alive request rate.
//
// So a socket starts eager (re-armed before every read after a write, as with quickack=on)
// and counts the peer's turns: the bytes it sends between two of ours. A turn read in more
// than one piece makes it eager for good. After `quickack_learn_turns` turns of one read
// each, the kernel's count of data segments received decides (reads can merge pieces that
// arrived close together; segments cannot): one segment per turn makes the socket lazy (no
// re-arming), more makes it eager for good. A stall suspected later on a lazy socket (the
// peer_watch rule) makes it eager for good too, so a peer costs at most one delayed ACK.

#include <cstdint>

namespace nodelayd {

/// Peer turns observed before a socket may stop re-arming TCP_QUICKACK.
inline constexpr std::uint16_t quickack_learn_turns = 16;

/// What quickack=auto knows about one socket's peer.
struct quickack_learner {
    /// Where the learner stands.
    enum class state : std::uint8_t {
        /// Re-arming while counting turns.
        learning,
        /// Re-arming for good: the peer sends in pieces.
        eager,
        /// Not re-arming: the peer sends one segment per turn.
        lazy,
    };
    /// Current state.
    state current = state::learning;
    /// Reads that returned bytes in the peer's current turn (saturates).
    std::uint8_t reads_in_turn = 0;
    /// Completed turns of exactly one read.
    std::uint16_t turns = 0;
};

/// Whether TCP_QUICKACK should be re-armed before reading from this peer.
constexpr bool quickack_wanted(const quickack_learner& l) {
    return l.current != quickack_learner::state::lazy;
}

/// A read returned bytes from the peer.
constexpr void note_peer_read(quickack_learner& l) {
    if (l.reads_in_turn < UINT8_MAX)
        ++l.reads_in_turn;
}

/// nodelayd sent to the peer, which ends the peer's turn. Returns true when the learner
/// needs the kernel's count of data segments received (decide_from_segments) to go on.
constexpr bool note_turn_end(quickack_learner& l) {
    const std::uint8_t reads = l.reads_in_turn;
    l.reads_in_turn = 0;
    if (l.current != quickack_learner::state::learning || reads == 0)
        return false;
    if (reads > 1) {
        l.current = quickack_learner::state::eager;
        return false;
    }
    ++l.turns;
    return l.turns >= quickack_learn_turns;
}

/// Settles a learner that asked for it: `data_segments_in` is the kernel's count of data
/// segments received on the socket so far (TCP_INFO tcpi_data_segs_in), 0 if unknown.
constexpr void decide_from_segments(quickack_learner& l, std::uint64_t data_segments_in) {
    const bool one_per_turn = data_segments_in != 0 && data_segments_in <= l.turns;
    l.current = one_per_turn ? quickack_learner::state::lazy : quickack_learner::state::eager;
}

/// A stall of the peer was suspected: re-arm for good.
constexpr void note_peer_stall(quickack_learner& l) {
    l.current = quickack_learner::state::eager;
}

} // namespace nodelayd
