// Which closed sessions are logged under each `log-sessions` mode, and its parsing.

#include "nodelayd/session_log.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace {

using nodelayd::logs_session;
using nodelayd::parse_session_log;
using nodelayd::session_log;

TEST(session_log, parses_its_three_modes_and_the_switch_spellings) {
    EXPECT_EQ(parse_session_log("on"), session_log::on);
    EXPECT_EQ(parse_session_log("yes"), session_log::on);
    EXPECT_EQ(parse_session_log("errors"), session_log::errors);
    EXPECT_EQ(parse_session_log("off"), session_log::off);
    EXPECT_EQ(parse_session_log("0"), session_log::off);
    EXPECT_EQ(parse_session_log("Errors"), session_log::errors); // any case, as ON and Off
    for (const auto* bad : {"", "error", "all", "on "})
        EXPECT_THROW(parse_session_log(bad), std::invalid_argument) << bad;
    for (const auto mode : {session_log::on, session_log::errors, session_log::off})
        EXPECT_EQ(parse_session_log(to_string(mode)), mode);
}

TEST(session_log, errors_mode_logs_only_sessions_that_did_not_complete) {
    EXPECT_TRUE(logs_session(session_log::on, true));
    EXPECT_TRUE(logs_session(session_log::on, false));
    EXPECT_FALSE(logs_session(session_log::errors, true));
    EXPECT_TRUE(logs_session(session_log::errors, false));
    EXPECT_FALSE(logs_session(session_log::off, true));
    EXPECT_FALSE(logs_session(session_log::off, false));
}

} // namespace
