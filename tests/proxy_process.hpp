#pragma once
// Test support: runs the real nodelayd binary as a child process and loopback sockets to
// talk through it. Every wait is bounded; destructors stop what they started.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace nodelayd::testing {

/// A nodelayd child process; stopped with SIGTERM (then SIGKILL) on destruction.
class proxy_process {
public:
    /// Starts NODELAYD_BIN with `args` and waits (up to 10 s) for every route's
    /// "listening on" line, or for the process to exit. A `launcher` (e.g. {"prlimit",
    /// "--nofile=64:64"}) runs the binary, exec'ing it in the same process.
    explicit proxy_process(std::vector<std::string> args, std::size_t routes = 1,
                           const std::vector<std::string>& launcher = {});
    proxy_process(const proxy_process&) = delete;
    proxy_process& operator=(const proxy_process&) = delete;
    ~proxy_process();

    /// Port of the n-th route's listener, parsed from the log.
    [[nodiscard]] std::uint16_t port(std::size_t n = 0) const { return ports_.at(n); }
    /// The child process id.
    [[nodiscard]] pid_t pid() const { return pid_; }
    /// True while the child runs.
    bool running();
    /// Sends `sig` to the child.
    void signal(int sig) const;
    /// Waits up to `limit` for exit; returns the exit status (or -1 on timeout).
    int wait_exit(std::chrono::milliseconds limit);
    /// Everything the child wrote to stderr so far.
    std::string log();
    /// Waits up to `limit` until the log holds `needle` at least `count` times; returns
    /// whether it does.
    bool wait_for_log(const std::string& needle, std::chrono::milliseconds limit,
                      std::size_t count = 1);

private:
    void drain_stderr(std::chrono::milliseconds wait);
    pid_t pid_ = -1;
    int stderr_fd_ = -1;
    int status_ = -1;
    std::string log_;
    std::vector<std::uint16_t> ports_;
};

/// Whether `output` (a daemon's stderr) holds a report of ASan, UBSan, TSan or LSan.
bool has_sanitizer_report(const std::string& output);

/// Runs NODELAYD_BIN with `args` to completion (10 s bound); returns exit status and output.
struct run_result {
    int status = -1;
    std::string output;
};
run_result run_nodelayd(const std::vector<std::string>& args);

/// A loopback TCP listener on a kernel-chosen port (IPv4 or IPv6).
class listener {
public:
    /// Binds 127.0.0.1:0 (or [::1]:0) with the given backlog.
    explicit listener(bool ipv6 = false, int backlog = 128);
    listener(const listener&) = delete;
    listener& operator=(const listener&) = delete;
    ~listener();
    /// The bound port.
    [[nodiscard]] std::uint16_t port() const { return port_; }
    /// Accepts one connection, waiting at most `limit`; returns -1 on timeout.
    int accept(std::chrono::milliseconds limit = std::chrono::seconds(5));
    /// Closes the listening socket.
    void close();
    /// The listening descriptor.
    [[nodiscard]] int fd() const { return fd_; }

private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

/// Connects to 127.0.0.1:port (or [::1]:port); returns the descriptor or -1.
int connect_to(std::uint16_t port, bool ipv6 = false);

/// Sends all of `data` (blocking, bounded by SO_SNDTIMEO of 10 s). Returns false on error.
bool send_all(int fd, const std::string& data);

/// Reads exactly `n` bytes or until EOF/error/timeout; returns what was read.
std::string recv_n(int fd, std::size_t n,
                   std::chrono::milliseconds limit = std::chrono::seconds(10));

/// Reads until EOF; errno-style result in `error` (0 on clean EOF, ETIMEDOUT on timeout).
std::string recv_to_eof(int fd, int& error,
                        std::chrono::milliseconds limit = std::chrono::seconds(10));

/// Closes with SO_LINGER 0 so the peer sees RST.
void close_with_reset(int fd);

/// Resident set size of a process in KiB, from /proc.
long rss_kib(pid_t pid);

/// Sockets in LISTEN state on TCP port `port` (IPv4 or IPv6 table), from /proc/net.
int listening_sockets(std::uint16_t port, bool ipv6 = false);

/// Occurrences of `needle` in `haystack`.
std::size_t count_of(const std::string& haystack, const std::string& needle);

} // namespace nodelayd::testing
