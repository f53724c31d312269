#include "nodelayd/socket_ops.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>

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

} // namespace

std::error_code set_nodelay(int fd, bool on) {
    return set_int(fd, IPPROTO_TCP, TCP_NODELAY, on);
}

std::error_code arm_quickack(int fd) {
    return set_int(fd, IPPROTO_TCP, TCP_QUICKACK, 1);
}

read_result read_some(int fd, std::span<std::byte> buffer) {
    read_result r;
    for (;;) {
        const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
        if (n > 0) {
            r.bytes = static_cast<std::size_t>(n);
        } else if (n == 0) {
            r.eof = true;
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

write_result write_gathered(int fd, std::span<const iovec> chunks, bool more) {
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(chunks.data());
    msg.msg_iovlen = chunks.size();
    const int flags = MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0);
    write_result r;
    for (;;) {
        const ssize_t n = ::sendmsg(fd, &msg, flags);
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

std::error_code set_reuse_port(int fd) {
    return set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
}

} // namespace nodelayd::sys
