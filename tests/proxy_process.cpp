#include "proxy_process.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>

namespace nodelayd::testing {

using namespace std::chrono;

namespace {

pid_t spawn(const std::vector<std::string>& args, int& out_fd, bool merge_stdout,
            const std::vector<std::string>& launcher = {}) {
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0)
        throw std::runtime_error("pipe failed");
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(pipefd[1], STDERR_FILENO);
        if (merge_stdout)
            ::dup2(pipefd[1], STDOUT_FILENO);
        std::vector<char*> argv;
        // NODELAYD_TEST_BIN runs the suite against another build (a sanitizer or patched one).
        const char* other = std::getenv("NODELAYD_TEST_BIN");
        std::string bin = other != nullptr && *other != '\0' ? other : NODELAYD_BIN;
        std::vector<std::string> copy = launcher;
        copy.push_back(bin);
        copy.insert(copy.end(), args.begin(), args.end());
        // Each test daemon gets a kernel-chosen stats port, so parallel tests never collide
        // on the default 127.0.0.1:9900.
        if (std::find(copy.begin(), copy.end(), "--stats") == copy.end()) {
            copy.emplace_back("--stats");
            copy.emplace_back("127.0.0.1:0");
        }
        for (auto& a : copy)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execvp(argv[0], argv.data());
        ::_exit(127);
    }
    ::close(pipefd[1]);
    out_fd = pipefd[0];
    ::fcntl(out_fd, F_SETFL, O_NONBLOCK);
    return pid;
}

// Appends what `fd` has to `out`, waiting up to `wait` for the first bytes.
bool read_available(int fd, std::string& out, milliseconds wait) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0)
        return true;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
            out.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        return n != 0; // false on EOF
    }
}

// Appends what `fd` has until its EOF (every writer gone), for at most `limit`.
void read_to_eof(int fd, std::string& out, milliseconds limit) {
    const auto deadline = steady_clock::now() + limit;
    while (steady_clock::now() < deadline)
        if (!read_available(fd, out, milliseconds(50)))
            return;
}

int wait_status(pid_t pid, milliseconds limit, int& status) {
    const auto deadline = steady_clock::now() + limit;
    for (;;) {
        int st = 0;
        const pid_t r = ::waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return status;
        }
        if (steady_clock::now() >= deadline)
            return -1;
        std::this_thread::sleep_for(milliseconds(5));
    }
}

void set_timeouts(int fd, seconds s) {
    timeval tv{static_cast<time_t>(s.count()), 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

} // namespace

proxy_process::proxy_process(std::vector<std::string> args, std::size_t routes,
                             const std::vector<std::string>& launcher) {
    pid_ = spawn(args, stderr_fd_, false, launcher);
    const std::regex listening(R"(listening on (?:\[[^\]]+\]|[0-9.]+):(\d+))");
    const auto deadline = steady_clock::now() + seconds(10);
    while (ports_.size() < routes && steady_clock::now() < deadline) {
        drain_stderr(milliseconds(50));
        ports_.clear();
        for (std::sregex_iterator it(log_.begin(), log_.end(), listening), end; it != end; ++it)
            ports_.push_back(static_cast<std::uint16_t>(std::stoi((*it)[1])));
        if (!running())
            break;
    }
    if (ports_.size() < routes) {
        // The destructor will not run: stop the child here.
        if (running()) {
            ::kill(pid_, SIGKILL);
            wait_exit(seconds(5));
        }
        ::close(stderr_fd_);
        throw std::runtime_error("nodelayd did not start; log:\n" + log_);
    }
}

proxy_process::~proxy_process() {
    if (running()) {
        signal(SIGTERM);
        if (wait_exit(seconds(5)) < 0) {
            signal(SIGKILL);
            wait_exit(seconds(5));
        }
    }
    // A sanitizer build reports at the fault, or at exit (leaks): read stderr to its end.
    read_to_eof(stderr_fd_, log_, seconds(5));
    if (has_sanitizer_report(log_))
        ADD_FAILURE() << "nodelayd's stderr holds a sanitizer report:\n" << log_;
    if (stderr_fd_ >= 0)
        ::close(stderr_fd_);
}

void proxy_process::drain_stderr(milliseconds wait) {
    read_available(stderr_fd_, log_, wait);
}

bool proxy_process::running() {
    if (status_ >= 0)
        return false;
    return wait_status(pid_, milliseconds(0), status_) < 0;
}

void proxy_process::signal(int sig) const {
    if (status_ < 0)
        ::kill(pid_, sig);
}

int proxy_process::wait_exit(milliseconds limit) {
    if (status_ >= 0)
        return status_;
    return wait_status(pid_, limit, status_);
}

std::string proxy_process::log() {
    drain_stderr(milliseconds(20));
    return log_;
}

bool proxy_process::wait_for_log(const std::string& needle, milliseconds limit, std::size_t count) {
    const auto deadline = steady_clock::now() + limit;
    for (;;) {
        if (count_of(log_, needle) >= count)
            return true;
        const auto left = duration_cast<milliseconds>(deadline - steady_clock::now());
        if (left.count() <= 0)
            return false;
        // Stops early once the pipe is at EOF (the child exited and everything is read).
        if (!read_available(stderr_fd_, log_, std::min(left, milliseconds(50))) &&
            count_of(log_, needle) < count)
            return false;
    }
}

int listening_sockets(std::uint16_t port, bool ipv6) {
    std::ifstream in(ipv6 ? "/proc/net/tcp6" : "/proc/net/tcp");
    std::string line;
    std::getline(in, line); // header
    int n = 0;
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string slot, local, remote, state;
        fields >> slot >> local >> remote >> state;
        const auto colon = local.rfind(':');
        if (colon == std::string::npos || state != "0A") // 0A: TCP_LISTEN
            continue;
        if (std::stoul(local.substr(colon + 1), nullptr, 16) == port)
            ++n;
    }
    return n;
}

std::size_t count_of(const std::string& haystack, const std::string& needle) {
    std::size_t n = 0;
    for (auto pos = haystack.find(needle); pos != std::string::npos;
         pos = haystack.find(needle, pos + needle.size()))
        ++n;
    return n;
}

bool has_sanitizer_report(const std::string& output) {
    // The first line of every report of these runtimes.
    static constexpr std::array<std::string_view, 4> markers{
        "ERROR: AddressSanitizer", "runtime error:", "WARNING: ThreadSanitizer",
        "ERROR: LeakSanitizer"};
    return std::any_of(markers.begin(), markers.end(),
                       [&](std::string_view m) { return output.find(m) != std::string::npos; });
}

run_result run_nodelayd(const std::vector<std::string>& args) {
    run_result r;
    int fd = -1;
    const pid_t pid = spawn(args, fd, true);
    const auto deadline = steady_clock::now() + seconds(10);
    while (steady_clock::now() < deadline) {
        const bool open = read_available(fd, r.output, milliseconds(50));
        if (wait_status(pid, milliseconds(0), r.status) >= 0) {
            read_available(fd, r.output, milliseconds(0));
            break;
        }
        if (!open)
            std::this_thread::sleep_for(milliseconds(5));
    }
    if (r.status < 0) {
        ::kill(pid, SIGKILL);
        wait_status(pid, seconds(5), r.status);
        r.status = -1;
    }
    read_to_eof(fd, r.output, seconds(5));
    ::close(fd);
    if (has_sanitizer_report(r.output))
        ADD_FAILURE() << "nodelayd's output holds a sanitizer report:\n" << r.output;
    return r;
}

listener::listener(bool ipv6, int backlog) {
    fd_ = ::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (ipv6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    } else {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    }
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd_, backlog) != 0)
        throw std::runtime_error(std::string("listener: ") + std::strerror(errno));
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
    port_ = ntohs(ipv6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                       : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

listener::~listener() {
    close();
}

void listener::close() {
    if (fd_ >= 0)
        ::close(fd_);
    fd_ = -1;
}

int listener::accept(milliseconds limit) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(limit.count())) <= 0)
        return -1;
    const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0)
        set_timeouts(fd, seconds(10));
    return fd;
}

int connect_to(std::uint16_t port, bool ipv6) {
    const int fd = ::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (ipv6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        a->sin6_port = htons(port);
        len = sizeof *a;
    } else {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->sin_port = htons(port);
        len = sizeof *a;
    }
    set_timeouts(fd, seconds(10));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

bool send_all(int fd, const std::string& data) {
    std::size_t off = 0;
    while (off < data.size()) {
        const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            return false;
        }
        off += static_cast<std::size_t>(n);
    }
    return true;
}

std::string recv_n(int fd, std::size_t n, milliseconds limit) {
    std::string out;
    const auto deadline = steady_clock::now() + limit;
    char buf[65536];
    while (out.size() < n) {
        const auto left = duration_cast<milliseconds>(deadline - steady_clock::now());
        pollfd p{fd, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0)
            break;
        const ssize_t r = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
        if (r <= 0)
            break;
        out.append(buf, static_cast<std::size_t>(r));
    }
    return out;
}

std::string recv_to_eof(int fd, int& error, milliseconds limit) {
    std::string out;
    error = ETIMEDOUT;
    const auto deadline = steady_clock::now() + limit;
    char buf[65536];
    for (;;) {
        const auto left = duration_cast<milliseconds>(deadline - steady_clock::now());
        pollfd p{fd, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0)
            return out;
        const ssize_t r = ::recv(fd, buf, sizeof buf, 0);
        if (r == 0) {
            error = 0;
            return out;
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            error = errno;
            return out;
        }
        out.append(buf, static_cast<std::size_t>(r));
    }
}

void close_with_reset(int fd) {
    const linger l{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd);
}

long rss_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmRSS:", 0) == 0)
            return std::stol(line.substr(6));
    return -1;
}

} // namespace nodelayd::testing
