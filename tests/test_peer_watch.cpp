#include "nodelayd/peer_watch.hpp"

#include <gtest/gtest.h>

using namespace nodelayd;

namespace {
constexpr std::int64_t ms = 1'000'000;
} // namespace

TEST(peer_watch, short_read_then_bytes_40ms_later_is_a_stall) {
    peer_watch w;
    w.full_segment = 1448;
    note_read(w, 300, 1000 * ms);
    EXPECT_TRUE(is_peer_stall(w, 1040 * ms));
}

TEST(peer_watch, gap_outside_30_to_250ms_is_not_a_stall) {
    peer_watch w;
    w.full_segment = 1448;
    note_read(w, 10, 1000 * ms);
    EXPECT_FALSE(is_peer_stall(w, 1029 * ms));
    EXPECT_TRUE(is_peer_stall(w, 1030 * ms));
    EXPECT_TRUE(is_peer_stall(w, 1250 * ms));
    EXPECT_FALSE(is_peer_stall(w, 1251 * ms));
}

TEST(peer_watch, a_peer_we_answered_is_not_stalled) {
    peer_watch w;
    w.full_segment = 1448;
    note_read(w, 10, 1000 * ms);
    note_sent(w); // it got a reply and then thought for a while
    EXPECT_FALSE(is_peer_stall(w, 1100 * ms));
}

TEST(peer_watch, full_segment_reads_are_not_followed_by_stalls) {
    peer_watch w;
    w.full_segment = 1448;
    note_read(w, 1448, 1000 * ms); // bulk: the peer's Nagle has nothing to hold
    EXPECT_FALSE(is_peer_stall(w, 1040 * ms));
}

TEST(peer_watch, first_bytes_are_never_a_stall) {
    peer_watch w;
    EXPECT_FALSE(is_peer_stall(w, 1040 * ms));
}

TEST(peer_watch, a_read_resets_the_sent_flag) {
    peer_watch w;
    w.full_segment = 1448;
    note_read(w, 10, 1000 * ms);
    note_sent(w);
    note_read(w, 10, 1001 * ms);
    EXPECT_TRUE(is_peer_stall(w, 1050 * ms));
}

// The segment size costs a syscall: the gap alone is checked first, without it.
TEST(peer_watch, gap_is_judged_before_the_segment_size_is_known) {
    peer_watch w;
    note_read(w, 300, 1000 * ms);
    EXPECT_TRUE(is_stall_gap(w, 1040 * ms));
    EXPECT_FALSE(is_peer_stall(w, 1040 * ms)); // unknown segment size: not (yet) a stall
    w.full_segment = 1448;
    EXPECT_TRUE(is_peer_stall(w, 1040 * ms));
    note_sent(w);
    EXPECT_FALSE(is_stall_gap(w, 1040 * ms));
}

// Times are kept in 32-bit microseconds: a gap across the wrap-around still measures right.
TEST(peer_watch, gap_across_the_clock_wrap) {
    peer_watch w;
    w.full_segment = 1448;
    const std::int64_t wrap = std::int64_t{1} << 32; // µs
    note_read(w, 10, (wrap - 10'000) * 1000);        // 10 ms before the wrap
    EXPECT_TRUE(is_peer_stall(w, (wrap + 30'000) * 1000));
    EXPECT_FALSE(is_peer_stall(w, (wrap + 300'000) * 1000));
}
