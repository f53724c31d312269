#pragma once
// Test kit shared by the tests that drive the real daemon (test_relay, test_faults, test_cli):
// descriptor ownership, reproducible byte streams and their digests, an echo upstream, and
// the end-of-test checks that nothing leaked in the daemon (descriptors, sessions) and that
// its log holds no unexpected error. Every wait is bounded.

#include "proxy_process.hpp"

#include <gtest/gtest.h>

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace nodelayd::testing {

/// Owns a descriptor.
class fd_t {
public:
    /// Takes `fd` (-1: none).
    explicit fd_t(int fd = -1) : fd_(fd) {}
    fd_t(fd_t&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    fd_t& operator=(fd_t&& o) noexcept {
        if (this != &o)
            reset(std::exchange(o.fd_, -1));
        return *this;
    }
    fd_t(const fd_t&) = delete;
    fd_t& operator=(const fd_t&) = delete;
    ~fd_t() { reset(); }
    /// The descriptor, still owned.
    [[nodiscard]] int get() const { return fd_; }
    /// Gives the descriptor up without closing it.
    int release() { return std::exchange(fd_, -1); }
    /// Closes the current descriptor and takes `fd`.
    void reset(int fd = -1);
    /// Whether a descriptor is held.
    explicit operator bool() const { return fd_ >= 0; }

private:
    int fd_;
};

/// A test run over IPv4 and IPv6 loopback: the parameter is "IPv6".
class loopback_test : public ::testing::TestWithParam<bool> {
protected:
    /// Whether this run is the IPv6 one.
    [[nodiscard]] bool v6() const { return GetParam(); }
};

/// "IPv4" or "IPv6", naming a loopback_test's instantiations.
std::string family_name(const ::testing::TestParamInfo<bool>& info);

/// "127.0.0.1:PORT" or "[::1]:PORT".
std::string address(bool v6, std::uint16_t port);

/// Arguments for a single-route nodelayd on a kernel-chosen port.
std::vector<std::string> proxy_args(bool v6, const std::vector<std::uint16_t>& upstreams,
                                    std::vector<std::string> extra = {},
                                    const std::string& threads = "1");

/// Seconds elapsed since `t0`.
double seconds_since(std::chrono::steady_clock::time_point t0);

/// Puts `fd` in non-blocking mode.
void set_nonblocking(int fd);

/// Fills `out` with 127.0.0.1:port (or [::1]:port); returns its length.
socklen_t loopback_address(bool v6, std::uint16_t port, sockaddr_storage& out);

/// A client connected through the daemon, and the upstream end the daemon connected for it.
struct relayed_pair {
    fd_t client;
    fd_t upstream;
};

/// Connects to the daemon's `port` and accepts (5 s bound) its connection on `up`; either
/// descriptor is empty when that step failed.
relayed_pair connect_through(std::uint16_t port, listener& up, bool v6);

/// Reads `fd` until the peer closes it (FIN or RST, with nothing more to read) and checks
/// that this happened between `lo` and `hi` seconds after `t0` (waiting up to `hi` + 3 s).
::testing::AssertionResult closed_between(int fd, std::chrono::steady_clock::time_point t0,
                                          double lo, double hi);

/// Starts a non-blocking connect; returns the descriptor (connect in progress or done).
int connect_nonblocking(std::uint16_t port, bool v6);

/// True when a "closed" outcome of recv_to_eof is a FIN or an RST (not a timeout/other error).
bool closed_by_peer(int error);

/// A reproducible pseudo-random byte stream (splitmix64), independent of how it is chunked.
class byte_stream {
public:
    /// The stream of `seed`.
    explicit byte_stream(std::uint64_t seed) : state_(seed) {}
    /// Writes the next `n` bytes to `out`.
    void fill(char* out, std::size_t n);
    /// Returns the next `n` bytes.
    std::string take(std::size_t n);

private:
    std::uint64_t next();
    std::uint64_t state_;
    std::uint64_t word_ = 0;
    int left_ = 0;
};

/// Length plus FNV-1a hash of a byte stream.
struct digest {
    std::uint64_t hash = 0xcbf29ce484222325ull;
    std::uint64_t length = 0;
    /// Adds `n` bytes at `p`.
    void add(const char* p, std::size_t n);
    auto operator<=>(const digest&) const = default;
};

/// The digest of the first `n` bytes of `seed`'s stream.
digest digest_of_stream(std::uint64_t seed, std::uint64_t n);

/// A chunk size from 1 B to 64 KiB, log-uniform so that tiny and large chunks both occur.
std::size_t random_chunk(std::mt19937_64& rng);

/// Echoes every connection until EOF, then half-closes it. Plain blocking sockets, one thread
/// per connection; stop() (or the destructor) unblocks and joins everything.
class echo_server {
public:
    /// Listens on loopback and starts accepting.
    explicit echo_server(bool v6);
    echo_server(const echo_server&) = delete;
    echo_server& operator=(const echo_server&) = delete;
    ~echo_server() { stop(); }

    /// The listening port.
    [[nodiscard]] std::uint16_t port() const { return listener_.port(); }
    /// Connections accepted so far.
    [[nodiscard]] std::size_t accepted() const { return accepted_.load(); }
    /// Closes everything and joins the threads.
    void stop();

private:
    void accept_loop();
    void serve(int fd);
    // Joins and closes what finished, so a long run does not pile up threads.
    void reap();

    struct served {
        int fd;
        std::thread thread;
        std::shared_ptr<std::atomic<bool>> done;
    };
    listener listener_;
    std::atomic<bool> stop_{false};
    std::atomic<std::size_t> accepted_{0};
    std::mutex mu_;
    std::vector<served> served_;
    std::thread acceptor_;
};

/// An upstream whose connects hang: a backlog-0 listener with one connection queued, so Linux
/// drops further SYNs (listen overflow) and a connect to it neither completes nor fails.
class silent_upstream {
public:
    /// Listens on loopback and queues the filler connection.
    explicit silent_upstream(bool v6);
    /// The listening port.
    [[nodiscard]] std::uint16_t port() const { return listener_.port(); }
    /// Whether a connect to it really hangs (a 300 ms probe does not complete).
    [[nodiscard]] bool hangs() const;

private:
    bool v6_;
    listener listener_;
    fd_t filler_;
};

/// One request/response through an echo upstream.
void expect_echo(int fd, const std::string& msg);

/// A file in the test temp directory, removed on destruction.
class temp_file {
public:
    /// Writes `text` to a fresh file whose name ends in `suffix`.
    explicit temp_file(const std::string& text, const std::string& suffix = ".ini");
    temp_file(const temp_file&) = delete;
    temp_file& operator=(const temp_file&) = delete;
    ~temp_file();
    /// Its path.
    [[nodiscard]] const std::string& path() const { return path_; }

private:
    std::string path_;
};

// ---------------------------------------------------------------------------------------------
// Looking into the daemon

/// Open descriptors of a process (entries of /proc/PID/fd), or -1.
int open_fds(pid_t pid);

/// CPU time (user + system) a process used so far, in seconds, from /proc/PID/stat.
double cpu_seconds(pid_t pid);

/// The port of the daemon's stats endpoint, from its "stats endpoint at" log line (0: none).
std::uint16_t stats_port(proxy_process& proxy);

/// What one HTTP exchange on a fresh connection gave.
struct http_result {
    /// Status codes of the responses, in order.
    std::vector<int> statuses;
    /// Everything received.
    std::string raw;
    /// How the connection ended: 0 closed by the server (FIN), ECONNRESET, or ETIMEDOUT.
    int error = ETIMEDOUT;
    /// Whether the connection could be made at all.
    bool connected = false;
    /// The body after the last response's header.
    [[nodiscard]] std::string body() const;
};

/// Sends `request` to 127.0.0.1:port as is, then reads until the server closes (or `limit`).
http_result http_exchange(std::uint16_t port, const std::string& request,
                          std::chrono::milliseconds limit = std::chrono::seconds(5));

/// Sum of every sample of the Prometheus family `name` in `metrics` (nullopt: not there).
std::optional<double> metric_total(const std::string& metrics, const std::string& name);

/// Scrapes GET /metrics and returns metric_total() of `name` (nullopt: scrape failed).
std::optional<double> scrape_metric(std::uint16_t stats_port, const std::string& name);

/// The daemon's log lines at level error or critical that contain none of `allowed`.
std::vector<std::string> unexpected_errors(const std::string& log,
                                           const std::vector<std::string>& allowed);

/// The end-of-test checks: constructed before a test's traffic, it takes the daemon's
/// descriptor count as the baseline; settled() then waits until the daemon is back to it with
/// no session active, and checks the log for unexpected errors.
class leak_check {
public:
    /// Takes the baseline once the daemon's descriptor count is steady.
    explicit leak_check(proxy_process& proxy);
    /// Waits up to `limit` for the baseline descriptors and nodelayd_connections_active 0,
    /// then checks that every error/critical log line contains one of `allowed_errors`.
    ::testing::AssertionResult settled(const std::vector<std::string>& allowed_errors = {},
                                       std::chrono::milliseconds limit = std::chrono::seconds(10));
    /// The baseline descriptor count.
    [[nodiscard]] int baseline_fds() const { return baseline_; }
    /// The daemon's stats port.
    [[nodiscard]] std::uint16_t stats() const { return stats_; }

private:
    proxy_process& proxy_;
    std::uint16_t stats_ = 0;
    int baseline_ = -1;
};

} // namespace nodelayd::testing
