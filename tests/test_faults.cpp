// Fault suite (issue 6): faults and bad input lose nothing, leave nothing stuck and let
// nothing in. Each test drives the real daemon over loopback, bounds its time, stops what it
// started and ends with relay_kit's leak_check: the daemon's descriptors back to the count
// before the test's traffic, no session active, and no unexpected error line in its log.
//
// Every test was seen failing once with the behaviour broken (options that disable it, or a
// locally patched daemon run through NODELAYD_TEST_BIN); each says how in its comment.
//
//   NODELAYD_FAULT_SEED=N     seed of the randomized differential run (printed by the test)
//   NODELAYD_FAULT_CONNECTIONS=N  its connections per address family (default 4000)
//   NODELAYD_SOAK_SECONDS=N   length of the soak (default 60; 600 for the long run)

#include "relay_kit.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

namespace t = nodelayd::testing;
using namespace std::chrono;
using namespace std::chrono_literals;
using t::address;
using t::byte_stream;
using t::digest;
using t::echo_server;
using t::expect_echo;
using t::fd_t;
using t::proxy_args;
using t::seconds_since;

/// An unsigned number from the environment, or `fallback`.
std::uint64_t env_number(const char* name, std::uint64_t fallback) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 0) : fallback;
}

/// Reads everything until EOF or reset (bounded), adding it to `d`; returns the errno-style end.
int drain_into(int fd, digest& d, milliseconds limit) {
    const auto deadline = steady_clock::now() + limit;
    std::string buf(64 * 1024, '\0');
    for (;;) {
        const auto left = duration_cast<milliseconds>(deadline - steady_clock::now());
        pollfd p{fd, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0)
            return ETIMEDOUT;
        const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n > 0) {
            d.add(buf.data(), static_cast<std::size_t>(n));
            continue;
        }
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return errno;
    }
}

/// Sends `bytes` of `seed`'s stream in 64 KiB pieces, counting into `sent` as it goes;
/// returns false once a send fails (or `stop` is set).
bool push_stream(int fd, std::uint64_t seed, std::uint64_t bytes, std::atomic<std::uint64_t>& sent,
                 const std::atomic<bool>& stop) {
    byte_stream gen(seed);
    std::string buf(64 * 1024, '\0');
    while (sent < bytes && !stop) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), bytes - sent));
        gen.fill(buf.data(), n);
        if (!t::send_all(fd, buf.substr(0, n)))
            return false;
        sent += n;
    }
    return true;
}

class faults : public t::loopback_test {};

INSTANTIATE_TEST_SUITE_P(loopback, faults, ::testing::Values(false, true), t::family_name);

// ---------------------------------------------------------------------------------------------
// Half-close (both directions flowing after it: test_relay's half_close tests)

// One side closed its half, the other stays silent: closed after --half-closed-timeout, well
// before --idle-timeout. Seen failing with --half-closed-timeout 1m (nothing closed in 5 s).
TEST_P(faults, half_closed_idle_session_is_closed_at_the_half_closed_timeout) {
    for (const bool client_closes : {true, false}) {
        SCOPED_TRACE(client_closes ? "the client sent FIN" : "the upstream sent FIN");
        t::listener up(v6());
        t::proxy_process proxy(proxy_args(
            v6(), {up.port()}, {"--half-closed-timeout", "400ms", "--idle-timeout", "1m"}));
        t::leak_check leaks(proxy);
        auto [c, u] = t::connect_through(proxy.port(), up, v6());
        ASSERT_TRUE(c && u);
        const int closer = client_closes ? c.get() : u.get();
        const int other = client_closes ? u.get() : c.get();

        ASSERT_TRUE(t::send_all(closer, "last words"));
        ASSERT_EQ(::shutdown(closer, SHUT_WR), 0);
        int err = -1;
        EXPECT_EQ(t::recv_to_eof(other, err, 5s), "last words");
        EXPECT_EQ(err, 0);
        ASSERT_TRUE(t::send_all(other, "still open"));
        EXPECT_EQ(t::recv_n(closer, 10, 5s), "still open");
        const auto t0 = steady_clock::now(); // the last byte moved

        EXPECT_TRUE(t::closed_between(closer, t0, 0.35, 2.5));
        EXPECT_TRUE(proxy.wait_for_log("close=half-closed-timeout", 5s)) << proxy.log();
        EXPECT_TRUE(leaks.settled());
    }
}

// ---------------------------------------------------------------------------------------------
// Resets (propagated as resets: test_relay's reset tests)

// A client that connects and resets while the daemon cannot accept yet (stopped) is dead by
// the time it is accepted: its address is gone, so nothing is relayed and no upstream is
// told a made-up source (it used to get "PROXY TCP4 0.0.0.0 ... 0 ..."; found by the
// randomized differential run).
TEST_P(faults, client_reset_while_queued_reaches_no_upstream) {
    t::listener up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}, {"--send-proxy", "v1"}));
    t::leak_check leaks(proxy);
    proxy.signal(SIGSTOP);
    for (int i = 0; i < 3; ++i) {
        fd_t c(t::connect_to(proxy.port(), v6()));
        ASSERT_TRUE(c);
        ASSERT_TRUE(t::send_all(c.get(), "gone"));
        t::close_with_reset(c.release());
    }
    proxy.signal(SIGCONT);
    EXPECT_TRUE(proxy.wait_for_log("close=client-reset", 5s, 3)) << proxy.log();
    fd_t u(up.accept(500ms));
    EXPECT_FALSE(u) << "the upstream got '" << (u ? t::recv_n(u.get(), 60, 1s) : "") << "'";
    EXPECT_TRUE(leaks.settled());
}

// ---------------------------------------------------------------------------------------------
// Upstreams that fail (refused, connect timeout, failover on refusal: test_relay)

// The upstream process dies (SIGKILL) while bytes flow both ways; its kernel answers the
// bytes it never read with RST, and the client must see that reset, never a clean EOF that
// would pass for a complete response. Seen failing with a daemon patched to close the client
// with FIN on upstream-reset (the client read EOF).
TEST_P(faults, upstream_dying_mid_stream_resets_the_client) {
    t::listener up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}));
    t::leak_check leaks(proxy);
    auto [c, u] = t::connect_through(proxy.port(), up, v6());
    ASSERT_TRUE(c && u);

    constexpr std::size_t response = 256 * 1024;
    const std::string data = byte_stream(77).take(response);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // Only raw system calls after fork() in a threaded process.
        std::size_t off = 0;
        while (off < data.size()) {
            const ssize_t n = ::send(u.get(), data.data() + off, data.size() - off, MSG_NOSIGNAL);
            if (n <= 0)
                ::_exit(1);
            off += static_cast<std::size_t>(n);
        }
        for (;;)
            ::pause(); // reads nothing more: what the client sends stays unread
    }
    u.reset(); // the child holds the upstream socket now

    EXPECT_EQ(t::recv_n(c.get(), response, 10s), data);
    ASSERT_TRUE(t::send_all(c.get(), std::string(32 * 1024, 'q')));
    // Let the request reach the child's receive queue before it dies.
    std::this_thread::sleep_for(200ms);
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);

    int err = -1;
    EXPECT_EQ(t::recv_to_eof(c.get(), err, 5s), "");
    EXPECT_EQ(err, ECONNRESET) << "client got " << (err ? std::strerror(err) : "a clean EOF");
    EXPECT_TRUE(proxy.wait_for_log("close=upstream-reset", 5s)) << proxy.log();
    c.reset();
    EXPECT_TRUE(leaks.settled());
}

// An upstream that answers and closes with the request unread sends its answer and then RST
// (iperf3's "server is busy" does). The client reads the answer, then the reset, as on a
// direct connection and through HAProxy. Seen failing before the relay wrote out what it had
// read ahead of a failed read: the answer was lost in 22 of 30 connections.
TEST_P(faults, upstream_answer_before_its_reset_reaches_the_client) {
    t::listener up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}));
    t::leak_check leaks(proxy);
    for (int i = 0; i < 20; ++i) {
        auto [c, u] = t::connect_through(proxy.port(), up, v6());
        ASSERT_TRUE(c && u);
        ASSERT_TRUE(t::send_all(c.get(), "request"));
        pollfd request{u.get(), POLLIN, 0};
        ASSERT_EQ(::poll(&request, 1, 5000), 1); // unread at the upstream: its close is a reset
        ASSERT_TRUE(t::send_all(u.get(), "busy"));
        t::close_with_reset(u.release());
        int err = -1;
        EXPECT_EQ(t::recv_to_eof(c.get(), err, 5s), "busy") << "connection " << i;
        EXPECT_EQ(err, ECONNRESET) << "connection " << i;
    }
    EXPECT_TRUE(proxy.wait_for_log("close=upstream-reset", 5s, 20)) << proxy.log();
    EXPECT_TRUE(leaks.settled());
}

// Round-robin sends every other connection to a server that never answers the SYN first:
// each of those waits out --connect-timeout, then the next server relays it. Seen failing
// with a daemon patched to try only the first server (half the connections were reset).
TEST_P(faults, connect_timeout_fails_over_to_the_next_server) {
    t::silent_upstream silent(v6());
    ASSERT_TRUE(silent.hangs()) << "precondition: connects to the full listener complete";
    echo_server live(v6());
    t::proxy_process proxy(
        proxy_args(v6(), {silent.port(), live.port()}, {"--connect-timeout", "300ms"}));
    t::leak_check leaks(proxy);
    constexpr int connections = 4;
    for (int i = 0; i < connections; ++i) {
        SCOPED_TRACE("connection " + std::to_string(i));
        fd_t c(t::connect_to(proxy.port(), v6()));
        ASSERT_TRUE(c);
        const auto t0 = steady_clock::now();
        expect_echo(c.get(), "via the live server " + std::to_string(i));
        EXPECT_LT(seconds_since(t0), 3.0);
    }
    EXPECT_EQ(live.accepted(), static_cast<std::size_t>(connections));
    EXPECT_TRUE(proxy.wait_for_log("timed out after 300ms", 5s, connections / 2)) << proxy.log();
    EXPECT_TRUE(proxy.wait_for_log("close=completed", 5s, connections)) << proxy.log();
    EXPECT_EQ(t::scrape_metric(leaks.stats(), "nodelayd_upstream_connect_failures_total"),
              connections / 2);
    EXPECT_TRUE(leaks.settled());
}

// ---------------------------------------------------------------------------------------------
// A slow, then stopped reader

// 200 MB pushed at a client that does not read: the daemon holds at most --buffer-size of it
// (plus allocator slack), whether it copies or splices; then the client reads and gets every
// byte in order. Seen failing with --buffer-size 64m passed to the daemon while the bound
// assumes 1m (RSS grew by ~64 MiB).
TEST_P(faults, stopped_reader_keeps_memory_bounded_then_gets_every_byte) {
    constexpr std::uint64_t total = 200ull << 20;
    constexpr long buffer_kib = 1024; // --buffer-size 1m
    for (const char* splice : {"off", "on"}) {
        SCOPED_TRACE(std::string("--splice ") + splice);
        t::listener up(v6());
        t::proxy_process proxy(
            proxy_args(v6(), {up.port()}, {"--buffer-size", "1m", "--splice", splice}));
        t::leak_check leaks(proxy);
        auto [c, u] = t::connect_through(proxy.port(), up, v6());
        ASSERT_TRUE(c && u);

        const long base = t::rss_kib(proxy.pid());
        ASSERT_GT(base, 0);
        std::atomic<long> peak{base};
        std::atomic<bool> stop{false};
        std::thread sampler([&] {
            while (!stop) {
                peak = std::max(peak.load(), t::rss_kib(proxy.pid()));
                std::this_thread::sleep_for(10ms);
            }
        });
        std::atomic<std::uint64_t> pushed{0};
        std::atomic<bool> never{false};
        std::thread pusher([&] {
            // SO_SNDTIMEO (10 s) bounds each send; the stall below lasts 2 s.
            if (push_stream(u.get(), 0x51070, total, pushed, never))
                ::shutdown(u.get(), SHUT_WR);
        });
        std::this_thread::sleep_for(2s);
        const std::uint64_t stalled_at = pushed;
        const long stalled_peak = peak;

        digest got;
        const int err = drain_into(c.get(), got, 60s);
        pusher.join();
        stop = true;
        sampler.join();
        std::cout << "[ stopped reader ] splice " << splice << ": upstream blocked after "
                  << (stalled_at >> 10) << " KiB; RSS " << base << " KiB -> " << stalled_peak
                  << " KiB stalled, " << peak << " KiB peak\n";
        EXPECT_LT(stalled_at, 64ull << 20) << "nothing pushed back on the upstream";
        EXPECT_LT(stalled_peak - base, 2 * buffer_kib + 6 * 1024)
            << "the daemon buffered more than --buffer-size for a stopped reader";
        EXPECT_LT(peak - base, 2 * buffer_kib + 6 * 1024) << "memory grew while draining";
        EXPECT_EQ(err, 0) << std::strerror(err);
        EXPECT_EQ(pushed.load(), total);
        EXPECT_TRUE(got == t::digest_of_stream(0x51070, total))
            << "received " << got.length << " bytes, not the " << total << " pushed, in order";
        u.reset();
        c.reset();
        EXPECT_TRUE(leaks.settled());
    }
}

// ---------------------------------------------------------------------------------------------
// Limits

// Idle sessions fill --max-connections (across two workers); every connection past it is
// reset at once (not closed with FIN, not relayed), logged at warn and counted, and the
// admitted sessions are unaffected. Seen failing with --max-connections 1000 passed to the
// daemon (the excess connections were relayed).
TEST_P(faults, max_connections_admits_that_many_idle_sessions_then_resets) {
    constexpr int max = 200;
    constexpr int excess = 5;
    echo_server up(v6());
    t::proxy_process proxy(
        proxy_args(v6(), {up.port()}, {"--max-connections", std::to_string(max)}, "2"));
    t::leak_check leaks(proxy);
    std::vector<fd_t> clients;
    for (int i = 0; i < max; ++i) {
        clients.emplace_back(t::connect_to(proxy.port(), v6()));
        ASSERT_TRUE(clients.back()) << "connect " << i;
    }
    const auto deadline = steady_clock::now() + 20s;
    while (up.accepted() < static_cast<std::size_t>(max) && steady_clock::now() < deadline)
        std::this_thread::sleep_for(20ms);
    ASSERT_EQ(up.accepted(), static_cast<std::size_t>(max));
    EXPECT_EQ(t::scrape_metric(leaks.stats(), "nodelayd_connections_active"), max);

    for (int i = 0; i < excess; ++i) {
        fd_t extra(t::connect_to(proxy.port(), v6()));
        ASSERT_TRUE(extra);
        int err = -1;
        EXPECT_EQ(t::recv_to_eof(extra.get(), err, 3s), "");
        EXPECT_EQ(err, ECONNRESET)
            << "refused connection " << i << " got " << (err ? std::strerror(err) : "a clean EOF");
    }
    EXPECT_TRUE(proxy.wait_for_log("max-connections (200) reached", 5s, excess)) << proxy.log();
    EXPECT_NE(proxy.log().find(" warning route=default refused a connection"), std::string::npos)
        << proxy.log();
    EXPECT_EQ(t::scrape_metric(leaks.stats(), "nodelayd_connections_refused_total"), excess);
    EXPECT_EQ(up.accepted(), static_cast<std::size_t>(max)) << "an excess connection was relayed";
    expect_echo(clients.front().get(), "first still works");
    expect_echo(clients.back().get(), "last still works");
    clients.clear();
    EXPECT_TRUE(leaks.settled());
}

// Under `prlimit --nofile=64:64` the daemon runs out of descriptors: accept() fails with
// EMFILE while connections wait in the backlog. It must pause instead of retrying at once
// (under 20% of a core over 2 s), warn once (at most every 10 s) rather than every 100 ms,
// and relay again once descriptors free up. Seen failing with a daemon patched to retry
// accept at once (~100% of a core), and with one warning per pause (21 in the test).
TEST_P(faults, out_of_descriptors_backs_off_then_recovers) {
    echo_server up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}), 1, {"prlimit", "--nofile=64:64"});
    t::leak_check leaks(proxy);
    std::vector<fd_t> clients;
    const std::string emfile = "accept: Too many open files";
    // Bursts: one connection at a time could always find the descriptor the previous
    // refused one freed, and accept() itself would never fail.
    while (clients.size() < 96 && !proxy.wait_for_log(emfile, 50ms))
        for (int i = 0; i < 8; ++i) {
            clients.emplace_back(t::connect_to(proxy.port(), v6()));
            ASSERT_TRUE(clients.back()) << "connect " << clients.size();
        }
    ASSERT_TRUE(proxy.wait_for_log(emfile, 5s)) << proxy.log();

    // Clients keep waiting in the backlog: measure while the daemon cannot accept them. Its
    // log is drained meanwhile, so a spinning daemon is not held back by a full pipe.
    const double cpu0 = t::cpu_seconds(proxy.pid());
    const auto t0 = steady_clock::now();
    while (steady_clock::now() - t0 < 2s) {
        proxy.log();
        std::this_thread::sleep_for(50ms);
    }
    const double cpu = (t::cpu_seconds(proxy.pid()) - cpu0) / seconds_since(t0);
    std::cout << "[ out of descriptors ] " << clients.size() << " connections; daemon CPU "
              << cpu * 100 << "% of a core\n";
    EXPECT_LT(cpu, 0.2) << "the daemon spins on accept";
    // Warned about once (at most every 10 s), not once per 100 ms pause.
    EXPECT_EQ(t::count_of(proxy.log(), emfile), 1u) << proxy.log();

    clients.clear();
    const auto deadline = steady_clock::now() + 10s;
    bool relayed = false;
    while (!relayed && steady_clock::now() < deadline) {
        fd_t c(t::connect_to(proxy.port(), v6()));
        ASSERT_TRUE(c);
        relayed = t::send_all(c.get(), "back in service") &&
                  t::recv_n(c.get(), 15, 2s) == "back in service";
    }
    EXPECT_TRUE(relayed) << proxy.log();
    EXPECT_TRUE(leaks.settled());
}

// ---------------------------------------------------------------------------------------------
// Idle timeouts (after traffic stopped: test_relay's idle tests)

// A session that never carried a byte closes at --idle-timeout. Seen failing with
// --idle-timeout 1m (still open after 5 s).
TEST_P(faults, idle_timeout_closes_a_session_that_never_carried_a_byte) {
    t::listener up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}, {"--idle-timeout", "300ms"}));
    t::leak_check leaks(proxy);
    const auto t0 = steady_clock::now();
    auto [c, u] = t::connect_through(proxy.port(), up, v6());
    ASSERT_TRUE(c && u);
    EXPECT_TRUE(t::closed_between(c.get(), t0, 0.25, 3.0));
    EXPECT_TRUE(t::closed_between(u.get(), t0, 0.25, 3.0));
    EXPECT_TRUE(proxy.wait_for_log("bytes_c2u=0 bytes_u2c=0", 5s)) << proxy.log();
    EXPECT_TRUE(proxy.wait_for_log("close=idle-timeout", 5s)) << proxy.log();
    EXPECT_TRUE(leaks.settled());
}

// The upstream pushes until the client, which stopped reading, holds the session's buffers
// full; neither side moves a byte after that, so --idle-timeout closes it, queued bytes and
// all. Seen failing with --idle-timeout 1m.
TEST_P(faults, idle_timeout_closes_a_session_stalled_on_a_peer_that_stopped_reading) {
    t::listener up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}, {"--idle-timeout", "1s"}));
    t::leak_check leaks(proxy);
    auto [c, u] = t::connect_through(proxy.port(), up, v6());
    ASSERT_TRUE(c && u);
    t::set_nonblocking(u.get());
    const std::string block(64 * 1024, 's');
    std::uint64_t pushed = 0;
    auto last_progress = steady_clock::now();
    // Push until nothing went for 100 ms: everything is full up to the stopped client.
    while (steady_clock::now() - last_progress < 100ms) {
        const ssize_t n = ::send(u.get(), block.data(), block.size(), MSG_NOSIGNAL);
        if (n > 0) {
            pushed += static_cast<std::uint64_t>(n);
            last_progress = steady_clock::now();
        } else {
            ASSERT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << std::strerror(errno);
            std::this_thread::sleep_for(5ms);
        }
        ASSERT_LT(pushed, 256ull << 20) << "the stopped client never pushed back";
    }
    // The upstream's last send is a late mark of the relay's last move: with the relay
    // stopped, the kernel can still take bytes into its receive buffer, a zero window
    // reopened by a probe ~200 ms later (seen: 0.3 s with a 1 MiB splice pipe). Hence the
    // slack below the 1 s timeout.
    const auto t0 = last_progress;
    EXPECT_TRUE(proxy.wait_for_log("close=idle-timeout", 5s)) << proxy.log();
    const double took = seconds_since(t0);
    EXPECT_GE(took, 0.5);
    EXPECT_LT(took, 3.0);
    // Both peers learn it: the upstream's next write fails or its read ends.
    pollfd p{u.get(), POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 3000), 1);
    c.reset();
    u.reset();
    EXPECT_TRUE(leaks.settled());
}

// ---------------------------------------------------------------------------------------------
// The stats endpoint of a running daemon under abuse

// Slowloris, a malformed request line, a 64 KiB header, pipelined and cut-off requests each
// get their status code (or the request timeout) and a closed connection, while a relayed
// ping-pong on the same daemon keeps every byte and never stalls. Seen failing with a daemon
// patched to give stats requests no deadline (the slowloris stayed open).
TEST_P(faults, stats_endpoint_abuse_leaves_the_relay_untouched) {
    echo_server up(v6());
    t::proxy_process proxy(proxy_args(v6(), {up.port()}));
    t::leak_check leaks(proxy);
    const std::uint16_t stats = leaks.stats();
    ASSERT_NE(stats, 0);

    std::atomic<bool> stop{false};
    std::atomic<int> rounds{0};
    std::atomic<int> wrong{0};
    std::atomic<long> worst_us{0};
    std::thread relayed([&] {
        fd_t c(t::connect_to(proxy.port(), v6()));
        byte_stream gen(99);
        while (c && !stop) {
            const std::string msg = gen.take(1024);
            const auto t0 = steady_clock::now();
            if (!t::send_all(c.get(), msg) || t::recv_n(c.get(), msg.size(), 5s) != msg) {
                ++wrong;
                return;
            }
            worst_us = std::max<long>(
                worst_us, duration_cast<microseconds>(steady_clock::now() - t0).count());
            ++rounds;
            std::this_thread::sleep_for(2ms);
        }
        if (!c)
            ++wrong;
    });

    // Slowloris: a header byte every 200 ms never completes the request in its 5 s.
    std::atomic<double> slowloris_closed_after{-1};
    std::thread slowloris([&] {
        fd_t s(t::connect_to(stats));
        const auto t0 = steady_clock::now();
        bool open = s && t::send_all(s.get(), "GET /metrics HTTP/1.1\r\nX-Slow: ");
        while (open && seconds_since(t0) < 10) {
            pollfd p{s.get(), POLLIN, 0};
            if (::poll(&p, 1, 200) != 0)
                break; // closed (or answered) by the server
            open = t::send_all(s.get(), "a");
        }
        int err = -1;
        t::recv_to_eof(s.get(), err, 2s);
        if (t::closed_by_peer(err) || !open)
            slowloris_closed_after = seconds_since(t0);
    });

    const auto malformed = t::http_exchange(stats, "BREW /pot HTCPCP/1.0 what\r\n\r\n");
    EXPECT_EQ(malformed.statuses, std::vector<int>{400}) << malformed.raw;
    EXPECT_TRUE(t::closed_by_peer(malformed.error)) << std::strerror(malformed.error);

    const auto huge = t::http_exchange(stats, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Huge: " +
                                                  std::string(64 * 1024, 'h') + "\r\n\r\n");
    EXPECT_EQ(huge.statuses, std::vector<int>{431}) << huge.raw.substr(0, 200);
    EXPECT_TRUE(t::closed_by_peer(huge.error)) << std::strerror(huge.error);

    const auto pipelined = t::http_exchange(stats, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                                                   "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                                                   "GET /nowhere HTTP/1.1\r\nHost: x\r\n"
                                                   "Connection: close\r\n\r\n");
    EXPECT_EQ(pipelined.statuses, (std::vector<int>{200, 200, 404}));
    EXPECT_EQ(pipelined.error, 0) << std::strerror(pipelined.error);

    for (int i = 0; i < 20; ++i) {
        fd_t cut(t::connect_to(stats));
        ASSERT_TRUE(cut);
        t::send_all(cut.get(), std::string("GET /metrics HTTP/1.1\r\nHo").substr(0, 3 + i));
        if (i % 2 == 0)
            t::close_with_reset(cut.release());
    }
    const auto after =
        t::http_exchange(stats, "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(after.statuses, std::vector<int>{200}) << after.raw;

    slowloris.join();
    EXPECT_GE(slowloris_closed_after.load(), 4.0) << "closed before the 5 s request timeout";
    EXPECT_LT(slowloris_closed_after.load(), 8.0)
        << "a slowloris was not closed at the request timeout";
    stop = true;
    relayed.join();
    std::cout << "[ stats abuse ] " << rounds << " relayed round trips meanwhile, worst "
              << worst_us / 1000.0 << " ms\n";
    EXPECT_EQ(wrong.load(), 0) << "the relayed session lost or changed bytes";
    EXPECT_GT(rounds.load(), 100);
    EXPECT_LT(worst_us.load(), 500'000) << "the relayed session stalled";
    // "stats: connection closed" lines are debug; the 400/431 answers log nothing above info.
    EXPECT_TRUE(leaks.settled());
}

// ---------------------------------------------------------------------------------------------
// Randomized differential run
//
// Short connections, several at once, each with a script drawn from the seed for both ends:
// bytes to send, random chunk sizes and pauses, and an ending (FIN and read to EOF, close()
// after sending, or a reset once a random number of bytes is sent). An upstream connection is
// matched to its client by the PROXY v1 header the daemon sends (--send-proxy v1). Whatever
// the script, each end that reads to the end must get a byte-exact prefix of what the other
// sent, and either all of it with EOF, or a reset, and a reset only where an end closed or
// reset; never fewer bytes with a FIN (silent truncation), never a stuck connection. Seen
// failing with a daemon patched to half-close instead of reset on client-reset (silent
// truncations reported with the seed and the scripts).

/// How an end of a scripted connection finishes.
enum class ending { fin, close, reset };

const char* name_of(ending e) {
    return e == ending::fin ? "fin" : e == ending::close ? "close" : "reset";
}

/// One end of a scripted connection, driven by the poll loop.
struct scripted_end {
    int fd = -1;
    std::uint64_t seed = 0;   // of the bytes it sends
    std::size_t planned = 0;  // bytes to send
    std::size_t sent = 0;     // handed to the kernel
    std::size_t reset_at = 0; // ending::reset: once this many are sent
    ending how = ending::fin;
    std::mt19937_64 rng;
    byte_stream gen{0};
    std::string pending; // the chunk being sent
    steady_clock::time_point wake{};
    digest received;
    int recv_end = -1; // -1 still reading; 0 EOF; else errno
    bool blocked = false;
    bool shut = false;
    bool closed = false;
    bool send_failed = false;
    bool reset_seen = false; // a send failed with ECONNRESET (which clears the socket's error)

    void script(std::uint64_t s, std::mt19937_64& draw) {
        seed = s;
        gen = byte_stream(s);
        rng.seed(s ^ 0x5eed);
        planned = std::uniform_int_distribution<int>(0, 9)(draw) == 0 ? 0 : t::random_chunk(draw);
        const int pick = std::uniform_int_distribution<int>(0, 9)(draw);
        how = pick < 6 ? ending::fin : pick < 8 ? ending::close : ending::reset;
        reset_at = std::uniform_int_distribution<std::size_t>(0, planned)(draw);
    }
    [[nodiscard]] std::string describe() const {
        return std::string(name_of(how)) + " planned=" + std::to_string(planned) +
               " sent=" + std::to_string(sent) +
               (how == ending::reset ? " reset_at=" + std::to_string(reset_at) : "") +
               " received=" + std::to_string(received.length) + " end=" +
               (recv_end < 0    ? "none"
                : recv_end == 0 ? "EOF"
                                : std::strerror(recv_end));
    }
    void close_now(bool reset) {
        if (closed)
            return;
        if (reset)
            t::close_with_reset(fd);
        else
            ::close(fd);
        closed = true;
    }
    [[nodiscard]] bool done_sending() const { return shut || closed || send_failed; }

    void read_ready() {
        char buf[65536];
        while (recv_end < 0 && !closed) {
            const std::size_t want = std::min(sizeof buf, t::random_chunk(rng));
            const ssize_t n = ::recv(fd, buf, want, MSG_DONTWAIT);
            if (n > 0) {
                received.add(buf, static_cast<std::size_t>(n));
                continue;
            }
            if (n == 0)
                recv_end = reset_seen ? ECONNRESET : 0;
            else if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            else if (errno != EINTR)
                recv_end = errno;
        }
    }

    void write_ready(steady_clock::time_point now) {
        blocked = false;
        while (!done_sending()) {
            if (how == ending::reset && sent >= reset_at)
                return close_now(true);
            if (pending.empty()) {
                if (sent == planned) {
                    if (how == ending::fin) {
                        ::shutdown(fd, SHUT_WR);
                        shut = true;
                    } else {
                        close_now(false);
                    }
                    return;
                }
                if (now < wake)
                    return;
                std::size_t n = std::min(t::random_chunk(rng), planned - sent);
                if (how == ending::reset)
                    n = std::min(n, reset_at - sent);
                pending = gen.take(n);
            }
            const ssize_t n =
                ::send(fd, pending.data(), pending.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                sent += static_cast<std::size_t>(n);
                pending.erase(0, static_cast<std::size_t>(n));
                if (pending.empty() && std::uniform_int_distribution<int>(0, 9)(rng) == 0)
                    wake = now + microseconds(std::uniform_int_distribution<int>(0, 3000)(rng));
            } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                blocked = true;
                return;
            } else if (n < 0 && errno != EINTR) {
                send_failed = true; // reset by the peer
                reset_seen = errno == ECONNRESET;
            }
        }
    }

    // A FIN end closes once it read to the end and finished sending.
    void maybe_finish() {
        if (!closed && done_sending() && (recv_end >= 0 || how != ending::fin))
            close_now(false);
    }
};

/// One scripted connection: a client, and the upstream connection the daemon made for it.
struct scripted_connection {
    std::size_t index = 0;
    scripted_end client;
    scripted_end upstream;
    std::uint16_t port = 0; // the client's source port
    bool matched = false;
    steady_clock::time_point started;
    steady_clock::time_point client_closed{};
    [[nodiscard]] bool finished() const { return client.closed && matched && upstream.closed; }
};

/// What went wrong in the direction from `from` to `to`, or "".
std::string judge(const scripted_end& from, const scripted_end& to, bool reset_possible) {
    if (to.how != ending::fin)
        return ""; // it stopped reading when it chose to
    if (to.recv_end < 0)
        return "stuck: never saw the end";
    if (to.received.length > from.sent ||
        to.received != t::digest_of_stream(from.seed, to.received.length))
        return "bytes differ from what was sent";
    if (to.recv_end == 0) {
        if (from.how == ending::reset || to.received.length != from.planned)
            return "silent truncation: EOF after " + std::to_string(to.received.length) + " of " +
                   std::to_string(from.planned) + " bytes";
        return "";
    }
    if (to.recv_end != ECONNRESET)
        return std::string("failed: ") + std::strerror(to.recv_end);
    if (!reset_possible)
        return "reset although both ends finished with FIN";
    return "";
}

/// Connects to the daemon from the next free port of a private cycle (20000-29999): the
/// kernel would hand a port out again as soon as a reset freed it, and two connections in
/// flight with one source port could not be told apart by their PROXY headers.
int connect_from_own_port(std::uint16_t to, bool v6, std::uint16_t& cursor) {
    for (int tries = 0; tries < 10000; ++tries) {
        cursor = static_cast<std::uint16_t>(cursor < 20000 || cursor >= 29999 ? 20000 : cursor + 1);
        fd_t fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        const int one = 1;
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); // past TIME_WAIT
        sockaddr_storage from{};
        sockaddr_storage dest{};
        const socklen_t len = t::loopback_address(v6, cursor, from);
        t::loopback_address(v6, to, dest);
        if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&from), len) != 0)
            continue;
        if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&dest), len) == 0)
            return fd.release();
    }
    return -1;
}

/// Source port of a PROXY v1 header line ("PROXY TCP4 src dst sport dport"), or 0.
std::uint16_t proxy_source_port(const std::string& line) {
    std::istringstream words(line);
    std::string proxy, family, src, dst;
    unsigned port = 0;
    words >> proxy >> family >> src >> dst >> port;
    return proxy == "PROXY" && port < 65536 ? static_cast<std::uint16_t>(port) : 0;
}

TEST_P(faults, randomized_short_connections_never_truncate_silently) {
    const std::uint64_t base = env_number("NODELAYD_FAULT_SEED", 0x6a09e667);
    const std::uint64_t seed = base * 2 + (v6() ? 1 : 0);
    const std::size_t total = env_number("NODELAYD_FAULT_CONNECTIONS", 4000);
    constexpr std::size_t parallel = 24;
    const auto budget = 30s; // per address family: the whole test stays near a minute
    std::cout << "[ differential ] seed " << seed << " (repeat with NODELAYD_FAULT_SEED=" << base
              << "), up to " << total << " connections\n";

    t::listener up(v6(), 512);
    t::set_nonblocking(up.fd());
    t::proxy_process proxy(
        proxy_args(v6(), {up.port()}, {"--send-proxy", "v1", "--buffer-size", "16k"}, "2"));
    t::leak_check leaks(proxy);

    std::mt19937_64 draw(seed);
    std::vector<std::unique_ptr<scripted_connection>> live;
    std::unordered_map<std::uint16_t, scripted_connection*> by_port;
    struct half_open {
        int fd;
        std::string header;
    };
    std::vector<half_open> unmatched;
    std::vector<std::string> failures;
    std::map<std::string, int> outcomes;
    std::size_t launched = 0;
    std::size_t judged = 0;
    std::uint16_t cursor = 0;
    const auto t0 = steady_clock::now();
    auto last_log = t0;

    auto fail = [&](const scripted_connection& k, const std::string& what) {
        failures.push_back("connection " + std::to_string(k.index) + ": " + what +
                           "\n    client:   " + k.client.describe() +
                           "\n    upstream: " + (k.matched ? k.upstream.describe() : "none"));
    };
    auto conclude = [&](scripted_connection& k) {
        ++judged;
        const bool reset_possible = k.client.how != ending::fin || k.upstream.how != ending::fin;
        if (!k.matched) {
            // A client reset before the daemon accepted it has no address left to pass on:
            // no upstream connection is made for it.
            if (k.client.how == ending::fin)
                fail(k, "no upstream connection carried its PROXY header");
            ++outcomes["unrelayed"];
            return;
        }
        const auto c2u = judge(k.client, k.upstream, reset_possible);
        const auto u2c = judge(k.upstream, k.client, reset_possible);
        if (!c2u.empty())
            fail(k, "client -> upstream: " + c2u);
        if (!u2c.empty())
            fail(k, "upstream -> client: " + u2c);
        ++outcomes[std::string(name_of(k.client.how)) + "/" + name_of(k.upstream.how)];
    };

    while ((launched < total && seconds_since(t0) < duration<double>(budget).count()) ||
           !live.empty() || !unmatched.empty()) {
        const auto now = steady_clock::now();
        if (now - last_log > 200ms) {
            proxy.log(); // keep the daemon's stderr pipe from filling up
            last_log = now;
        }
        while (live.size() < parallel && launched < total && now - t0 < budget) {
            auto k = std::make_unique<scripted_connection>();
            k->index = launched++;
            k->started = now;
            const std::uint64_t s = seed * 1'000'003 + k->index * 2;
            k->client.script(s, draw);
            k->upstream.script(s + 1, draw);
            k->client.fd = connect_from_own_port(proxy.port(), v6(), cursor);
            if (k->client.fd < 0) {
                fail(*k, "connect failed");
                continue;
            }
            t::set_nonblocking(k->client.fd);
            k->port = cursor;
            by_port[cursor] = k.get();
            live.push_back(std::move(k));
        }

        // Accept what arrived and read PROXY headers a byte at a time: what follows the
        // header belongs to the client's stream.
        for (;;) {
            const int fd = ::accept4(up.fd(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd < 0)
                break;
            unmatched.push_back({fd, {}});
        }
        std::erase_if(unmatched, [&](half_open& h) {
            char ch = 0;
            ssize_t n = 0;
            while (h.header.size() < 108 && (n = ::recv(h.fd, &ch, 1, MSG_DONTWAIT)) == 1) {
                h.header += ch;
                if (h.header.ends_with("\r\n"))
                    break;
            }
            if (h.header.ends_with("\r\n")) {
                const auto it = by_port.find(proxy_source_port(h.header));
                if (it == by_port.end() || it->second->matched) {
                    failures.push_back("upstream connection with an unknown source: " + h.header);
                    ::close(h.fd);
                    return true;
                }
                it->second->upstream.fd = h.fd;
                it->second->matched = true;
                return true;
            }
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) ||
                h.header.size() >= 108) {
                failures.push_back("upstream connection ended inside its PROXY header: '" +
                                   h.header + "'");
                ::close(h.fd);
                return true;
            }
            return false;
        });

        std::vector<pollfd> polled{{up.fd(), POLLIN, 0}};
        for (const auto& h : unmatched)
            polled.push_back({h.fd, POLLIN, 0});
        auto next_wake = now + 10ms;
        for (auto& k : live)
            for (auto* e : {&k->client, &k->upstream}) {
                if (e == &k->upstream && !k->matched)
                    continue;
                if (!e->closed) {
                    e->write_ready(now);
                    e->read_ready();
                    e->maybe_finish();
                }
                if (e->closed)
                    continue;
                short events = e->recv_end < 0 ? POLLIN : 0;
                if (e->blocked)
                    events |= POLLOUT;
                if (!e->done_sending() && !e->blocked && e->pending.empty())
                    next_wake = std::min(next_wake, e->wake);
                polled.push_back({e->fd, events, 0});
            }

        std::erase_if(live, [&](std::unique_ptr<scripted_connection>& k) {
            if (k->client.closed && k->client_closed == steady_clock::time_point{})
                k->client_closed = now;
            // A client may finish before its upstream connection even arrives; give it time.
            const bool gave_up_waiting =
                !k->matched && k->client.closed && now - k->client_closed > 1s;
            const bool stuck = now - k->started > 15s;
            if (!k->finished() && !gave_up_waiting && !stuck)
                return false;
            if (stuck && !k->finished())
                fail(*k, "stuck for 15 s");
            else
                conclude(*k);
            k->client.close_now(true);
            if (k->matched)
                k->upstream.close_now(true);
            by_port.erase(k->port);
            return true;
        });
        const auto wait = std::clamp(duration_cast<milliseconds>(next_wake - now), 0ms, 10ms);
        ::poll(polled.data(), polled.size(), static_cast<int>(wait.count()));
        if (failures.size() > 50)
            break;
    }
    for (auto& h : unmatched)
        ::close(h.fd);
    up.close(); // resets connections still in its backlog (after an early stop)
    for (auto& k : live) {
        k->client.close_now(true);
        if (k->matched)
            k->upstream.close_now(true);
    }

    std::cout << "[ differential ] " << judged << " connections in " << seconds_since(t0)
              << " s; endings client/upstream:";
    for (const auto& [what, n] : outcomes)
        std::cout << " " << what << "=" << n;
    std::cout << "\n";
    EXPECT_GE(judged, std::min<std::size_t>(total, 500)) << "too few connections to mean much";
    EXPECT_TRUE(failures.empty()) << failures.size() << " failure(s), seed " << seed << ":\n"
                                  << [&] {
                                         std::string s;
                                         for (std::size_t i = 0; i < failures.size() && i < 10; ++i)
                                             s += failures[i] + "\n";
                                         return s;
                                     }();
    EXPECT_TRUE(leaks.settled({}, 20s));
}

// ---------------------------------------------------------------------------------------------
// Soak

/// Port of route `name` from the daemon's "route=NAME listening on" line (0: none).
std::uint16_t route_port(t::proxy_process& proxy, const std::string& name) {
    const std::regex line("route=" + name + R"( listening on (?:\[[^\]]+\]|[0-9.]+):(\d+))");
    const std::string log = proxy.log();
    std::smatch m;
    return std::regex_search(log, m, line) ? static_cast<std::uint16_t>(std::stoi(m[1])) : 0;
}

/// Mixed traffic for one address family until `stop`: a bulk stream echoed back, a ping-pong
/// and a stream of short connections, all checked byte for byte.
struct soak_traffic {
    std::atomic<std::uint64_t> bulk_sent{0};
    digest bulk_received;
    bool bulk_ok = false;
    std::atomic<int> round_trips{0};
    std::atomic<int> short_connections{0};
    std::atomic<int> errors{0};
    std::vector<std::thread> threads;

    void start(std::uint16_t port, bool v6, const std::atomic<bool>& stop, seconds limit) {
        threads.emplace_back([this, port, v6, &stop, limit] {
            fd_t c(t::connect_to(port, v6));
            if (!c) {
                ++errors;
                return;
            }
            std::thread reader(
                [&] { bulk_ok = drain_into(c.get(), bulk_received, limit + 60s) == 0; });
            // About 16 MiB/s: a steady load, not a benchmark.
            byte_stream gen(0xb0b);
            std::string piece(64 * 1024, '\0');
            while (!stop) {
                gen.fill(piece.data(), piece.size());
                if (!t::send_all(c.get(), piece)) {
                    ++errors;
                    break;
                }
                bulk_sent += piece.size();
                std::this_thread::sleep_for(4ms);
            }
            ::shutdown(c.get(), SHUT_WR);
            reader.join();
        });
        threads.emplace_back([this, port, v6, &stop] {
            fd_t c(t::connect_to(port, v6));
            byte_stream gen(0x9e7);
            while (c && !stop) {
                const std::string msg = gen.take(64);
                if (!t::send_all(c.get(), msg) || t::recv_n(c.get(), msg.size(), 5s) != msg) {
                    ++errors;
                    return;
                }
                ++round_trips;
                std::this_thread::sleep_for(1ms);
            }
            if (!c)
                ++errors;
        });
        threads.emplace_back([this, port, v6, &stop] {
            byte_stream gen(0x5407);
            std::mt19937_64 rng(3);
            while (!stop) {
                fd_t c(t::connect_to(port, v6));
                const std::string msg =
                    gen.take(std::uniform_int_distribution<std::size_t>(1, 4096)(rng));
                int err = -1;
                if (!c || !t::send_all(c.get(), msg) || ::shutdown(c.get(), SHUT_WR) != 0 ||
                    t::recv_to_eof(c.get(), err, 5s) != msg || err != 0)
                    ++errors;
                ++short_connections;
                std::this_thread::sleep_for(5ms);
            }
        });
    }
    void join() {
        for (auto& th : threads)
            th.join();
    }
};

// Bulk, ping-pong and short connections over an IPv4 and an IPv6 route for
// NODELAYD_SOAK_SECONDS (default 60; the long run: NODELAYD_SOAK_SECONDS=600, see README):
// RSS and descriptors stay flat, nothing is lost. Seen failing with a daemon patched to leak
// each session's upstream descriptor (descriptors grew by one per connection).
TEST(soak, mixed_traffic_keeps_memory_and_descriptors_flat_and_loses_nothing) {
    const auto length = seconds(env_number("NODELAYD_SOAK_SECONDS", 60));
    echo_server up4(false);
    echo_server up6(true);
    t::temp_file config("threads = 2\n"
                        "[route.v4]\nlisten = 127.0.0.1:0\nupstream = " +
                        address(false, up4.port()) + "\n[route.v6]\nlisten = [::1]:0\nupstream = " +
                        address(true, up6.port()) + "\n");
    t::proxy_process proxy({"--config", config.path()}, 2);
    t::leak_check leaks(proxy);
    const std::uint16_t port4 = route_port(proxy, "v4");
    const std::uint16_t port6 = route_port(proxy, "v6");
    ASSERT_NE(port4, 0);
    ASSERT_NE(port6, 0);

    std::atomic<bool> stop{false};
    soak_traffic v4, v6;
    v4.start(port4, false, stop, length);
    v6.start(port6, true, stop, length);
    struct sample {
        double at;
        long rss_kib;
        int fds;
    };
    std::vector<sample> samples;
    const auto t0 = steady_clock::now();
    while (steady_clock::now() - t0 < length) {
        std::this_thread::sleep_for(1s);
        proxy.log();
        samples.push_back({seconds_since(t0), t::rss_kib(proxy.pid()), t::open_fds(proxy.pid())});
    }
    stop = true;
    v4.join();
    v6.join();

    ASSERT_GE(samples.size(), 8u);
    // Warm-up (pools, splice pipes) is the first quarter; growth is measured after it.
    const std::size_t quarter = samples.size() / 4;
    long early = 0, late = 0, top = 0;
    int most_fds = 0;
    for (std::size_t i = 0; i < samples.size(); ++i) {
        if (i >= quarter && i < 2 * quarter)
            early = std::max(early, samples[i].rss_kib);
        if (i >= samples.size() - quarter)
            late = std::max(late, samples[i].rss_kib);
        top = std::max(top, samples[i].rss_kib);
        most_fds = std::max(most_fds, samples[i].fds);
    }
    std::cout << "[ soak ] " << length.count() << " s: bulk "
              << ((v4.bulk_sent + v6.bulk_sent) >> 20) << " MiB, "
              << v4.round_trips + v6.round_trips << " round trips, "
              << v4.short_connections + v6.short_connections << " short connections; RSS " << early
              << " -> " << late << " KiB (max " << top << "), descriptors max " << most_fds
              << " (baseline " << leaks.baseline_fds() << ")\n";
    for (auto* tr : {&v4, &v6}) {
        SCOPED_TRACE(tr == &v4 ? "IPv4 route" : "IPv6 route");
        EXPECT_EQ(tr->errors.load(), 0);
        EXPECT_TRUE(tr->bulk_ok);
        EXPECT_GT(tr->bulk_sent.load(), 0u);
        EXPECT_TRUE(tr->bulk_received == t::digest_of_stream(0xb0b, tr->bulk_sent))
            << "bulk: " << tr->bulk_received.length << " of " << tr->bulk_sent
            << " bytes came back";
        EXPECT_GT(tr->round_trips.load(), 0);
        EXPECT_GT(tr->short_connections.load(), 0);
    }
    EXPECT_LT(late - early, 4 * 1024) << "RSS kept growing";
    // Two long sessions and a short one per route, each with a splice pipe pair at most.
    EXPECT_LE(most_fds, leaks.baseline_fds() + 32) << "descriptors piled up";
    EXPECT_TRUE(leaks.settled());
}

} // namespace
