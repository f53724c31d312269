// quickack=auto on real loopback sockets through the real daemon: a peer that sends one
// segment per turn stops getting immediate ACKs (its answers carry them: one segment per
// turn instead of two), a peer that writes in pieces keeps them, and a peer that switches
// from one to the other costs at most one delayed ACK.
#include "proxy_process.hpp"
#include "relay_kit.hpp"

#include <linux/tcp.h> // struct tcp_info with tcpi_segs_in
#include <netinet/in.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <atomic>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace t = nodelayd::testing;
using t::fd_t;
using namespace std::chrono;
using namespace std::chrono_literals;

namespace {

// Segments (data or not) the socket received so far.
std::uint64_t segments_in(int fd) {
    tcp_info info{};
    socklen_t len = sizeof info;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0)
        return 0;
    return info.tcpi_segs_in;
}

class quickack : public ::testing::TestWithParam<bool> {
protected:
    [[nodiscard]] bool v6() const { return GetParam(); }
};

// Segments each peer receives per request/response turn, measured after the learning turns.
struct per_turn {
    double client = 0;
    double upstream = 0;
};

per_turn request_response(bool v6, const std::vector<std::string>& extra) {
    constexpr int turns = 300;
    constexpr int skip = 50; // learning turns, left out of the count
    t::listener up(v6);
    t::proxy_process proxy(t::proxy_args(v6, {up.port()}, extra));
    std::atomic<std::uint64_t> server_segs_mid{0};
    std::atomic<std::uint64_t> server_segs_end{0};
    std::atomic<bool> server_ok{true};
    std::thread server([&] {
        fd_t u(up.accept(5s));
        server_ok = static_cast<bool>(u);
        for (int i = 0; server_ok && i < turns; ++i) {
            if (i == skip)
                server_segs_mid = segments_in(u.get());
            const std::string req = t::recv_n(u.get(), 16, 10s);
            server_ok = req.size() == 16 && t::send_all(u.get(), std::string(16, 'r'));
        }
        server_segs_end = segments_in(u.get());
        int err = -1;
        t::recv_to_eof(u.get(), err, 10s);
    });
    per_turn out;
    {
        fd_t c(t::connect_to(proxy.port(), v6));
        EXPECT_TRUE(c);
        std::uint64_t mid = 0;
        for (int i = 0; c && i < turns; ++i) {
            if (i == skip)
                mid = segments_in(c.get());
            if (!t::send_all(c.get(), std::string(16, 'q')) ||
                t::recv_n(c.get(), 16, 10s).size() != 16) {
                ADD_FAILURE() << "turn " << i << " failed";
                break;
            }
        }
        if (c)
            out.client = static_cast<double>(segments_in(c.get()) - mid) / (turns - skip);
    }
    server.join();
    EXPECT_TRUE(server_ok);
    out.upstream = static_cast<double>(server_segs_end - server_segs_mid) / (turns - skip);
    return out;
}

TEST_P(quickack, auto_stops_acking_a_one_segment_per_turn_peer_at_once) {
    const per_turn s = request_response(v6(), {});
    std::cout << "[ quickack ] auto: segments per turn: client " << s.client << ", upstream "
              << s.upstream << "\n";
    // Each answer carries the ACK of the request it answers.
    EXPECT_LT(s.client, 1.25);
    EXPECT_LT(s.upstream, 1.25);
}

TEST_P(quickack, on_acks_every_request_at_once) {
    const per_turn s =
        request_response(v6(), {"--client-quickack", "on", "--upstream-quickack", "on"});
    std::cout << "[ quickack ] on: segments per turn: client " << s.client << ", upstream "
              << s.upstream << "\n";
    // An immediate ACK, then the answer: what auto saves.
    EXPECT_GT(s.client, 1.75);
    EXPECT_GT(s.upstream, 1.75);
}

// Twenty single-write requests teach auto that the client needs no immediate ACKs; then the
// client starts writing each request in two pieces with Nagle on, so the second piece waits
// for the ACK of the first. The first such round may wait for a delayed ACK; the stall it
// causes is detected and the client gets immediate ACKs from then on.
TEST_P(quickack, auto_costs_at_most_one_delayed_ack_when_the_peer_changes) {
    constexpr int single = 20;
    constexpr int split = 10;
    t::listener up(v6());
    t::proxy_process proxy(t::proxy_args(v6(), {up.port()}, {}));
    std::atomic<bool> server_ok{true};
    std::thread server([&] {
        fd_t u(up.accept(5s));
        server_ok = static_cast<bool>(u);
        for (int i = 0; server_ok && i < single + split; ++i) {
            const std::size_t n = i < single ? 16 : 20;
            const std::string req = t::recv_n(u.get(), n, 10s);
            server_ok = req.size() == n && t::send_all(u.get(), req);
        }
        int err = -1;
        t::recv_to_eof(u.get(), err, 10s);
    });
    std::vector<double> split_ms;
    {
        fd_t c(t::connect_to(proxy.port(), v6()));
        ASSERT_TRUE(c);
        for (int i = 0; i < single; ++i)
            ASSERT_TRUE(t::send_all(c.get(), std::string(16, 's')) &&
                        t::recv_n(c.get(), 16, 10s).size() == 16);
        for (int i = 0; i < split; ++i) {
            const auto t0 = steady_clock::now();
            ASSERT_TRUE(t::send_all(c.get(), std::string(10, 'a')) &&
                        t::send_all(c.get(), std::string(10, 'b')) &&
                        t::recv_n(c.get(), 20, 10s).size() == 20);
            split_ms.push_back(t::seconds_since(t0) * 1000);
        }
        ::shutdown(c.get(), SHUT_WR);
    }
    server.join();
    EXPECT_TRUE(server_ok);
    int slow = 0;
    for (std::size_t i = 0; i < split_ms.size(); ++i) {
        std::cout << "[ quickack ] split round " << i << ": " << split_ms[i] << " ms\n";
        slow += split_ms[i] >= 20 ? 1 : 0;
        if (i > 0)
            EXPECT_LT(split_ms[i], 20) << "round " << i << " waited for a delayed ACK";
    }
    EXPECT_LE(slow, 1);
    ASSERT_TRUE(proxy.wait_for_log("close=completed", 5s));
    // The one stall is what made it re-arm; none after it.
    EXPECT_NE(proxy.log().find(slow == 1 ? "stalls_client=1" : "stalls_client=0"),
              std::string::npos)
        << proxy.log();
}

INSTANTIATE_TEST_SUITE_P(loopback, quickack, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "IPv6" : "IPv4"; });

} // namespace
