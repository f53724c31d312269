// The pump on real loopback TCP sockets, driven by hand: no event loop, so each step's
// reads, writes and wait decision are visible.
#include "nodelayd/pump.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h> // SIOCOUTQ
#include <linux/tcp.h>     // struct tcp_info with tcpi_segs_in
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>

using namespace nodelayd;

namespace {

// A connected loopback TCP pair: `near` is what the pump uses, `far` plays the peer.
struct tcp_pair {
    int near = -1;
    int far = -1;
    tcp_pair() {
        const int lst = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        ::bind(lst, reinterpret_cast<sockaddr*>(&a), len);
        ::listen(lst, 1);
        ::getsockname(lst, reinterpret_cast<sockaddr*>(&a), &len);
        far = ::socket(AF_INET, SOCK_STREAM, 0);
        ::connect(far, reinterpret_cast<sockaddr*>(&a), len);
        near = ::accept(lst, nullptr, nullptr);
        ::close(lst);
        ::fcntl(near, F_SETFL, O_NONBLOCK);
        // No test may hang on a blocking call.
        const timeval tv{5, 0};
        ::setsockopt(far, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(far, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    ~tcp_pair() {
        ::close(near);
        ::close(far);
    }
};

bool wait_readable(int fd, int ms = 2000) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, ms) == 1;
}

std::string read_available(int fd) {
    std::string out;
    char buf[65536];
    while (wait_readable(fd, 200)) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0)
            break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

void write_all(int fd, const std::string& s) {
    ASSERT_EQ(::send(fd, s.data(), s.size(), 0), static_cast<ssize_t>(s.size()));
}

std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i)
        s[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
    return s;
}

// Steps until the pump asks to wait for something other than `nothing`.
pump::wait_for settle(pump& p) {
    for (int i = 0; i < 1000; ++i) {
        const auto w = p.step();
        if (w != pump::wait_for::nothing)
            return w;
    }
    return pump::wait_for::nothing;
}

// Drives the pump as the relay does: step, and wait for the source when asked to.
pump::wait_for run_until_done(pump& p, int source_fd) {
    for (int i = 0; i < 1000; ++i) {
        const auto w = p.step();
        if (w == pump::wait_for::done)
            return w;
        if (w == pump::wait_for::read && !wait_readable(source_fd))
            return w;
    }
    return pump::wait_for::nothing;
}

// Sends `data` from `sent` on, as much as the socket takes without blocking.
void feed(int fd, const std::string& data, std::size_t& sent) {
    for (ssize_t n; sent < data.size() &&
                    (n = ::send(fd, data.data() + sent, data.size() - sent, MSG_DONTWAIT)) > 0;)
        sent += static_cast<std::size_t>(n);
}

// What the far end of the sink got once a flow ran to its end.
struct flow_end {
    pump::wait_for last = pump::wait_for::nothing;
    std::string got;
    bool spliced = false;
};

// Feeds the rest of `data` and then EOF into the source while stepping the pump and reading
// the sink, until the pump is done (or gives up after many steps).
flow_end run_flow_to_end(pump& p, const tcp_pair& source, const tcp_pair& sink,
                         const std::string& data, std::size_t& sent) {
    flow_end end;
    char buf[65536];
    for (int i = 0; i < 100'000 && end.last != pump::wait_for::done; ++i) {
        feed(source.far, data, sent);
        if (sent == data.size())
            ::shutdown(source.far, SHUT_WR);
        end.last = p.step();
        end.spliced = end.spliced || p.splicing();
        for (ssize_t n; (n = ::recv(sink.far, buf, sizeof buf, MSG_DONTWAIT)) > 0;)
            end.got.append(buf, static_cast<std::size_t>(n));
        if (end.last == pump::wait_for::read)
            wait_readable(source.near, 10);
    }
    end.got += read_available(sink.far);
    return end;
}

// Segments (data or not) the socket received so far.
std::uint32_t segments_in(int fd) {
    tcp_info info{};
    socklen_t len = sizeof info;
    EXPECT_EQ(::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len), 0);
    return info.tcpi_segs_in;
}

// The far end of `source` sends its last bytes and its FIN as one segment (as the pump does),
// and they are both queued at the near end when this returns.
void send_last_words_and_fin(const tcp_pair& source) {
    const std::uint32_t before = segments_in(source.near);
    ASSERT_EQ(::send(source.far, "last words", 10, MSG_MORE), 10);
    ::shutdown(source.far, SHUT_WR);
    pollfd rdhup{source.near, POLLRDHUP, 0};
    ASSERT_EQ(::poll(&rdhup, 1, 2000), 1);
    ASSERT_EQ(segments_in(source.near) - before, 1u); // the kernel does tack the FIN on
}

// The far end of `pair` resets the connection once the near end holds everything it sent
// (the kernel discards what an abortive close finds unsent), and the RST has arrived.
void reset_and_wait(tcp_pair& pair) {
    for (int i = 0, unsent = 1; i < 2000 && unsent > 0; ++i) {
        if (::ioctl(pair.far, SIOCOUTQ, &unsent) != 0)
            break;
        if (unsent > 0)
            ::usleep(1000);
    }
    const linger l{1, 0};
    ::setsockopt(pair.far, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(std::exchange(pair.far, ::socket(AF_INET, SOCK_STREAM, 0)));
    pollfd reset{pair.near, POLLRDHUP, 0};
    ASSERT_EQ(::poll(&reset, 1, 2000), 1);
    ASSERT_NE(reset.revents & (POLLERR | POLLHUP), 0);
}

} // namespace

class pump_test : public ::testing::Test {
protected:
    tcp_pair source; // source.far writes, pump reads source.near
    tcp_pair sink;   // pump writes sink.near, sink.far reads
    side_policy policy;
    socket_state source_state{source.near, false, true, &policy, {}};
    socket_state sink_state{sink.near, false, true, &policy, {}};

    // Relays bytes and a FIN that reach the source together (so one step reads both) and
    // returns how many segments the sink's peer received for them; 0 if the relay failed.
    std::uint32_t relay_last_words_and_fin() {
        send_last_words_and_fin(source);
        if (::testing::Test::HasFatalFailure())
            return 0;
        const std::uint32_t before = segments_in(sink.far);
        pump p(source_state, sink_state, std::size_t{64} * 1024);
        EXPECT_EQ(p.step(), pump::wait_for::done);
        EXPECT_EQ(read_available(sink.far), "last words");
        char c = 0;
        EXPECT_EQ(::recv(sink.far, &c, 1, 0), 0); // FIN arrived
        return segments_in(sink.far) - before;
    }
};

TEST_F(pump_test, relays_and_then_waits_for_read) {
    pump p(source_state, sink_state, 64 * 1024);
    EXPECT_EQ(p.step(), pump::wait_for::read); // nothing yet
    write_all(source.far, "hello");
    ASSERT_TRUE(wait_readable(source.near));
    EXPECT_EQ(settle(p), pump::wait_for::read);
    EXPECT_EQ(read_available(sink.far), "hello");
    EXPECT_EQ(p.bytes(), 5u);
    EXPECT_EQ(p.queued(), 0u);
}

// Everything ready at the source leaves in one gathered write: the proxy never does
// write-write-read.
TEST_F(pump_test, coalesces_everything_ready_into_one_write) {
    const auto data = pattern(40'000); // more than two chunks
    write_all(source.far, data);
    // Let it all land in the receive queue before the pump looks.
    for (int i = 0; i < 100; ++i) {
        int queued = 0;
        ::ioctl(source.near, FIONREAD, &queued);
        if (queued == static_cast<int>(data.size()))
            break;
        ::usleep(1000);
    }
    pump p(source_state, sink_state, 1 << 20);
    EXPECT_EQ(p.step(), pump::wait_for::read);
    EXPECT_EQ(p.writes(), 1u);
    EXPECT_EQ(read_available(sink.far), data);
}

TEST_F(pump_test, eof_becomes_half_close_after_the_data) {
    pump p(source_state, sink_state, 64 * 1024);
    write_all(source.far, "last words");
    ::shutdown(source.far, SHUT_WR);
    EXPECT_EQ(run_until_done(p, source.near), pump::wait_for::done);
    EXPECT_EQ(p.failed(), pump::failure::none);
    EXPECT_EQ(read_available(sink.far), "last words");
    char c = 0;
    EXPECT_EQ(::recv(sink.far, &c, 1, 0), 0); // FIN arrived
    // The sink's other direction still works: half-close, not close.
    write_all(sink.far, "reply");
    ASSERT_TRUE(wait_readable(sink.near));
    char buf[8];
    EXPECT_EQ(::recv(sink.near, buf, sizeof buf, 0), 5);
}

// The source's last bytes and its FIN, read in one step, leave in one segment (MSG_MORE, then
// shutdown: the kernel tacks the FIN onto the held segment), so the peer wakes once for both;
// HAProxy and nginx send two.
TEST_F(pump_test, last_bytes_and_the_fin_leave_in_one_segment) {
    EXPECT_EQ(relay_last_words_and_fin(), 1u);
}

// With cork off nothing is held back: bytes and FIN leave as they come, in two segments.
TEST_F(pump_test, cork_off_sends_the_fin_on_its_own) {
    policy.cork = cork_mode::off;
    EXPECT_EQ(relay_last_words_and_fin(), 2u);
}

TEST_F(pump_test, stops_reading_at_the_bound_when_the_sink_is_stuck) {
    // Small kernel buffers so the sink fills quickly.
    const int small = 16 * 1024;
    ::setsockopt(sink.near, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    ::setsockopt(sink.far, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    const std::size_t bound = 32 * 1024;
    pump p(source_state, sink_state, bound);
    const auto data = pattern(4 << 20);
    ::fcntl(source.far, F_SETFL, O_NONBLOCK);
    std::size_t sent = 0;
    pump::wait_for w = pump::wait_for::nothing;
    for (int round = 0; round < 2000 && w != pump::wait_for::write; ++round) {
        const ssize_t n = ::send(source.far, data.data() + sent, data.size() - sent, 0);
        if (n > 0)
            sent += static_cast<std::size_t>(n);
        w = p.step();
        EXPECT_LE(p.queued(), bound);
    }
    ASSERT_EQ(w, pump::wait_for::write) << "never blocked on the sink";
    EXPECT_EQ(p.queued(), bound);
    // Draining the sink lets the flow resume byte-exact.
    ::fcntl(source.far, F_SETFL, 0);
    std::string got;
    char buf[65536];
    while (got.size() < sent) {
        if (wait_readable(sink.far, 0)) {
            const ssize_t n = ::recv(sink.far, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0)
                got.append(buf, static_cast<std::size_t>(n));
        }
        p.step();
        EXPECT_LE(p.queued(), bound);
    }
    EXPECT_EQ(got, data.substr(0, sent));
}

TEST_F(pump_test, source_reset_is_reported_as_source_failure) {
    pump p(source_state, sink_state, 64 * 1024);
    const linger l{1, 0};
    ::setsockopt(source.far, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(std::exchange(source.far, ::socket(AF_INET, SOCK_STREAM, 0)));
    EXPECT_EQ(run_until_done(p, source.near), pump::wait_for::done);
    EXPECT_EQ(p.failed(), pump::failure::source);
}

// A peer that answers and closes with bytes of ours unread sends its answer and then RST;
// both are queued at the source when the pump reads. The answer still reaches the sink, ahead
// of the reset the relay passes on, as it would on a direct connection (HAProxy, nginx and
// socat deliver it too).
TEST_F(pump_test, bytes_before_a_source_reset_still_reach_the_sink) {
    write_all(source.far, "last words");
    reset_and_wait(source);
    pump p(source_state, sink_state, 64 * 1024);
    EXPECT_EQ(p.step(), pump::wait_for::done);
    EXPECT_EQ(p.failed(), pump::failure::source);
    EXPECT_EQ(read_available(sink.far), "last words");
}

// The same in splice mode: what the pipe holds when the source fails still goes out.
TEST_F(pump_test, bytes_in_the_pipe_still_reach_the_sink_when_the_source_resets) {
    pump p(source_state, sink_state, 64 * 1024, nullptr, direction::client_to_upstream, 64 * 1024);
    const auto data = pattern((4 << 20) + 1000);
    // Not a whole number of pipefuls: the step that finds the reset has spliced bytes first.
    constexpr std::size_t tail = (256 * 1024) + 1000;
    ::fcntl(source.far, F_SETFL, O_NONBLOCK);
    std::size_t sent = 0;
    std::string got;
    bool spliced = false;
    char buf[65536];
    const auto drain_sink = [&] {
        for (ssize_t n; (n = ::recv(sink.far, buf, sizeof buf, MSG_DONTWAIT)) > 0;)
            got.append(buf, static_cast<std::size_t>(n));
    };
    // Relay the flow, but for its tail...
    const std::string head = data.substr(0, data.size() - tail);
    for (int i = 0; i < 100'000 && got.size() < head.size(); ++i) {
        feed(source.far, head, sent);
        const auto w = p.step();
        spliced = spliced || p.splicing();
        drain_sink();
        if (w == pump::wait_for::read || w == pump::wait_for::read_or_write)
            wait_readable(source.near, 10);
    }
    ASSERT_EQ(got.size(), head.size());
    ASSERT_TRUE(spliced) << "a 4 MB burst never switched to splice";
    // ...which then waits at the source, behind the RST, while the pump is not looking.
    for (int i = 0; i < 1000 && sent < data.size(); ++i) {
        feed(source.far, data, sent);
        if (sent < data.size())
            ::usleep(1000);
    }
    ASSERT_EQ(sent, data.size());
    reset_and_wait(source);
    auto w = pump::wait_for::nothing;
    for (int i = 0; i < 100'000 && w != pump::wait_for::done; ++i) {
        w = p.step();
        drain_sink();
    }
    EXPECT_EQ(w, pump::wait_for::done);
    EXPECT_EQ(p.failed(), pump::failure::source);
    got += read_available(sink.far);
    EXPECT_EQ(got.size(), data.size());
    EXPECT_TRUE(got == data) << "bytes differ";
}

TEST_F(pump_test, sink_reset_is_reported_as_sink_failure) {
    pump p(source_state, sink_state, 64 * 1024);
    const linger l{1, 0};
    ::setsockopt(sink.far, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(std::exchange(sink.far, ::socket(AF_INET, SOCK_STREAM, 0)));
    ::usleep(20'000); // let the RST land
    write_all(source.far, "into the void");
    EXPECT_EQ(run_until_done(p, source.near), pump::wait_for::done);
    EXPECT_EQ(p.failed(), pump::failure::sink);
}

// With a meter: every chunk's receive-to-write latency is recorded, writes and chunks are
// counted, and a small write followed 60 ms later by more, with nothing sent back in
// between, counts as one suspected stall of the source's peer.
TEST_F(pump_test, meter_records_latency_chunks_and_peer_stalls) {
    route_stats stats;
    int on = 1;
    ::setsockopt(source.near, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
    pump p(source_state, sink_state, 64 * 1024, &stats, direction::client_to_upstream);
    write_all(source.far, "literal");
    ASSERT_TRUE(wait_readable(source.near));
    EXPECT_EQ(settle(p), pump::wait_for::read);
    ::usleep(60'000);
    write_all(source.far, "\r\n");
    ASSERT_TRUE(wait_readable(source.near));
    EXPECT_EQ(settle(p), pump::wait_for::read);
    EXPECT_EQ(read_available(sink.far), "literal\r\n");
    EXPECT_EQ(stats.bytes_total[0].get(), 9u);
    EXPECT_EQ(stats.writes_total[1].get(), 2u);
    EXPECT_EQ(stats.writes_total[0].get(), 0u); // writes count against the sink's side
    EXPECT_EQ(stats.chunks_total[1].get(), 2u);
    EXPECT_EQ(stats.added_latency[0].snapshot().count, 2u);
    EXPECT_EQ(stats.peer_stalls_total[0].get(), 1u);
    EXPECT_EQ(p.source_stalls(), 1u);
}

// A source that keeps the buffer full switches to splice(2): the bytes arrive byte-exact,
// EOF still becomes a half-close, and a flow that slows down goes back to copying (where
// receive timestamps and quickack apply again).
TEST_F(pump_test, bulk_flow_moves_by_splice_and_stays_byte_exact) {
    pump p(source_state, sink_state, 64 * 1024, nullptr, direction::client_to_upstream, 64 * 1024);
    const auto data = pattern(8 << 20);
    std::thread writer([&] {
        std::size_t off = 0;
        while (off < data.size()) {
            const ssize_t n = ::send(source.far, data.data() + off, data.size() - off, 0);
            if (n <= 0)
                break;
            off += static_cast<std::size_t>(n);
        }
        ::shutdown(source.far, SHUT_WR);
    });
    std::string got;
    bool spliced = false;
    char buf[65536];
    auto w = pump::wait_for::nothing;
    for (int i = 0; i < 100'000 && w != pump::wait_for::done; ++i) {
        w = p.step();
        spliced = spliced || p.splicing();
        for (ssize_t n; (n = ::recv(sink.far, buf, sizeof buf, MSG_DONTWAIT)) > 0;)
            got.append(buf, static_cast<std::size_t>(n));
        if (w == pump::wait_for::read || w == pump::wait_for::read_or_write)
            wait_readable(source.near, 10);
    }
    writer.join();
    EXPECT_EQ(w, pump::wait_for::done);
    EXPECT_TRUE(spliced) << "an 8 MB burst never switched to splice";
    got += read_available(sink.far);
    EXPECT_EQ(got.size(), data.size());
    EXPECT_TRUE(got == data) << "bytes differ";
    EXPECT_EQ(p.bytes(), data.size());
    EXPECT_FALSE(p.splicing()) << "the pipe stays open after EOF";
}

// One splice moves up to the pipe's capacity, not the buffer bound: with a 1 MiB pipe and a
// sink that stopped reading, the pipe fills past Linux's default 64 KiB; the bytes stay exact.
TEST_F(pump_test, splice_pipe_holds_its_capacity_and_stays_byte_exact) {
    constexpr std::size_t pipe_size = 1 << 20;
    pump p(source_state, sink_state, 64 * 1024, nullptr, direction::client_to_upstream, pipe_size);
    const int small = 32 * 1024;
    ::setsockopt(sink.near, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    ::setsockopt(sink.far, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    const auto data = pattern(16 << 20);
    std::size_t sent = 0;
    // Nobody reads the sink: the pump ends up waiting for it with a full pipe.
    auto w = pump::wait_for::nothing;
    for (int i = 0; i < 100'000 && w != pump::wait_for::write; ++i) {
        feed(source.far, data, sent);
        w = p.step();
        if (w == pump::wait_for::read || w == pump::wait_for::read_or_write)
            wait_readable(source.near, 10);
    }
    ASSERT_EQ(w, pump::wait_for::write);
    EXPECT_TRUE(p.splicing());
    EXPECT_GT(p.queued(), std::size_t{64} * 1024) << "the pipe kept the default capacity";
    EXPECT_LE(p.queued(), pipe_size);
    // Now the sink reads everything; the source sends the rest and EOF.
    const auto end = run_flow_to_end(p, source, sink, data, sent);
    EXPECT_EQ(end.last, pump::wait_for::done);
    EXPECT_EQ(end.got.size(), data.size());
    EXPECT_TRUE(end.got == data) << "bytes differ";
}

// An unprivileged daemon (the unit's DynamicUser) past its pipe allowance
// (fs.pipe-user-pages-soft) gets two-page pipes, one splice per 8 KiB: the flow is copied
// instead, byte-exact. Runs in a child under a uid of its own, which takes the allowance.
TEST_F(pump_test, bulk_flow_is_copied_when_the_kernel_only_grants_small_pipes) {
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs root to switch to a uid of its own";
    EXPECT_EXIT(
        {
            constexpr uid_t own_uid = 54321; // no other process runs under it
            if (::setgid(own_uid) != 0 || ::setuid(own_uid) != 0)
                std::_Exit(2);
            bool limited = false;
            for (int i = 0; i < 1000 && !limited; ++i) {
                int fds[2];
                if (::pipe2(fds, O_CLOEXEC) != 0)
                    std::_Exit(3);
                limited = ::fcntl(fds[1], F_GETPIPE_SZ) < 65536;
                if (limited) {
                    ::close(fds[0]);
                    ::close(fds[1]);
                } else {
                    ::fcntl(fds[1], F_SETPIPE_SZ, 1 << 20); // kept open: uses the allowance
                }
            }
            if (!limited) {
                std::fprintf(stderr, "the pipe allowance was never reached\n");
                std::_Exit(4);
            }
            pump p(source_state, sink_state, 64 * 1024, nullptr, direction::client_to_upstream,
                   1 << 20);
            const auto data = pattern(8 << 20);
            std::size_t sent = 0;
            const auto end = run_flow_to_end(p, source, sink, data, sent);
            const bool done = end.last == pump::wait_for::done;
            std::fprintf(stderr, "done=%d spliced=%d bytes=%zu exact=%d\n", done, end.spliced,
                         end.got.size(), end.got == data);
            std::_Exit(done && !end.spliced && end.got == data ? 0 : 1);
        },
        ::testing::ExitedWithCode(0), "");
}

TEST_F(pump_test, small_messages_never_splice) {
    pump p(source_state, sink_state, 64 * 1024, nullptr, direction::client_to_upstream, 64 * 1024);
    for (int i = 0; i < 20; ++i) {
        write_all(source.far, "ping " + std::to_string(i));
        ASSERT_TRUE(wait_readable(source.near));
        EXPECT_EQ(settle(p), pump::wait_for::read);
        EXPECT_FALSE(p.splicing());
    }
}
