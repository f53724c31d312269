#include "nodelayd/endpoint.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

using nodelayd::host_port;
using nodelayd::parse_host_port;

TEST(endpoint, parses_ipv4_and_names) {
    EXPECT_EQ(parse_host_port("127.0.0.1:143"), (host_port{"127.0.0.1", 143}));
    EXPECT_EQ(parse_host_port("localhost:8080"), (host_port{"localhost", 8080}));
    EXPECT_EQ(parse_host_port("127.0.0.1:0"), (host_port{"127.0.0.1", 0}));
}

TEST(endpoint, parses_bracketed_ipv6) {
    EXPECT_EQ(parse_host_port("[::1]:993"), (host_port{"::1", 993}));
    EXPECT_EQ(parse_host_port("[::]:80"), (host_port{"::", 80}));
}

TEST(endpoint, wildcard_forms_mean_all_ipv4) {
    EXPECT_EQ(parse_host_port("*:80"), (host_port{"0.0.0.0", 80}));
    EXPECT_EQ(parse_host_port(":80"), (host_port{"0.0.0.0", 80}));
}

TEST(endpoint, renders_round_trip) {
    EXPECT_EQ(parse_host_port("[::1]:993").str(), "[::1]:993");
    EXPECT_EQ(parse_host_port("10.0.0.1:1").str(), "10.0.0.1:1");
}

TEST(endpoint, rejects_bad_input_with_reason) {
    for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "h:65536", "h:-1",
                            "::1:80", "[::1]80", "[::1", "[]:80", "h:80x"}) {
        EXPECT_THROW(parse_host_port(bad), std::invalid_argument) << bad;
    }
    try {
        parse_host_port("::1:80");
        FAIL();
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("brackets"), std::string::npos);
    }
}
