// The syscall layer on a real loopback TCP connection: reads with and without receive
// timestamps, peeks, and gathered writes of one chunk (send) and of several (sendmsg).

#include "nodelayd/socket_ops.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace sys = nodelayd::sys;

// Closes the descriptor it holds.
class fd_guard {
public:
    explicit fd_guard(int fd = -1) : fd_(fd) {}
    fd_guard(fd_guard&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    fd_guard& operator=(fd_guard&&) = delete;
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    ~fd_guard() {
        if (fd_ >= 0)
            ::close(fd_);
    }
    [[nodiscard]] int get() const { return fd_; }
    void reset() {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = -1;
    }

private:
    int fd_;
};

// Both ends of one established 127.0.0.1 connection, non-blocking.
struct tcp_pair {
    fd_guard a;
    fd_guard b;
};

tcp_pair connect_pair() {
    fd_guard lst(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (lst.get() < 0 || ::bind(lst.get(), reinterpret_cast<sockaddr*>(&sa), len) != 0 ||
        ::listen(lst.get(), 1) != 0 ||
        ::getsockname(lst.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0)
        return {fd_guard{}, fd_guard{}};
    fd_guard a(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (a.get() < 0 || ::connect(a.get(), reinterpret_cast<sockaddr*>(&sa), len) != 0)
        return {fd_guard{}, fd_guard{}};
    fd_guard b(::accept4(lst.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (b.get() < 0 || sys::set_nonblocking(a.get()) || sys::set_nonblocking(b.get()))
        return {fd_guard{}, fd_guard{}};
    return {std::move(a), std::move(b)};
}

// Waits up to 2 s for `fd` to be readable.
bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 2000) == 1;
}

// Reads exactly `n` bytes from `fd` (2 s per wait), or fewer if it fails.
std::string read_exactly(int fd, std::size_t n) {
    std::string out;
    std::array<std::byte, 4096> buf{};
    while (out.size() < n && readable(fd)) {
        const auto r =
            sys::read_some(fd, std::span(buf).first(std::min(buf.size(), n - out.size())));
        if (r.bytes == 0 && !r.would_block)
            break;
        out.append(reinterpret_cast<const char*>(buf.data()), r.bytes);
    }
    return out;
}

iovec chunk(const std::string& s) {
    return iovec{const_cast<char*>(s.data()), s.size()};
}

TEST(socket_ops, read_reports_would_block_bytes_then_eof) {
    auto p = connect_pair();
    ASSERT_GE(p.a.get(), 0);
    std::array<std::byte, 64> buf{};
    auto r = sys::read_some(p.b.get(), buf);
    EXPECT_TRUE(r.would_block);
    EXPECT_EQ(r.bytes, 0U);
    EXPECT_FALSE(r.eof);

    ASSERT_EQ(::send(p.a.get(), "hello", 5, 0), 5);
    ASSERT_TRUE(readable(p.b.get()));
    r = sys::read_some(p.b.get(), buf);
    ASSERT_EQ(r.bytes, 5U);
    EXPECT_EQ(std::memcmp(buf.data(), "hello", 5), 0);
    EXPECT_EQ(r.rx_ns, 0) << "no timestamp asked for";

    ASSERT_EQ(::shutdown(p.a.get(), SHUT_WR), 0);
    ASSERT_TRUE(readable(p.b.get()));
    r = sys::read_some(p.b.get(), buf);
    EXPECT_TRUE(r.eof);
    EXPECT_EQ(r.bytes, 0U);
    EXPECT_FALSE(r.error);
}

TEST(socket_ops, timestamped_read_carries_the_kernel_receive_time) {
    auto p = connect_pair();
    ASSERT_GE(p.a.get(), 0);
    ASSERT_FALSE(sys::enable_rx_timestamps(p.b.get()));
    std::array<std::byte, 64> buf{};
    sys::read_result r;
    std::int64_t before = 0;
    std::int64_t after = 0;
    // The first SO_TIMESTAMPNS socket of a quiet machine switches the kernel's timestamping
    // on from a work item, so segments of the first milliseconds may carry no time (the
    // relay then records nothing); the time must come within a few tries.
    for (int i = 0; i < 50 && r.rx_ns == 0; ++i) {
        if (i > 0)
            ::usleep(10'000);
        before = sys::realtime_ns();
        ASSERT_EQ(::send(p.a.get(), "stamp", 5, 0), 5);
        ASSERT_TRUE(readable(p.b.get()));
        after = sys::realtime_ns();
        r = sys::read_some(p.b.get(), buf, true);
        ASSERT_EQ(r.bytes, 5U);
        EXPECT_EQ(std::memcmp(buf.data(), "stamp", 5), 0);
    }
    EXPECT_GE(r.rx_ns, before);
    EXPECT_LE(r.rx_ns, after);
}

TEST(socket_ops, peek_leaves_the_bytes_for_the_next_read) {
    auto p = connect_pair();
    ASSERT_GE(p.a.get(), 0);
    ASSERT_EQ(::send(p.a.get(), "PROXY", 5, 0), 5);
    ASSERT_TRUE(readable(p.b.get()));
    std::array<std::byte, 64> buf{};
    EXPECT_EQ(sys::peek_some(p.b.get(), buf).bytes, 5U);
    EXPECT_EQ(read_exactly(p.b.get(), 5), "PROXY");
}

TEST(socket_ops, gathered_writes_of_one_and_of_several_chunks_arrive_in_order) {
    auto p = connect_pair();
    ASSERT_GE(p.a.get(), 0);
    const std::string one = "single chunk;";
    const std::vector<std::string> parts = {"first,", "", "second,", std::string(3000, 'x')};
    std::vector<iovec> iov(parts.size());
    std::transform(parts.begin(), parts.end(), iov.begin(), chunk);
    const iovec single = chunk(one);

    auto w = sys::write_gathered(p.a.get(), std::span(&single, 1), false);
    ASSERT_FALSE(w.error);
    EXPECT_EQ(w.bytes, one.size());
    w = sys::write_gathered(p.a.get(), iov, true); // MSG_MORE: held until pushed
    ASSERT_FALSE(w.error);
    const std::string rest = parts[0] + parts[1] + parts[2] + parts[3];
    EXPECT_EQ(w.bytes, rest.size());
    ASSERT_FALSE(sys::push_pending(p.a.get(), true));
    EXPECT_EQ(read_exactly(p.b.get(), one.size() + rest.size()), one + rest);
}

TEST(socket_ops, write_to_a_full_socket_would_block_and_to_a_reset_one_fails) {
    auto p = connect_pair();
    ASSERT_GE(p.a.get(), 0);
    const std::string block(std::size_t{64} * 1024, 'y');
    const iovec one = chunk(block);
    sys::write_result w;
    std::size_t total = 0;
    // Nobody reads b: both socket buffers fill up, then the kernel refuses.
    for (int i = 0; i < 10'000 && !w.would_block; ++i) {
        w = sys::write_gathered(p.a.get(), std::span(&one, 1), false);
        ASSERT_FALSE(w.error) << w.error.message();
        total += w.bytes;
    }
    EXPECT_TRUE(w.would_block);
    EXPECT_EQ(w.bytes, 0U);
    EXPECT_GT(total, block.size());

    // b closes with unread data: Linux answers with RST; writing then fails (EPIPE or
    // ECONNRESET) instead of raising SIGPIPE, which would end this test binary.
    p.b.reset();
    ASSERT_TRUE(readable(p.a.get()));
    w = {};
    for (int i = 0; i < 10 && !w.error; ++i)
        w = sys::write_gathered(p.a.get(), std::span(&one, 1), false);
    EXPECT_TRUE(w.error == std::errc::broken_pipe || w.error == std::errc::connection_reset)
        << w.error.message();
}

} // namespace
