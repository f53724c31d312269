#pragma once
// The syscall layer: every setsockopt, recv and sendmsg the relay issues lives here, so the
// relay reads as policy. Calls are non-blocking and report errors as error codes; an option
// the platform lacks is simply not applied.

#include <sys/socket.h>
#include <sys/uio.h>

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>

namespace nodelayd::sys {

/// Outcome of one non-blocking read.
struct read_result {
    /// Bytes read (0 on EOF, would-block or error).
    std::size_t bytes = 0;
    /// The peer sent FIN and everything before it has been read.
    bool eof = false;
    /// Nothing was ready.
    bool would_block = false;
    /// Any other failure (ECONNRESET, ETIMEDOUT, ...).
    std::error_code error;
    /// Kernel receive time of the bytes (CLOCK_REALTIME ns), when asked for and available.
    std::int64_t rx_ns = 0;
};

/// Outcome of one non-blocking gathered write.
struct write_result {
    /// Bytes the kernel accepted; may be fewer than offered.
    std::size_t bytes = 0;
    /// The socket buffer was full before anything was accepted.
    bool would_block = false;
    /// Any other failure (EPIPE, ECONNRESET, ...).
    std::error_code error;
};

/// Outcome of one non-blocking accept.
struct accept_result {
    /// The connection's socket, non-blocking and close-on-exec (-1 when none).
    int fd = -1;
    /// The peer's address.
    sockaddr_storage peer{};
    /// Its length.
    socklen_t peer_length = 0;
    /// No connection was waiting.
    bool would_block = false;
    /// Any other failure (EMFILE, ENOBUFS, ECONNABORTED, ...).
    std::error_code error;
};

/// Takes one connection off listener `fd` with accept4(2): non-blocking from the start, with
/// the peer's address, where accept() would need an ioctl and a getpeername of its own.
accept_result accept_connection(int fd);

/// A new non-blocking, close-on-exec TCP socket of `family` (AF_INET, AF_INET6), or -1 with
/// `ec` set.
int open_tcp_socket(int family, std::error_code& ec);

/// Starts a non-blocking connect; `in_progress` is set when it has not finished yet (wait for
/// the socket to become writable, then ask pending_error()).
std::error_code start_connect(int fd, const sockaddr* address, socklen_t length, bool& in_progress);

/// SO_ERROR: how a non-blocking connect ended (empty when it succeeded).
std::error_code pending_error(int fd);

/// Sets TCP_NODELAY; on an established socket also pushes anything held by MSG_MORE.
std::error_code set_nodelay(int fd, bool on);

/// Arms TCP_QUICKACK: the kernel ACKs at once instead of delaying. Not sticky, so callers
/// re-arm it before the first read after a write.
std::error_code arm_quickack(int fd);

/// Reads once into `buffer` without blocking; with `timestamp`, also fetches the kernel's
/// receive timestamp (needs enable_rx_timestamps()).
read_result read_some(int fd, std::span<std::byte> buffer, bool timestamp = false);

/// Copies what is queued to read into `buffer` without consuming it (MSG_PEEK), without
/// blocking: a later read returns the same bytes.
read_result peek_some(int fd, std::span<std::byte> buffer);

/// SO_TIMESTAMPNS: the kernel stamps every received segment (software RX time).
std::error_code enable_rx_timestamps(int fd);

/// The options a listening socket hands down: Linux copies TCP_NODELAY and SO_TIMESTAMPNS
/// into every socket it accepts, so setting them once on the listener saves two setsockopt
/// calls per connection.
struct inherited_options {
    /// Accepted sockets have TCP_NODELAY set to this.
    bool nodelay = false;
    /// Accepted sockets already have SO_TIMESTAMPNS on.
    bool rx_timestamps = false;
};

/// Sets TCP_NODELAY on listener `fd` to `nodelay` and, with `rx_timestamps`, SO_TIMESTAMPNS;
/// returns what its accepted sockets will have (an option that failed to set is reported
/// as the opposite of what was asked, so that callers set it per socket instead).
inherited_options set_listener_options(int fd, bool nodelay, bool rx_timestamps);

/// What listener `fd` hands down as it is, without changing it (`nodelay`: the value wanted,
/// so that an option that cannot be read is reported as its opposite).
inherited_options read_listener_options(int fd, bool nodelay);

/// CLOCK_REALTIME in nanoseconds: the clock receive timestamps use.
std::int64_t realtime_ns();

/// The TCP_INFO fields nodelayd reports.
struct tcp_info_sample {
    /// Smoothed RTT, microseconds.
    std::uint32_t rtt_us = 0;
    /// Segments sent.
    std::uint64_t segments_out = 0;
    /// Retransmitted segments over the connection's life.
    std::uint32_t retransmits = 0;
    /// Largest segment the peer sends us (the "full segment" of a read).
    std::uint32_t rcv_mss = 0;
    /// Segments with data received over the connection's life.
    std::uint32_t data_segments_in = 0;
};

/// TCP_MAXSEG: the connection's MSS (0 when unknown).
std::size_t max_segment(int fd);

/// Reads TCP_INFO; false when the socket has none (closed, not TCP).
bool read_tcp_info(int fd, tcp_info_sample& out);

/// A non-blocking pipe for splice(2): read end, write end.
struct pipe_fds {
    /// Read end (-1 when closed).
    int read = -1;
    /// Write end (-1 when closed).
    int write = -1;
};

/// Creates a non-blocking, close-on-exec pipe and asks for `capacity` bytes (F_SETPIPE_SZ);
/// `granted` gets what the kernel gave: the default 64 KiB when the ask is refused (above
/// fs.pipe-max-size without CAP_SYS_RESOURCE), 8 KiB when the user is over
/// fs.pipe-user-pages-soft. {-1, -1} on failure (e.g. out of descriptors).
pipe_fds make_pipe(std::size_t capacity, std::size_t& granted);

/// Closes both ends (those open) and marks them closed.
void close_pipe(pipe_fds& p);

/// Puts a socket in non-blocking mode (splice(2) honours only the descriptor's mode).
std::error_code set_nonblocking(int fd);

/// Moves up to `max` bytes from `from` to `to` with splice(2), without copying them through
/// user space and without blocking; one side must be a pipe. `more` sets SPLICE_F_MORE
/// (MSG_MORE on a socket). EOF and would-block are reported as by read_some().
read_result splice_some(int from, int to, std::size_t max, bool more);

/// Hands all of `chunks` to the kernel in one sendmsg (send for a single chunk); `more` sets
/// MSG_MORE.
write_result write_gathered(int fd, std::span<const iovec> chunks, bool more);

/// Sends whatever MSG_MORE left in the socket's queue, honouring Nagle if it is on.
std::error_code push_pending(int fd, bool nodelay);

/// shutdown(SHUT_WR): the peer sees FIN after everything already sent.
std::error_code shutdown_write(int fd);

/// SO_LINGER {1, 0}: the next close() sends RST instead of FIN.
std::error_code set_reset_on_close(int fd);

/// Enables SO_REUSEPORT (one listener per worker thread on the same address).
std::error_code set_reuse_port(int fd);

/// SIGINT, SIGTERM and SIGHUP: the signals the daemon handles (on the control loop only).
sigset_t handled_signals();

} // namespace nodelayd::sys
