#include "nodelayd/quickack_learner.hpp"

#include <gtest/gtest.h>

using namespace nodelayd;
using state = quickack_learner::state;

namespace {

// The peer sends `reads` pieces, then nodelayd answers; returns note_turn_end's verdict.
bool turn(quickack_learner& l, int reads) {
    for (int i = 0; i < reads; ++i)
        note_peer_read(l);
    return note_turn_end(l);
}

// A learner that saw the learning turns, one read each, settled by `segments`.
quickack_learner settled(std::uint64_t segments) {
    quickack_learner l;
    while (!turn(l, 1)) {
    }
    decide_from_segments(l, segments);
    return l;
}

} // namespace

TEST(quickack_learner, starts_eager) {
    const quickack_learner l;
    EXPECT_EQ(l.current, state::learning);
    EXPECT_TRUE(quickack_wanted(l));
}

TEST(quickack_learner, one_read_per_turn_asks_for_the_segment_count_after_enough_turns) {
    quickack_learner l;
    for (int i = 1; i < quickack_learn_turns; ++i)
        EXPECT_FALSE(turn(l, 1)) << "turn " << i;
    EXPECT_TRUE(turn(l, 1));
    EXPECT_TRUE(quickack_wanted(l)); // still re-arming until the kernel has spoken
}

TEST(quickack_learner, one_segment_per_turn_stops_rearming) {
    const quickack_learner l = settled(quickack_learn_turns);
    EXPECT_EQ(l.current, state::lazy);
    EXPECT_FALSE(quickack_wanted(l));
}

// Pieces that arrived close together can merge into one read; the kernel counted them.
TEST(quickack_learner, more_segments_than_turns_keeps_rearming_for_good) {
    quickack_learner l = settled(quickack_learn_turns + 1);
    EXPECT_EQ(l.current, state::eager);
    for (int i = 0; i < 100; ++i)
        EXPECT_FALSE(turn(l, 1));
    EXPECT_TRUE(quickack_wanted(l));
}

TEST(quickack_learner, unknown_segment_count_keeps_rearming) {
    EXPECT_TRUE(quickack_wanted(settled(0)));
}

// An IMAP literal and its CRLF, HTTP headers and body: two reads in one turn.
TEST(quickack_learner, a_turn_in_pieces_keeps_rearming_for_good) {
    quickack_learner l;
    EXPECT_FALSE(turn(l, 1));
    EXPECT_FALSE(turn(l, 2));
    EXPECT_EQ(l.current, state::eager);
    for (int i = 0; i < 100; ++i)
        EXPECT_FALSE(turn(l, 1));
    EXPECT_TRUE(quickack_wanted(l));
}

// A server greeting (nodelayd writes before the peer sent anything) is not a turn.
TEST(quickack_learner, writes_without_reads_between_are_not_turns) {
    quickack_learner l;
    for (int i = 0; i < 3 * quickack_learn_turns; ++i)
        EXPECT_FALSE(turn(l, 0));
    EXPECT_EQ(l.turns, 0);
    EXPECT_EQ(l.current, state::learning);
}

TEST(quickack_learner, a_stall_on_a_lazy_socket_rearms_for_good) {
    quickack_learner l = settled(quickack_learn_turns);
    ASSERT_FALSE(quickack_wanted(l));
    note_peer_stall(l);
    EXPECT_TRUE(quickack_wanted(l));
    for (int i = 0; i < 2 * quickack_learn_turns; ++i)
        EXPECT_FALSE(turn(l, 1));
    EXPECT_TRUE(quickack_wanted(l));
}

TEST(quickack_learner, reads_per_turn_saturate) {
    quickack_learner l;
    for (int i = 0; i < 1000; ++i)
        note_peer_read(l);
    EXPECT_EQ(l.reads_in_turn, UINT8_MAX);
    EXPECT_FALSE(note_turn_end(l));
    EXPECT_EQ(l.current, state::eager);
}
