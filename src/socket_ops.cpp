#include "nodelayd/socket_ops.hpp"

#include <fcntl.h>     // pipe2, splice
#include <linux/tcp.h> // struct tcp_info with tcpi_segs_out (glibc's copy predates it)
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <utility>

namespace nodelayd::sys {
namespace {

std::error_code last_error() {
    return {errno, std::system_category()};
}

std::error_code set_int(int fd, int level, int name, int value) {
    if (::setsockopt(fd, level, name, &value, sizeof value) != 0)
        return last_error();
    return {};
}

// Fills `r` from a read-like call's return value; false when the call was interrupted and
// must be repeated.
bool classify(ssize_t n, read_result& r) {
    if (n > 0)
        r.bytes = static_cast<std::size_t>(n);
    else if (n == 0)
        r.eof = true;
    else if (errno == EINTR)
        return false;
    else if (errno == EAGAIN || errno == EWOULDBLOCK)
        r.would_block = true;
    else
        r.error = last_error();
    return true;
}

// recv(2) with `flags`, retried on EINTR. Without a control message to fetch, recv (and
// send below) skip the msghdr and iovec copies of recvmsg/sendmsg: measured 2-3% of the
// relay's CPU per keep-alive request.
read_result receive(int fd, std::span<std::byte> buffer, int flags) {
    read_result r;
    while (!classify(::recv(fd, buffer.data(), buffer.size(), flags), r)) {
    }
    return r;
}

// The option's value, or `otherwise` when it cannot be read.
int get_int(int fd, int level, int name, int otherwise) {
    int value = 0;
    socklen_t size = sizeof value;
    if (::getsockopt(fd, level, name, &value, &size) != 0)
        return otherwise;
    return value;
}

} // namespace

accept_result accept_connection(int fd) {
    accept_result r;
    for (;;) {
        r.peer_length = sizeof r.peer;
        r.fd = ::accept4(fd, reinterpret_cast<sockaddr*>(&r.peer), &r.peer_length,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (r.fd >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            r.would_block = true;
        else
            r.error = last_error();
        return r;
    }
}

int open_tcp_socket(int family, std::error_code& ec) {
    const int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    ec = fd < 0 ? last_error() : std::error_code();
    return fd;
}

std::error_code start_connect(int fd, const sockaddr* address, socklen_t length,
                              bool& in_progress) {
    in_progress = false;
    if (::connect(fd, address, length) == 0)
        return {};
    // EINTR: the connect goes on in the background, as with EINPROGRESS.
    if (errno == EINPROGRESS || errno == EINTR) {
        in_progress = true;
        return {};
    }
    return last_error();
}

std::error_code pending_error(int fd) {
    int error = 0;
    socklen_t size = sizeof error;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) != 0)
        return last_error();
    return error == 0 ? std::error_code() : std::error_code(error, std::system_category());
}

std::error_code set_nodelay(int fd, bool on) {
    return set_int(fd, IPPROTO_TCP, TCP_NODELAY, on);
}

std::error_code arm_quickack(int fd) {
    return set_int(fd, IPPROTO_TCP, TCP_QUICKACK, 1);
}

read_result read_some(int fd, std::span<std::byte> buffer, bool timestamp) {
    if (!timestamp)
        return receive(fd, buffer, MSG_DONTWAIT);
    read_result r;
    iovec iov{buffer.data(), buffer.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    do {
        if (timestamp) {
            msg.msg_control = control;
            msg.msg_controllen = sizeof control;
        }
    } while (!classify(::recvmsg(fd, &msg, MSG_DONTWAIT), r));
    if (r.bytes > 0 && timestamp)
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                timespec ts{};
                std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
                r.rx_ns = ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
            }
    return r;
}

read_result peek_some(int fd, std::span<std::byte> buffer) {
    return receive(fd, buffer, MSG_PEEK | MSG_DONTWAIT);
}

write_result write_gathered(int fd, std::span<const iovec> chunks, bool more) {
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(chunks.data());
    msg.msg_iovlen = chunks.size();
    const int flags = MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0);
    write_result r;
    for (;;) {
        const ssize_t n = chunks.size() == 1
                              ? ::send(fd, chunks[0].iov_base, chunks[0].iov_len, flags)
                              : ::sendmsg(fd, &msg, flags);
        if (n >= 0) {
            r.bytes = static_cast<std::size_t>(n);
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            r.would_block = true;
        } else {
            r.error = last_error();
        }
        return r;
    }
}

pipe_fds make_pipe(std::size_t capacity, std::size_t& granted) {
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        return {};
    int got =
        ::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(std::min<std::size_t>(capacity, INT_MAX)));
    if (got < 0)
        got = ::fcntl(fds[1], F_GETPIPE_SZ);
    granted = got > 0 ? static_cast<std::size_t>(got) : 0;
    return {fds[0], fds[1]};
}

void close_pipe(pipe_fds& p) {
    for (int* fd : {&p.read, &p.write})
        if (*fd >= 0)
            ::close(std::exchange(*fd, -1));
}

std::error_code set_nonblocking(int fd) {
    int on = 1;
    if (::ioctl(fd, FIONBIO, &on) != 0)
        return last_error();
    return {};
}

read_result splice_some(int from, int to, std::size_t max, bool more) {
    const unsigned flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK | (more ? SPLICE_F_MORE : 0U);
    read_result r;
    while (!classify(::splice(from, nullptr, to, nullptr, max, flags), r)) {
    }
    return r;
}

std::error_code push_pending(int fd, bool nodelay) {
    // Both options push the queue when written, even with an unchanged value (tcp_sock_set_cork,
    // __tcp_sock_set_nodelay); TCP_CORK=0 keeps Nagle's rules for a side that wants them.
    if (nodelay)
        return set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    return set_int(fd, IPPROTO_TCP, TCP_CORK, 0);
}

std::error_code shutdown_write(int fd) {
    if (::shutdown(fd, SHUT_WR) != 0)
        return last_error();
    return {};
}

std::error_code set_reset_on_close(int fd) {
    const linger l{1, 0};
    if (::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) != 0)
        return last_error();
    return {};
}

std::error_code enable_rx_timestamps(int fd) {
    return set_int(fd, SOL_SOCKET, SO_TIMESTAMPNS, 1);
}

inherited_options set_listener_options(int fd, bool nodelay, bool rx_timestamps) {
    inherited_options out;
    out.nodelay = set_nodelay(fd, nodelay) ? !nodelay : nodelay;
    out.rx_timestamps = rx_timestamps && !enable_rx_timestamps(fd);
    return out;
}

inherited_options read_listener_options(int fd, bool nodelay) {
    inherited_options out;
    // Unreadable: the opposite of what is wanted, so that every socket gets it set.
    out.nodelay = get_int(fd, IPPROTO_TCP, TCP_NODELAY, nodelay ? 0 : 1) != 0;
    out.rx_timestamps = get_int(fd, SOL_SOCKET, SO_TIMESTAMPNS, 0) != 0;
    return out;
}

std::int64_t realtime_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

std::size_t max_segment(int fd) {
    int mss = 0;
    socklen_t len = sizeof mss;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, &len) != 0 || mss < 0)
        return 0;
    return static_cast<std::size_t>(mss);
}

bool read_tcp_info(int fd, tcp_info_sample& out) {
    tcp_info info{};
    socklen_t len = sizeof info;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0)
        return false;
    out.rtt_us = info.tcpi_rtt;
    out.segments_out = info.tcpi_segs_out;
    out.retransmits = info.tcpi_total_retrans;
    out.rcv_mss = info.tcpi_rcv_mss;
    out.data_segments_in = info.tcpi_data_segs_in;
    return true;
}

std::error_code set_reuse_port(int fd) {
    return set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
}

sigset_t handled_signals() {
    sigset_t set{};
    ::sigemptyset(&set);
    for (const int sig : {SIGINT, SIGTERM, SIGHUP})
        ::sigaddset(&set, sig);
    return set;
}

} // namespace nodelayd::sys
