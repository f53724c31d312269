#include "nodelayd/policy.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

using namespace nodelayd;

TEST(policy, defaults_are_nodelay_quickack_auto_cork_auto) {
    const side_policy p;
    EXPECT_TRUE(p.nodelay);
    EXPECT_EQ(p.quickack, quickack_mode::automatic);
    EXPECT_EQ(p.cork, cork_mode::automatic);
}

TEST(policy, quickack_modes_parse_and_render) {
    EXPECT_EQ(parse_quickack_mode("auto"), quickack_mode::automatic);
    EXPECT_EQ(parse_quickack_mode("on"), quickack_mode::on);
    EXPECT_EQ(parse_quickack_mode("yes"), quickack_mode::on);
    EXPECT_EQ(parse_quickack_mode("off"), quickack_mode::off);
    EXPECT_EQ(to_string(quickack_mode::automatic), "auto");
    EXPECT_EQ(to_string(quickack_mode::on), "on");
    EXPECT_EQ(to_string(quickack_mode::off), "off");
    EXPECT_THROW(parse_quickack_mode("sometimes"), std::invalid_argument);
}

TEST(policy, cork_modes_parse_and_render) {
    EXPECT_EQ(parse_cork_mode("auto"), cork_mode::automatic);
    EXPECT_EQ(parse_cork_mode("off"), cork_mode::off);
    EXPECT_EQ(to_string(cork_mode::automatic), "auto");
    EXPECT_THROW(parse_cork_mode("on"), std::invalid_argument);
}

// MSG_MORE only while the source is known to hold more, or when the FIN follows the write
// at once (it then carries the held tail): the tail of a burst is never held otherwise.
TEST(policy, msg_more_only_while_source_has_more_or_the_fin_follows) {
    EXPECT_TRUE(send_with_more(cork_mode::automatic, true, false));
    EXPECT_FALSE(send_with_more(cork_mode::automatic, false, false));
    EXPECT_TRUE(send_with_more(cork_mode::automatic, false, true));
    EXPECT_FALSE(send_with_more(cork_mode::off, true, false));
    EXPECT_FALSE(send_with_more(cork_mode::off, false, true));
}
