// Edge waits on Asio's reactor, on real loopback TCP connections: when a wait ends and when
// it does not (that is the contract the relay relies on), cancellation, the EPOLLRDHUP hint,
// and the registration adopt_socket leaves in the kernel's epoll set.

#include "nodelayd/edge_wait.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using nodelayd::tcp_socket;

// A connected pair: `ours` adopted into `socket` (non-blocking, as accept4 gives it), and
// the peer's plain descriptor.
struct adopted_pair {
    tcp_socket socket;
    int peer = -1;
    adopted_pair(const adopted_pair&) = delete;
    adopted_pair& operator=(const adopted_pair&) = delete;
    explicit adopted_pair(asio::io_context& ctx) : socket(ctx) {
        const int lst = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof sa;
        EXPECT_EQ(::bind(lst, reinterpret_cast<sockaddr*>(&sa), len), 0);
        EXPECT_EQ(::listen(lst, 1), 0);
        EXPECT_EQ(::getsockname(lst, reinterpret_cast<sockaddr*>(&sa), &len), 0);
        peer = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        EXPECT_EQ(::connect(peer, reinterpret_cast<sockaddr*>(&sa), len), 0);
        const int fd = ::accept4(lst, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        ::close(lst);
        boost::system::error_code ec;
        nodelayd::adopt_socket(socket, asio::ip::tcp::v4(), fd, false, ec);
        EXPECT_FALSE(ec) << ec.message();
    }
    ~adopted_pair() {
        if (peer >= 0)
            ::close(peer);
    }
    // Reads what is queued on our side until EAGAIN; returns the byte count.
    std::size_t drain() {
        std::size_t total = 0;
        char buf[4096];
        for (;;) {
            const ssize_t n = ::recv(socket.native_handle(), buf, sizeof buf, MSG_DONTWAIT);
            if (n <= 0)
                return total;
            total += static_cast<std::size_t>(n);
        }
    }
};

// Counts the ends of the waits it started.
struct recorder {
    int ended = 0;
    int aborted = 0;
    std::uint8_t last_tag = 0;
    static void on_end(void* self, std::uint8_t tag, bool aborted) {
        auto* r = static_cast<recorder*>(self);
        ++r->ended;
        r->aborted += aborted ? 1 : 0;
        r->last_tag = tag;
    }
    void wait(tcp_socket& s, tcp_socket::wait_type what, std::uint8_t tag = 1) {
        nodelayd::async_edge_wait(s, what, &recorder::on_end, this, tag);
    }
};

// Runs the context's ready handlers and epoll for a while.
void settle(asio::io_context& ctx, std::chrono::milliseconds d = 50ms) {
    ctx.restart();
    ctx.run_for(d);
}

void send_text(int fd, const std::string& text) {
    ASSERT_EQ(::send(fd, text.data(), text.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(text.size()));
}

TEST(edge_wait, a_fresh_socket_with_nothing_to_read_waits_for_data) {
    asio::io_context ctx;
    adopted_pair p(ctx);
    recorder r;
    r.wait(p.socket, tcp_socket::wait_read, 7);
    settle(ctx);
    EXPECT_EQ(r.ended, 0) << "ended with nothing to read: the first wait must not be free";
    send_text(p.peer, "hello");
    settle(ctx);
    EXPECT_EQ(r.ended, 1);
    EXPECT_EQ(r.aborted, 0);
    EXPECT_EQ(r.last_tag, 7);
    EXPECT_EQ(p.drain(), 5U);
}

TEST(edge_wait, data_queued_before_the_wait_ends_it_at_once) {
    asio::io_context ctx;
    adopted_pair p(ctx);
    send_text(p.peer, "early");
    settle(ctx); // epoll reports it while nobody waits
    recorder r;
    r.wait(p.socket, tcp_socket::wait_read);
    settle(ctx, 5ms);
    EXPECT_EQ(r.ended, 1);
    EXPECT_EQ(p.drain(), 5U);
}

TEST(edge_wait, a_reported_edge_is_used_once_and_the_next_wait_needs_new_data) {
    asio::io_context ctx;
    adopted_pair p(ctx);
    recorder r;
    r.wait(p.socket, tcp_socket::wait_read);
    send_text(p.peer, "one");
    settle(ctx);
    ASSERT_EQ(r.ended, 1);
    // Not drained: the data is still there, yet no new edge comes (what the relay must
    // never do, and what makes the waits cost no epoll_ctl).
    r.wait(p.socket, tcp_socket::wait_read);
    settle(ctx);
    EXPECT_EQ(r.ended, 1);
    send_text(p.peer, "two");
    settle(ctx);
    EXPECT_EQ(r.ended, 2);
    EXPECT_EQ(p.drain(), 6U);
}

TEST(edge_wait, a_write_wait_ends_when_a_full_socket_drains) {
    asio::io_context ctx;
    adopted_pair p(ctx);
    std::vector<char> chunk(64 * 1024, 'x');
    std::size_t queued = 0;
    for (;;) { // fill until the kernel takes no more
        const ssize_t n =
            ::send(p.socket.native_handle(), chunk.data(), chunk.size(), MSG_DONTWAIT);
        if (n <= 0)
            break;
        queued += static_cast<std::size_t>(n);
    }
    ASSERT_GT(queued, 0U);
    recorder r;
    r.wait(p.socket, tcp_socket::wait_write);
    settle(ctx);
    EXPECT_EQ(r.ended, 0) << "a full socket reported writable";
    std::vector<char> sink(1 << 20);
    std::size_t read = 0;
    while (read < queued && r.ended == 0) {
        const ssize_t n = ::recv(p.peer, sink.data(), sink.size(), MSG_DONTWAIT);
        if (n > 0)
            read += static_cast<std::size_t>(n);
        settle(ctx, 2ms);
    }
    EXPECT_EQ(r.ended, 1);
    EXPECT_EQ(r.aborted, 0);
}

TEST(edge_wait, cancel_and_close_abort_pending_waits) {
    asio::io_context ctx;
    adopted_pair p(ctx);
    recorder r;
    r.wait(p.socket, tcp_socket::wait_read);
    p.socket.cancel();
    settle(ctx);
    EXPECT_EQ(r.ended, 1);
    EXPECT_EQ(r.aborted, 1);
    r.wait(p.socket, tcp_socket::wait_read);
    p.socket.close();
    settle(ctx);
    EXPECT_EQ(r.ended, 2);
    EXPECT_EQ(r.aborted, 2);
}

TEST(edge_wait, a_pending_wait_is_freed_with_its_io_context) {
    recorder r;
    {
        asio::io_context ctx;
        adopted_pair p(ctx);
        r.wait(p.socket, tcp_socket::wait_read);
        settle(ctx, 5ms);
    } // the socket closes, then the context destroys the aborted wait (ASan: no leak)
    EXPECT_EQ(r.ended, 0) << "a wait destroyed with its context must not call back";
    // A second context on this thread (maybe at the same address) gets its own reactor.
    asio::io_context ctx2;
    adopted_pair q(ctx2);
    send_text(q.peer, "again");
    recorder r2;
    r2.wait(q.socket, tcp_socket::wait_read);
    settle(ctx2);
    EXPECT_EQ(r2.ended, 1);
}

TEST(edge_wait, rdhup_tells_a_fin_behind_the_bytes_from_bytes_alone) {
    asio::io_context ctx;
    adopted_pair p(ctx);
    recorder r;
    r.wait(p.socket, tcp_socket::wait_read);
    send_text(p.peer, "data only");
    settle(ctx);
    ASSERT_EQ(r.ended, 1);
    EXPECT_FALSE(nodelayd::peer_may_have_closed(p.socket));
    EXPECT_EQ(p.drain(), 9U);

    // Bytes and FIN before the next report: one edge for both.
    send_text(p.peer, "last words");
    ASSERT_EQ(::shutdown(p.peer, SHUT_WR), 0);
    r.wait(p.socket, tcp_socket::wait_read);
    settle(ctx);
    ASSERT_EQ(r.ended, 2);
    EXPECT_TRUE(nodelayd::peer_may_have_closed(p.socket));
    char buf[64];
    EXPECT_EQ(::recv(p.socket.native_handle(), buf, sizeof buf, MSG_DONTWAIT), 10);
    // The FIN brings no edge of its own: only the hint says to read on.
    r.wait(p.socket, tcp_socket::wait_read);
    settle(ctx);
    EXPECT_EQ(r.ended, 2);
    EXPECT_EQ(::recv(p.socket.native_handle(), buf, sizeof buf, MSG_DONTWAIT), 0);
    p.socket.cancel();
    settle(ctx);
}

// The events the kernel holds for `fd` in this process's epoll sets.
std::vector<unsigned long> registrations(int fd) {
    std::vector<unsigned long> masks;
    const std::regex tfd(R"(tfd:\s*(\d+)\s+events:\s*([0-9a-f]+))");
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
        std::error_code ec;
        if (std::filesystem::read_symlink(entry.path(), ec).string() != "anon_inode:[eventpoll]")
            continue;
        std::ifstream info("/proc/self/fdinfo/" + entry.path().filename().string());
        const std::string text((std::istreambuf_iterator<char>(info)),
                               std::istreambuf_iterator<char>());
        for (std::sregex_iterator m(text.begin(), text.end(), tfd), end; m != end; ++m)
            if (std::stoi((*m)[1]) == fd)
                masks.push_back(std::stoul((*m)[2], nullptr, 16));
    }
    return masks;
}

TEST(edge_wait, adopt_registers_once_for_reading_writing_and_rdhup) {
    asio::io_context ctx;
    adopted_pair p(ctx);
    const auto masks = registrations(p.socket.native_handle());
    ASSERT_EQ(masks.size(), 1U);
    constexpr unsigned long want = 0x1 /*IN*/ | 0x4 /*OUT*/ | 0x2000 /*RDHUP*/ | (1UL << 31);
    EXPECT_EQ(masks[0] & want, want) << std::hex << masks[0];
    // A write wait needs no change of the registration: still the same mask after one.
    recorder r;
    r.wait(p.socket, tcp_socket::wait_write);
    settle(ctx, 5ms);
    EXPECT_EQ(registrations(p.socket.native_handle()), masks);
    p.socket.cancel();
    settle(ctx);
}

} // namespace
