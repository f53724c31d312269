#include "nodelayd/values.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

using namespace nodelayd;
using namespace std::chrono_literals;

TEST(values, switches) {
    for (const char* on : {"on", "ON", "yes", "true", "1"})
        EXPECT_TRUE(parse_switch(on)) << on;
    for (const char* off : {"off", "no", "False", "0"})
        EXPECT_FALSE(parse_switch(off)) << off;
    EXPECT_THROW(parse_switch("maybe"), std::invalid_argument);
    EXPECT_THROW(parse_switch(""), std::invalid_argument);
}

TEST(values, tristates) {
    EXPECT_EQ(parse_tristate("auto", "auto"), tristate::third);
    EXPECT_EQ(parse_tristate("Errors", "errors"), tristate::third);
    EXPECT_EQ(parse_tristate("yes", "auto"), tristate::on);
    EXPECT_EQ(parse_tristate("OFF", "auto"), tristate::off);
    try {
        parse_tristate("autos", "auto");
        ADD_FAILURE() << "no exception";
    } catch (const std::invalid_argument& e) {
        EXPECT_STREQ(e.what(), "'autos' is not on, auto or off");
    }
}

TEST(values, durations) {
    EXPECT_EQ(parse_duration("250ms"), 250ms);
    EXPECT_EQ(parse_duration("5s"), 5s);
    EXPECT_EQ(parse_duration("5"), 5s);
    EXPECT_EQ(parse_duration("2m"), 120s);
    EXPECT_EQ(parse_duration("1h"), 3600s);
    EXPECT_EQ(parse_duration("1d"), 86400s);
    for (const char* bad :
         {"", "0", "0ms", "5x", "ms", "-1s", "1.5s", "99999999999999999d", "1000000d"})
        EXPECT_THROW(parse_duration(bad), std::invalid_argument) << bad;
}

TEST(values, sizes) {
    EXPECT_EQ(parse_size("4096"), 4096u);
    EXPECT_EQ(parse_size("64k"), 65536u);
    EXPECT_EQ(parse_size("64KiB"), 65536u);
    EXPECT_EQ(parse_size("1m"), 1048576u);
    for (const char* bad : {"", "0", "12q", "k", "-5"})
        EXPECT_THROW(parse_size(bad), std::invalid_argument) << bad;
}

TEST(values, counts) {
    EXPECT_EQ(parse_count("8", 1, 256), 8u);
    EXPECT_THROW(parse_count("0", 1, 256), std::invalid_argument);
    EXPECT_THROW(parse_count("257", 1, 256), std::invalid_argument);
    EXPECT_THROW(parse_count("4x", 1, 256), std::invalid_argument);
}
