#pragma once
// Readiness waits that trust Asio's edge-triggered epoll registration. A socket registers
// with its io_context's reactor once, edge-triggered; Asio's async_wait then re-arms the
// descriptor (EPOLL_CTL_MOD) on every wait, because it cannot know whether the caller has
// drained the socket: a syscall per relayed message, 6% of the relay's CPU per keep-alive
// request. The relay always has drained it (read until the kernel had nothing more, or written
// until it took no more) before it waits, and then the next edge the kernel reports is
// enough: these waits never touch the registration (HAProxy's and nginx's way with their
// own epoll sets). Asio's reactor is used as it is, through its detail layer (Boost 1.81's
// epoll_reactor, fixed by the stack): everything that knows about it is in edge_wait.cpp.

#include "nodelayd/asio_support.hpp"

#include <cstdint>

namespace nodelayd {

/// Called when an edge wait ends, on the socket's io_context: `target` and `tag` as given to
/// async_edge_wait(); `aborted` when the wait was cancelled (cancel(), close()) rather than
/// ended by readiness.
using edge_callback = void (*)(void* target, std::uint8_t tag, bool aborted);

/// Waits until `socket` becomes ready for `what` (wait_read or wait_write), without re-arming
/// its epoll registration. It ends at once when the reactor reported that readiness since the
/// last edge wait of the same kind on the socket ended (for a socket registered by Asio's
/// assign and not by adopt_socket: or since it was registered), else with the next edge. So
/// the caller must have drained the socket for `what` since that wait ended (read until
/// EAGAIN, or until a short read with peer_may_have_closed() false; written until the kernel
/// took less than offered), or it may wait for an edge that never comes; a spurious end (a
/// reported edge whose readiness the caller consumed already) is possible and harmless. No
/// allocation but one small block from the thread's pool; `done` runs once, never from
/// within this call.
void async_edge_wait(tcp_socket& socket, tcp_socket::wait_type what, edge_callback done,
                     void* target, std::uint8_t tag);

/// Makes `socket` own `fd`: a connected or connecting TCP socket of `protocol`, already
/// non-blocking (accept4/socket with SOCK_NONBLOCK), that no other descriptor refers to.
/// Registers it with the reactor (EPOLL_CTL_ADD) for EPOLLOUT and EPOLLRDHUP as well
/// (EPOLL_CTL_MOD; for a `connecting` socket, with the MOD of its first async_wait for
/// writing, which the connect needs anyway), and tells Asio what `assign` cannot know: that it
/// needs no FIONBIO of its own, and that close() may leave its removal from the epoll set to the
/// kernel (Asio otherwise issues EPOLL_CTL_DEL first, in case of a dup). On failure `fd` is closed
/// and `ec` set.
void adopt_socket(tcp_socket& socket, const boost::asio::ip::tcp& protocol, int fd, bool connecting,
                  boost::system::error_code& ec);

/// Whether the peer may have sent FIN (or the socket failed): the last events epoll reported
/// for an adopted socket included EPOLLRDHUP (or EPOLLHUP, EPOLLERR). A short read does not
/// prove a socket drained, since a FIN that came with the bytes brings no edge of its own; when
/// this says no, it does: a FIN that comes later brings an edge.
bool peer_may_have_closed(tcp_socket& socket);

} // namespace nodelayd
