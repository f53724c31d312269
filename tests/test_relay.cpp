// Integration tests: the real nodelayd binary relaying real loopback sockets.
// Upstream servers are plain blocking sockets on std::threads; every wait is bounded.

#include "relay_kit.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

namespace t = nodelayd::testing;
using namespace std::chrono;
using namespace std::chrono_literals;

using t::address;
using t::byte_stream;
using t::closed_by_peer;
using t::digest;
using t::echo_server;
using t::expect_echo;
using t::fd_t;
using t::proxy_args;
using t::random_chunk;
using t::seconds_since;
using t::set_nonblocking;

// ---------------------------------------------------------------------------------------------

class relay : public t::loopback_test {};

INSTANTIATE_TEST_SUITE_P(loopback, relay, ::testing::Values(false, true), t::family_name);

TEST_P(relay, echoes_a_small_message_and_completes) {
    echo_server up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}));
    fd_t c(t::connect_to(proxy.port(), v6()));
    ASSERT_TRUE(c);

    const std::string msg = "hello through nodelayd";
    expect_echo(c.get(), msg);
    ASSERT_EQ(::shutdown(c.get(), SHUT_WR), 0);
    int err = -1;
    EXPECT_EQ(t::recv_to_eof(c.get(), err, 5s), "");
    EXPECT_EQ(err, 0) << std::strerror(err);

    const std::string counts =
        "bytes_c2u=" + std::to_string(msg.size()) + " bytes_u2c=" + std::to_string(msg.size());
    EXPECT_TRUE(proxy.wait_for_log("close=completed", 5s)) << proxy.log();
    EXPECT_NE(proxy.log().find(counts), std::string::npos) << proxy.log();
    EXPECT_EQ(up.accepted(), 1u);
}

TEST_P(relay, echoes_many_small_writes_byte_exact) {
    echo_server up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}));
    fd_t c(t::connect_to(proxy.port(), v6()));
    ASSERT_TRUE(c);
    const int one = 1;
    ::setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    byte_stream gen(42);
    std::mt19937_64 rng(7);
    std::vector<std::string> pieces;
    std::string all;
    for (int i = 0; i < 2000; ++i) {
        pieces.push_back(gen.take(std::uniform_int_distribution<std::size_t>(1, 16)(rng)));
        all += pieces.back();
    }
    std::string echoed;
    std::thread reader([&] { echoed = t::recv_n(c.get(), all.size(), 20s); });
    bool sent = true;
    for (const auto& p : pieces)
        sent = sent && t::send_all(c.get(), p);
    reader.join();
    EXPECT_TRUE(sent);
    ASSERT_EQ(echoed.size(), all.size());
    EXPECT_TRUE(echoed == all) << "echoed bytes differ from the bytes sent";
}

TEST_P(relay, client_half_close_reaches_upstream_and_reply_still_flows) {
    t::listener up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}));
    t::leak_check leaks(proxy);
    auto [c, u] = t::connect_through(proxy.port(), up, v6());
    ASSERT_TRUE(c && u);

    ASSERT_TRUE(t::send_all(c.get(), "request"));
    ASSERT_EQ(::shutdown(c.get(), SHUT_WR), 0);
    int err = -1;
    EXPECT_EQ(t::recv_to_eof(u.get(), err, 5s), "request");
    EXPECT_EQ(err, 0) << "upstream should see a clean EOF: " << std::strerror(err);

    // The other direction is still open.
    ASSERT_TRUE(t::send_all(u.get(), "reply after EOF"));
    EXPECT_EQ(t::recv_n(c.get(), 15, 5s), "reply after EOF");
    u.reset();
    EXPECT_EQ(t::recv_to_eof(c.get(), err, 5s), "");
    EXPECT_EQ(err, 0) << "client should see a clean EOF: " << std::strerror(err);
    EXPECT_TRUE(proxy.wait_for_log("close=completed", 5s)) << proxy.log();
    EXPECT_TRUE(leaks.settled());
}

TEST_P(relay, upstream_half_close_reaches_client_and_request_still_flows) {
    t::listener up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}));
    t::leak_check leaks(proxy);
    auto [c, u] = t::connect_through(proxy.port(), up, v6());
    ASSERT_TRUE(c && u);

    ASSERT_TRUE(t::send_all(u.get(), "banner"));
    ASSERT_EQ(::shutdown(u.get(), SHUT_WR), 0);
    int err = -1;
    EXPECT_EQ(t::recv_to_eof(c.get(), err, 5s), "banner");
    EXPECT_EQ(err, 0) << "client should see a clean EOF: " << std::strerror(err);

    ASSERT_TRUE(t::send_all(c.get(), "late request"));
    EXPECT_EQ(t::recv_n(u.get(), 12, 5s), "late request");
    ASSERT_EQ(::shutdown(c.get(), SHUT_WR), 0);
    EXPECT_EQ(t::recv_to_eof(u.get(), err, 5s), "");
    EXPECT_EQ(err, 0) << "upstream should see a clean EOF: " << std::strerror(err);
    EXPECT_TRUE(proxy.wait_for_log("close=completed", 5s)) << proxy.log();
    EXPECT_TRUE(leaks.settled());
}

TEST_P(relay, client_reset_is_propagated_as_reset) {
    t::listener up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}));
    t::leak_check leaks(proxy);
    auto [c, u] = t::connect_through(proxy.port(), up, v6());
    ASSERT_TRUE(c && u);
    ASSERT_TRUE(t::send_all(c.get(), "ping"));
    ASSERT_EQ(t::recv_n(u.get(), 4, 5s), "ping");

    t::close_with_reset(c.release());
    int err = -1;
    EXPECT_EQ(t::recv_to_eof(u.get(), err, 5s), "");
    EXPECT_EQ(err, ECONNRESET) << "upstream got " << (err ? std::strerror(err) : "a clean EOF");
    EXPECT_TRUE(proxy.wait_for_log("close=client-reset", 5s)) << proxy.log();
    EXPECT_TRUE(leaks.settled());
}

TEST_P(relay, upstream_reset_is_propagated_as_reset) {
    t::listener up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}));
    t::leak_check leaks(proxy);
    auto [c, u] = t::connect_through(proxy.port(), up, v6());
    ASSERT_TRUE(c && u);
    ASSERT_TRUE(t::send_all(u.get(), "pong"));
    ASSERT_EQ(t::recv_n(c.get(), 4, 5s), "pong");

    t::close_with_reset(u.release());
    int err = -1;
    EXPECT_EQ(t::recv_to_eof(c.get(), err, 5s), "");
    EXPECT_EQ(err, ECONNRESET) << "client got " << (err ? std::strerror(err) : "a clean EOF");
    EXPECT_TRUE(proxy.wait_for_log("close=upstream-reset", 5s)) << proxy.log();
    EXPECT_TRUE(leaks.settled());
}

// log-sessions: `errors` logs the reset session but not the completed one before it; `off`
// neither (both still relayed, and closed: the descriptors settle).
TEST_P(relay, log_sessions_errors_and_off_leave_out_what_they_should) {
    for (const std::string mode : {"errors", "off"}) {
        SCOPED_TRACE("log-sessions " + mode);
        echo_server up(v6());
        t::proxy_process proxy(proxy_args(v6(), {up.port()}, {"--log-sessions", mode}));
        t::leak_check leaks(proxy);
        {
            fd_t c(t::connect_to(proxy.port(), v6()));
            ASSERT_TRUE(c);
            expect_echo(c.get(), "completes");
            ASSERT_EQ(::shutdown(c.get(), SHUT_WR), 0);
            int err = -1;
            EXPECT_EQ(t::recv_to_eof(c.get(), err, 5s), "");
            EXPECT_EQ(err, 0) << std::strerror(err);
        }
        ASSERT_TRUE(leaks.settled()) << "the completed session was not closed";
        fd_t c(t::connect_to(proxy.port(), v6()));
        ASSERT_TRUE(c);
        expect_echo(c.get(), "is reset");
        t::close_with_reset(c.release());
        ASSERT_TRUE(leaks.settled()) << "the reset session was not closed";
        if (mode == "errors")
            EXPECT_TRUE(proxy.wait_for_log("close=client-reset", 5s)) << proxy.log();
        EXPECT_EQ(proxy.log().find("close=completed"), std::string::npos) << proxy.log();
        if (mode == "off")
            EXPECT_EQ(proxy.log().find("close="), std::string::npos) << proxy.log();
        EXPECT_EQ(up.accepted(), 2u);
    }
}

// A bulk flow moves by splice(2), which raises SIGPIPE when the sink's peer is gone: the
// upstream going away mid-stream must end that session, not the daemon.
TEST_P(relay, upstream_closing_during_spliced_bulk_flow_ends_only_that_session) {
    t::listener up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}));
    t::leak_check leaks(proxy);
    auto [c, u] = t::connect_through(proxy.port(), up, v6());
    ASSERT_TRUE(c && u);
    std::atomic<bool> stop{false};
    std::thread pusher([&] {
        const std::string block(256 * 1024, 'b');
        while (!stop && ::send(c.get(), block.data(), block.size(), MSG_NOSIGNAL) > 0) {
        }
    });
    // Read enough for the flow to have switched to splice, then close the upstream the way
    // iperf3's server does: FIN first (the client's half is closed in turn), then close()
    // with bytes still arriving, which answers them with RST: the next splice gets EPIPE.
    ASSERT_EQ(t::recv_n(u.get(), 4 << 20, 10s).size(), 4u << 20);
    ::shutdown(u.get(), SHUT_WR);
    std::this_thread::sleep_for(50ms);
    u.reset();
    EXPECT_TRUE(proxy.wait_for_log("close=upstream-reset", 5s)) << proxy.log();
    stop = true;
    ::shutdown(c.get(), SHUT_RDWR);
    pusher.join();
    EXPECT_TRUE(proxy.running()) << "the daemon died: " << proxy.log();
    // And it still relays.
    fd_t c2(t::connect_to(proxy.port(), v6()));
    ASSERT_TRUE(c2);
    fd_t u2(up.accept(5s));
    ASSERT_TRUE(u2);
    ASSERT_TRUE(t::send_all(c2.get(), "still here"));
    EXPECT_EQ(t::recv_n(u2.get(), 10, 5s), "still here");
    c2.reset();
    u2.reset();
    EXPECT_TRUE(leaks.settled());
}

TEST_P(relay, refused_upstream_closes_the_client_promptly) {
    std::uint16_t dead = 0;
    {
        t::listener l(v6());
        dead = l.port();
    }
    t::proxy_process proxy(proxy_args(v6(), {dead}));
    t::leak_check leaks(proxy);
    fd_t c(t::connect_to(proxy.port(), v6()));
    ASSERT_TRUE(c);
    const auto t0 = steady_clock::now();
    int err = -1;
    EXPECT_EQ(t::recv_to_eof(c.get(), err, 5s), "");
    const double took = seconds_since(t0);
    EXPECT_TRUE(closed_by_peer(err)) << std::strerror(err);
    EXPECT_LT(took, 2.0);
    EXPECT_TRUE(proxy.wait_for_log("connect to " + address(v6(), dead), 5s)) << proxy.log();
    EXPECT_TRUE(proxy.wait_for_log("close=connect-failed", 5s)) << proxy.log();
    EXPECT_NE(proxy.log().find("failed: Connection refused"), std::string::npos) << proxy.log();
    EXPECT_TRUE(leaks.settled());
}

TEST_P(relay, connect_timeout_closes_the_client) {
    t::silent_upstream up(v6());
    ASSERT_TRUE(up.hangs()) << "precondition: the kernel completed a connect to a full "
                               "backlog-0 listener, so this setup cannot make a connect hang";

    t::proxy_process proxy(proxy_args(v6(), {up.port()}, {"--connect-timeout", "300ms"}));
    t::leak_check leaks(proxy);
    fd_t c(t::connect_to(proxy.port(), v6()));
    ASSERT_TRUE(c);
    const auto t0 = steady_clock::now();
    int err = -1;
    EXPECT_EQ(t::recv_to_eof(c.get(), err, 6s), "");
    const double took = seconds_since(t0);
    EXPECT_TRUE(closed_by_peer(err)) << std::strerror(err);
    EXPECT_GE(took, 0.2);
    EXPECT_LT(took, 3.0);
    EXPECT_TRUE(proxy.wait_for_log("timed out after 300ms", 5s)) << proxy.log();
    EXPECT_TRUE(proxy.wait_for_log("close=connect-failed", 5s)) << proxy.log();
    EXPECT_TRUE(leaks.settled());
}

TEST_P(relay, failover_skips_a_dead_upstream_on_every_connection) {
    std::uint16_t dead = 0;
    {
        t::listener l(v6());
        dead = l.port();
    }
    echo_server live(v6());
    t::proxy_process proxy(proxy_args(v6(), {dead, live.port()}));
    t::leak_check leaks(proxy);
    constexpr int connections = 6;
    for (int i = 0; i < connections; ++i) {
        SCOPED_TRACE("connection " + std::to_string(i));
        fd_t c(t::connect_to(proxy.port(), v6()));
        ASSERT_TRUE(c);
        expect_echo(c.get(), "message " + std::to_string(i));
        ASSERT_EQ(::shutdown(c.get(), SHUT_WR), 0);
        int err = -1;
        EXPECT_EQ(t::recv_to_eof(c.get(), err, 5s), "");
        EXPECT_EQ(err, 0);
    }
    EXPECT_EQ(live.accepted(), static_cast<std::size_t>(connections));
    EXPECT_TRUE(proxy.wait_for_log("close=completed", 5s, connections)) << proxy.log();
    // Round-robin starts at the dead server for some of them: failover was exercised.
    EXPECT_GE(t::count_of(proxy.log(), "connect to " + address(v6(), dead)), 1u) << proxy.log();
    EXPECT_TRUE(leaks.settled());
}

TEST_P(relay, idle_session_is_closed_after_idle_timeout) {
    echo_server up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}, {"--idle-timeout", "300ms"}));
    t::leak_check leaks(proxy);
    fd_t c(t::connect_to(proxy.port(), v6()));
    ASSERT_TRUE(c);
    expect_echo(c.get(), "x");
    const auto t0 = steady_clock::now(); // just after the last byte moved
    EXPECT_TRUE(t::closed_between(c.get(), t0, 0.25, 3.0));
    EXPECT_TRUE(proxy.wait_for_log("close=idle-timeout", 5s)) << proxy.log();
    EXPECT_TRUE(leaks.settled());
}

TEST_P(relay, active_session_survives_idle_timeout) {
    t::listener up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}, {"--idle-timeout", "300ms"}));
    t::leak_check leaks(proxy);
    auto [c, u] = t::connect_through(proxy.port(), up, v6());
    ASSERT_TRUE(c && u);

    // Client -> upstream only, one byte every 100 ms for 1.2 s (4x the idle timeout).
    std::string got;
    for (int i = 0; i < 12; ++i) {
        const std::string b(1, static_cast<char>('a' + i));
        ASSERT_TRUE(t::send_all(c.get(), b)) << "send " << i;
        got += t::recv_n(u.get(), 1, 2s);
        std::this_thread::sleep_for(100ms); // pacing, not an assertion
    }
    EXPECT_EQ(got, "abcdefghijkl");
    // Neither side has been closed.
    pollfd p[2] = {{c.get(), POLLIN, 0}, {u.get(), POLLIN, 0}};
    EXPECT_EQ(::poll(p, 2, 0), 0) << "a session with traffic every 100ms was closed";
    EXPECT_EQ(t::count_of(proxy.log(), "close=idle-timeout"), 0u) << proxy.log();

    // Once traffic stops it is closed after all.
    int err = -1;
    EXPECT_EQ(t::recv_to_eof(c.get(), err, 5s), "");
    EXPECT_TRUE(closed_by_peer(err)) << std::strerror(err);
    EXPECT_TRUE(leaks.settled());
}

TEST_P(relay, max_connections_refuses_the_excess_connection) {
    echo_server up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}, {"--max-connections", "2"}));
    t::leak_check leaks(proxy);
    fd_t c1(t::connect_to(proxy.port(), v6()));
    ASSERT_TRUE(c1);
    expect_echo(c1.get(), "one");
    fd_t c2(t::connect_to(proxy.port(), v6()));
    ASSERT_TRUE(c2);
    expect_echo(c2.get(), "two");
    ASSERT_EQ(up.accepted(), 2u);

    // The third is accepted by the kernel, then closed without being relayed.
    fd_t c3(t::connect_to(proxy.port(), v6()));
    if (c3) {
        t::send_all(c3.get(), "three"); // may fail once the reset arrived
        int err = -1;
        EXPECT_EQ(t::recv_to_eof(c3.get(), err, 3s), "");
        EXPECT_TRUE(closed_by_peer(err)) << std::strerror(err);
    }
    EXPECT_TRUE(proxy.wait_for_log("max-connections (2) reached", 5s)) << proxy.log();
    EXPECT_EQ(up.accepted(), 2u) << "the excess connection reached the upstream";

    // The two admitted sessions are unaffected.
    expect_echo(c1.get(), "one again");
    expect_echo(c2.get(), "two again");

    // Ending one session frees a slot.
    ASSERT_EQ(::shutdown(c1.get(), SHUT_WR), 0);
    int err = -1;
    EXPECT_EQ(t::recv_to_eof(c1.get(), err, 5s), "");
    EXPECT_EQ(err, 0);
    ASSERT_TRUE(proxy.wait_for_log("close=completed", 5s)) << proxy.log();
    c1.reset();
    fd_t c4(t::connect_to(proxy.port(), v6()));
    ASSERT_TRUE(c4);
    expect_echo(c4.get(), "four");
    EXPECT_EQ(up.accepted(), 3u);
    EXPECT_EQ(t::count_of(proxy.log(), "max-connections (2) reached"), 1u) << proxy.log();
    c2.reset();
    c4.reset();
    EXPECT_TRUE(leaks.settled());
}

TEST_P(relay, backpressure_bounds_memory_and_keeps_bytes_exact) {
    t::listener up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}));
    t::leak_check leaks(proxy);
    auto [c, u] = t::connect_through(proxy.port(), up,
                                     v6()); // accepted, but not read from until the push is over
    ASSERT_TRUE(c && u);

    const long base = t::rss_kib(proxy.pid());
    ASSERT_GT(base, 0);
    long peak = base;
    set_nonblocking(c.get());
    byte_stream gen(0xb5c0ffee);
    std::string buf(64 * 1024, '\0');
    std::size_t off = buf.size();
    std::uint64_t pushed = 0;
    constexpr std::uint64_t limit = 200ull << 20;
    const auto t0 = steady_clock::now();
    auto last_sample = t0;
    while (steady_clock::now() - t0 < 2s && pushed < limit) {
        if (off == buf.size()) {
            gen.fill(buf.data(), buf.size());
            off = 0;
        }
        const ssize_t n = ::send(c.get(), buf.data() + off, buf.size() - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += static_cast<std::size_t>(n);
            pushed += static_cast<std::uint64_t>(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            pollfd p{c.get(), POLLOUT, 0};
            ::poll(&p, 1, 20);
        } else {
            FAIL() << "client send failed: " << std::strerror(errno);
        }
        if (steady_clock::now() - last_sample > 20ms) {
            peak = std::max(peak, t::rss_kib(proxy.pid()));
            last_sample = steady_clock::now();
        }
    }
    peak = std::max(peak, t::rss_kib(proxy.pid()));
    const long growth_kib = peak - base;
    std::cout << "[ backpressure ] pushed " << (pushed >> 10) << " KiB in 2s; nodelayd RSS " << base
              << " -> peak " << peak << " KiB (+" << growth_kib << " KiB)\n";
    RecordProperty("pushed_kib", static_cast<int>(pushed >> 10));
    RecordProperty("rss_growth_kib", static_cast<int>(growth_kib));
    EXPECT_LT(pushed, limit) << "the client was never blocked: nothing pushed back";
    EXPECT_LT(growth_kib, 16 * 1024) << "nodelayd buffered what the upstream did not read";
    EXPECT_LT(static_cast<std::uint64_t>(growth_kib) * 1024, pushed / 4)
        << "nodelayd's memory grew with the bytes pushed";
    ASSERT_EQ(::shutdown(c.get(), SHUT_WR), 0);

    // Now the upstream drains everything: exactly the pushed bytes, in order, then EOF.
    byte_stream expect(0xb5c0ffee);
    std::string want(64 * 1024, '\0');
    std::uint64_t received = 0;
    std::uint64_t mismatch_at = UINT64_MAX;
    bool eof = false;
    const auto deadline = steady_clock::now() + 30s;
    while (!eof && steady_clock::now() < deadline) {
        std::string got = t::recv_n(u.get(), 64 * 1024, 5s);
        if (got.empty()) {
            int err = -1;
            t::recv_to_eof(u.get(), err, 5s);
            eof = err == 0;
            break;
        }
        expect.fill(want.data(), got.size());
        if (mismatch_at == UINT64_MAX && std::memcmp(got.data(), want.data(), got.size()) != 0)
            mismatch_at = received;
        received += got.size();
    }
    EXPECT_TRUE(eof) << "upstream did not see EOF after " << received << " bytes";
    EXPECT_EQ(received, pushed);
    EXPECT_EQ(mismatch_at, UINT64_MAX) << "bytes differ from offset ~" << mismatch_at;
    u.reset();
    EXPECT_TRUE(leaks.settled());
}

/// What one end of a bidirectional random-chunk stream saw.
struct stream_result {
    digest sent;
    digest received;
    bool sent_ok = true;
    bool received_ok = true;
};

/// Sends `bytes` of `seed`'s stream in random chunks while reading to EOF in random chunks,
/// half-closing when done sending (`half_close`), or closing fully after both are done.
void bidirectional(int fd, std::uint64_t seed, std::size_t bytes, bool half_close,
                   stream_result& out) {
    std::thread writer([&] {
        byte_stream gen(seed);
        std::mt19937_64 rng(seed * 31 + 1);
        std::size_t left = bytes;
        while (left > 0) {
            const std::size_t n = std::min(left, random_chunk(rng));
            const std::string piece = gen.take(n);
            if (!t::send_all(fd, piece)) {
                out.sent_ok = false;
                break;
            }
            out.sent.add(piece.data(), n);
            left -= n;
        }
        if (half_close)
            ::shutdown(fd, SHUT_WR);
    });
    std::mt19937_64 rng(seed * 17 + 3);
    std::vector<char> buf(65536);
    for (;;) {
        const std::size_t want = random_chunk(rng);
        const ssize_t n = ::recv(fd, buf.data(), want, 0);
        if (n > 0) {
            out.received.add(buf.data(), static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            out.received_ok = false; // includes the 10 s SO_RCVTIMEO
        break;
    }
    writer.join();
    if (!half_close)
        ::close(fd);
}

TEST_P(relay, random_chunks_both_ways_are_byte_exact) {
    constexpr int connections = 8;
    constexpr std::size_t bytes = 2 * 1024 * 1024 + 12345;
    t::listener up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}, {}, "2"));
    t::leak_check leaks(proxy);

    std::vector<stream_result> upstream_side(connections);
    std::vector<std::thread> servers;
    std::thread acceptor([&] {
        for (int i = 0; i < connections; ++i) {
            const int fd = up.accept(10s);
            if (fd < 0)
                break;
            servers.emplace_back([&, fd, i] {
                // The upstream closes once it has read EOF and finished sending.
                bidirectional(fd, 1000 + static_cast<std::uint64_t>(i), bytes, false,
                              upstream_side[static_cast<std::size_t>(i)]);
            });
        }
    });
    std::vector<stream_result> client_side(connections);
    std::vector<fd_t> clients;
    for (int i = 0; i < connections; ++i)
        clients.emplace_back(t::connect_to(proxy.port(), v6()));
    std::vector<std::thread> drivers;
    for (int i = 0; i < connections; ++i) {
        if (!clients[static_cast<std::size_t>(i)])
            continue;
        drivers.emplace_back([&, i] {
            const auto k = static_cast<std::size_t>(i);
            bidirectional(clients[k].get(), static_cast<std::uint64_t>(i), bytes, true,
                          client_side[k]);
        });
    }
    for (auto& d : drivers)
        d.join();
    acceptor.join();
    for (auto& s : servers)
        s.join();

    for (int i = 0; i < connections; ++i)
        ASSERT_TRUE(clients[static_cast<std::size_t>(i)]) << "connect " << i << " failed";
    ASSERT_EQ(servers.size(), static_cast<std::size_t>(connections));

    // Upstream connections arrive in any order: compare the sets of streams.
    std::vector<digest> c_sent, c_recv, u_sent, u_recv;
    for (const auto& r : client_side) {
        EXPECT_TRUE(r.sent_ok && r.received_ok) << "client side I/O failed";
        c_sent.push_back(r.sent);
        c_recv.push_back(r.received);
    }
    for (const auto& r : upstream_side) {
        EXPECT_TRUE(r.sent_ok && r.received_ok) << "upstream side I/O failed";
        u_sent.push_back(r.sent);
        u_recv.push_back(r.received);
    }
    for (auto* v : {&c_sent, &c_recv, &u_sent, &u_recv})
        std::sort(v->begin(), v->end());
    for (const auto& d : c_sent)
        ASSERT_EQ(d.length, bytes);
    EXPECT_EQ(c_sent, u_recv) << "client -> upstream streams differ";
    EXPECT_EQ(u_sent, c_recv) << "upstream -> client streams differ";
    EXPECT_TRUE(proxy.wait_for_log("close=completed", 5s, connections)) << proxy.log();
    EXPECT_TRUE(leaks.settled());
}

TEST_P(relay, sigterm_stops_accepting_and_lets_open_sessions_finish) {
    echo_server up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}, {}, "2"));
    fd_t c(t::connect_to(proxy.port(), v6()));
    ASSERT_TRUE(c);
    expect_echo(c.get(), "before");

    proxy.signal(SIGTERM);
    ASSERT_TRUE(proxy.wait_for_log("shutting down", 5s)) << proxy.log();
    // Every worker closes its listener (each worker has one; SO_REUSEPORT shares the port).
    const auto deadline = steady_clock::now() + 3s;
    while (t::listening_sockets(proxy.port(), v6()) > 0 && steady_clock::now() < deadline)
        std::this_thread::sleep_for(10ms);
    EXPECT_EQ(t::listening_sockets(proxy.port(), v6()), 0)
        << "nodelayd still listens after SIGTERM";
    for (int i = 0; i < 3; ++i) {
        fd_t n(t::connect_to(proxy.port(), v6()));
        if (n) {
            // Accepted by the kernel: it must at least not be relayed.
            int err = -1;
            t::recv_to_eof(n.get(), err, 2s);
            EXPECT_EQ(err, ECONNRESET) << "a connection made after SIGTERM was not refused";
        }
    }
    EXPECT_EQ(up.accepted(), 1u) << "a connection made after SIGTERM reached the upstream";

    // The open session still relays, and the process exits cleanly once it ends.
    expect_echo(c.get(), "after SIGTERM");
    EXPECT_TRUE(proxy.running());
    ASSERT_EQ(::shutdown(c.get(), SHUT_WR), 0);
    int err = -1;
    EXPECT_EQ(t::recv_to_eof(c.get(), err, 5s), "");
    EXPECT_EQ(err, 0);
    EXPECT_EQ(proxy.wait_exit(5s), 0) << proxy.log();
    EXPECT_NE(proxy.log().find("stopped"), std::string::npos) << proxy.log();
}

// Nothing but finished sessions' leftovers (the idle sweep's timer, armed for up to 1 s by
// the last session) may keep a stopping daemon alive: it exits at once when no session is
// open, and right after the last one ends. Seen failing before the registry drained its
// timer: ~1 s in both cases.
TEST_P(relay, sigterm_exits_promptly_once_no_session_is_left) {
    echo_server up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}));
    auto one_session = [&](const char* text) {
        fd_t c(t::connect_to(proxy.port(), v6()));
        EXPECT_TRUE(c);
        expect_echo(c.get(), text);
        return c;
    };
    {
        fd_t c = one_session("gone before SIGTERM");
        ASSERT_EQ(::shutdown(c.get(), SHUT_WR), 0);
        int err = -1;
        EXPECT_EQ(t::recv_to_eof(c.get(), err, 5s), "");
    }
    ASSERT_TRUE(proxy.wait_for_log("close=completed", 5s)) << proxy.log();
    auto t0 = steady_clock::now();
    proxy.signal(SIGTERM);
    EXPECT_EQ(proxy.wait_exit(5s), 0) << proxy.log();
    EXPECT_LT(seconds_since(t0), 0.4) << "no session was open";

    t::proxy_process second(proxy_args(v6(), {up.port()}));
    fd_t c(t::connect_to(second.port(), v6()));
    ASSERT_TRUE(c);
    expect_echo(c.get(), "open during SIGTERM");
    second.signal(SIGTERM);
    ASSERT_TRUE(second.wait_for_log("shutting down", 5s)) << second.log();
    std::this_thread::sleep_for(50ms);
    ASSERT_EQ(::shutdown(c.get(), SHUT_WR), 0);
    int err = -1;
    EXPECT_EQ(t::recv_to_eof(c.get(), err, 5s), "");
    t0 = steady_clock::now();
    EXPECT_EQ(second.wait_exit(5s), 0) << second.log();
    EXPECT_LT(seconds_since(t0), 0.4) << "the last session had ended";
}

TEST_P(relay, shutdown_timeout_closes_lingering_sessions) {
    echo_server up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}, {"--shutdown-timeout", "500ms"}, "2"));
    fd_t c(t::connect_to(proxy.port(), v6()));
    ASSERT_TRUE(c);
    expect_echo(c.get(), "linger");

    const auto t0 = steady_clock::now();
    proxy.signal(SIGTERM);
    const int status = proxy.wait_exit(8s);
    const double took = seconds_since(t0);
    EXPECT_EQ(status, 0) << proxy.log();
    EXPECT_GE(took, 0.45);
    EXPECT_LT(took, 5.0);
    int err = -1;
    EXPECT_EQ(t::recv_to_eof(c.get(), err, 3s), "");
    EXPECT_TRUE(closed_by_peer(err)) << std::strerror(err);
    EXPECT_NE(proxy.log().find("shutdown timeout reached"), std::string::npos) << proxy.log();
    EXPECT_NE(proxy.log().find("close=shutdown"), std::string::npos) << proxy.log();
}

// The "listening on" line is the readiness signal (proxy_process, tests/e2e): from then on
// SIGTERM must mean a graceful shutdown with exit status 0, never death by the signal.
TEST(lifecycle, sigterm_right_after_readiness_exits_zero) {
    echo_server up(false);
    for (int i = 0; i < 100; ++i) {
        t::proxy_process proxy(proxy_args(false, {up.port()}));
        proxy.signal(SIGTERM);
        const int status = proxy.wait_exit(5s);
        ASSERT_EQ(status, 0) << "attempt " << i << ": status " << status
                             << (status == 128 + SIGTERM ? " (killed by SIGTERM)" : "")
                             << "\nlog:\n"
                             << proxy.log();
    }
}

// A tick of the status/watchdog timer already due when the last worker exited re-armed the
// timer after the shutdown had cancelled it, so the daemon never exited (found by the TSan
// suite: e2e_stats hung after SIGTERM about one run in ten). A 1 ms watchdog (a tick every
// 0.5 ms, always due) made it certain.
TEST(lifecycle, sigterm_exits_while_the_watchdog_ticks) {
    echo_server up(false);
    for (int i = 0; i < 5; ++i) {
        t::proxy_process proxy(proxy_args(false, {up.port()}), 1, {"env", "WATCHDOG_USEC=1000"});
        proxy.signal(SIGTERM);
        const int status = proxy.wait_exit(5s);
        ASSERT_EQ(status, 0) << "attempt " << i << ": status " << status
                             << (status < 0 ? " (still running 5 s after SIGTERM)" : "")
                             << "\nlog:\n"
                             << proxy.log();
    }
}

/// Write-write-read for `rounds` rounds with Nagle on at both test ends; returns seconds.
double write_write_read(bool v6, const std::vector<std::string>& extra, int rounds) {
    t::listener up(v6);
    t::proxy_process proxy(proxy_args(v6, {up.port()}, extra));
    std::atomic<bool> server_ok{true};
    std::thread server([&] {
        fd_t u(up.accept(5s));
        if (!u) {
            server_ok = false;
            return;
        }
        for (int i = 0; i < rounds; ++i) {
            const std::string req = t::recv_n(u.get(), 20, 10s);
            if (req.size() != 20 || !t::send_all(u.get(), req.substr(0, 10)) ||
                !t::send_all(u.get(), req.substr(10))) {
                server_ok = false;
                return;
            }
        }
        int err = -1;
        t::recv_to_eof(u.get(), err, 10s);
    });
    double took = -1;
    {
        fd_t c(t::connect_to(proxy.port(), v6));
        EXPECT_TRUE(c);
        if (c) {
            const auto t0 = steady_clock::now();
            for (int i = 0; i < rounds; ++i) {
                const std::string a(10, static_cast<char>('A' + i % 26));
                const std::string b(10, static_cast<char>('a' + i % 26));
                if (!t::send_all(c.get(), a) || !t::send_all(c.get(), b)) {
                    ADD_FAILURE() << "send failed in round " << i;
                    break;
                }
                const std::string got = t::recv_n(c.get(), 20, 10s);
                if (got != a + b) {
                    ADD_FAILURE() << "round " << i << " got '" << got << "'";
                    break;
                }
            }
            took = seconds_since(t0);
            ::shutdown(c.get(), SHUT_WR);
        }
    }
    server.join();
    EXPECT_TRUE(server_ok);
    return took;
}

TEST_P(relay, quickack_prevents_nagle_delayed_ack_stalls) {
    const double took = write_write_read(v6(), {}, 50);
    std::cout << "[ quickack ] 50 write-write-read rounds, defaults: " << took << " s\n";
    RecordProperty("wwr_defaults_ms", static_cast<int>(took * 1000));
    EXPECT_GE(took, 0.0);
    EXPECT_LT(took, 1.0) << "50 rounds with a 40 ms stall each would take 2 s or more";
}

TEST_P(relay, without_quickack_write_write_read_stalls) {
    const double took =
        write_write_read(v6(), {"--client-quickack", "off", "--upstream-quickack", "off"}, 50);
    std::cout << "[ quickack ] 50 write-write-read rounds, quickack off: " << took << " s\n";
    RecordProperty("wwr_quickack_off_ms", static_cast<int>(took * 1000));
    EXPECT_GT(took, 1.0) << "expected delayed-ACK stalls with quickack off on both sides";
}

} // namespace
