#include "relay_kit.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

namespace nodelayd::testing {

using namespace std::chrono;
using namespace std::chrono_literals;

void fd_t::reset(int fd) {
    if (fd_ >= 0)
        ::close(fd_);
    fd_ = fd;
}

std::string family_name(const ::testing::TestParamInfo<bool>& info) {
    return info.param ? "IPv6" : "IPv4";
}

std::string address(bool v6, std::uint16_t port) {
    return (v6 ? std::string("[::1]:") : std::string("127.0.0.1:")) + std::to_string(port);
}

std::vector<std::string> proxy_args(bool v6, const std::vector<std::uint16_t>& upstreams,
                                    std::vector<std::string> extra, const std::string& threads) {
    std::string ups;
    for (auto p : upstreams)
        ups += (ups.empty() ? "" : ",") + address(v6, p);
    std::vector<std::string> args{
        "--listen", v6 ? "[::1]:0" : "127.0.0.1:0", "--upstream", ups, "--threads", threads};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
}

double seconds_since(steady_clock::time_point t0) {
    return duration<double>(steady_clock::now() - t0).count();
}

void set_nonblocking(int fd) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

socklen_t loopback_address(bool v6, std::uint16_t port, sockaddr_storage& out) {
    out = {};
    if (v6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&out);
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        a->sin6_port = htons(port);
        return sizeof *a;
    }
    auto* a = reinterpret_cast<sockaddr_in*>(&out);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->sin_port = htons(port);
    return sizeof *a;
}

relayed_pair connect_through(std::uint16_t port, listener& up, bool v6) {
    relayed_pair p{fd_t(connect_to(port, v6)), fd_t()};
    if (p.client)
        p.upstream.reset(up.accept(5s));
    return p;
}

::testing::AssertionResult closed_between(int fd, steady_clock::time_point t0, double lo,
                                          double hi) {
    const auto limit =
        duration_cast<milliseconds>(t0 + duration<double>(hi + 3) - steady_clock::now());
    int err = -1;
    const std::string rest = recv_to_eof(fd, err, limit);
    const double took = seconds_since(t0);
    if (!rest.empty() || !closed_by_peer(err) || took < lo || took >= hi)
        return ::testing::AssertionFailure()
               << "after " << took << " s (expected " << lo << " to " << hi
               << " s): " << (err == 0 ? "EOF" : std::strerror(err)) << ", " << rest.size()
               << " unexpected bytes";
    return ::testing::AssertionSuccess() << "closed after " << took << " s";
}

int connect_nonblocking(std::uint16_t port, bool v6) {
    const int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_storage ss{};
    const socklen_t len = loopback_address(v6, port, ss);
    ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
    return fd;
}

bool closed_by_peer(int error) {
    return error == 0 || error == ECONNRESET;
}

// ---------------------------------------------------------------------------------------------

void byte_stream::fill(char* out, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        if (left_ == 0) {
            word_ = next();
            left_ = 8;
        }
        out[i] = static_cast<char>(word_ & 0xff);
        word_ >>= 8;
        --left_;
    }
}

std::string byte_stream::take(std::size_t n) {
    std::string s(n, '\0');
    fill(s.data(), n);
    return s;
}

std::uint64_t byte_stream::next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void digest::add(const char* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        hash ^= static_cast<unsigned char>(p[i]);
        hash *= 0x100000001b3ull;
    }
    length += n;
}

digest digest_of_stream(std::uint64_t seed, std::uint64_t n) {
    byte_stream gen(seed);
    digest d;
    std::string buf(64 * 1024, '\0');
    while (n > 0) {
        const auto k = static_cast<std::size_t>(std::min<std::uint64_t>(n, buf.size()));
        gen.fill(buf.data(), k);
        d.add(buf.data(), k);
        n -= k;
    }
    return d;
}

std::size_t random_chunk(std::mt19937_64& rng) {
    const int bits = std::uniform_int_distribution<int>(0, 16)(rng);
    const std::size_t base = std::size_t{1} << bits;
    return std::min<std::size_t>(
        65536, base + std::uniform_int_distribution<std::size_t>(0, base - 1)(rng));
}

// ---------------------------------------------------------------------------------------------

echo_server::echo_server(bool v6) : listener_(v6) {
    acceptor_ = std::thread([this] { accept_loop(); });
}

void echo_server::stop() {
    if (stop_.exchange(true))
        return;
    acceptor_.join();
    {
        std::lock_guard lock(mu_);
        for (auto& s : served_)
            ::shutdown(s.fd, SHUT_RDWR);
    }
    for (auto& s : served_) {
        s.thread.join();
        ::close(s.fd);
    }
    served_.clear();
    listener_.close();
}

void echo_server::accept_loop() {
    while (!stop_.load()) {
        reap();
        const int fd = listener_.accept(50ms);
        if (fd < 0)
            continue;
        ++accepted_;
        std::lock_guard lock(mu_);
        auto done = std::make_shared<std::atomic<bool>>(false);
        served_.push_back({fd, std::thread([this, fd, done] {
                               serve(fd);
                               *done = true;
                           }),
                           done});
    }
}

void echo_server::reap() {
    std::lock_guard lock(mu_);
    std::erase_if(served_, [](served& s) {
        if (!*s.done)
            return false;
        s.thread.join();
        ::close(s.fd);
        return true;
    });
}

void echo_server::serve(int fd) {
    char buf[65536];
    for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
            if (!send_all(fd, std::string(buf, static_cast<std::size_t>(n))))
                return;
            continue;
        }
        if (n == 0) {
            ::shutdown(fd, SHUT_WR);
            return;
        }
        if ((errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) && !stop_.load())
            continue;
        return;
    }
}

silent_upstream::silent_upstream(bool v6)
    : v6_(v6), listener_(v6, 0), filler_(connect_to(listener_.port(), v6)) {}

bool silent_upstream::hangs() const {
    fd_t probe(connect_nonblocking(listener_.port(), v6_));
    pollfd p{probe.get(), POLLOUT, 0};
    return filler_ && ::poll(&p, 1, 300) == 0;
}

void expect_echo(int fd, const std::string& msg) {
    ASSERT_TRUE(send_all(fd, msg));
    EXPECT_EQ(recv_n(fd, msg.size(), 5s), msg);
}

temp_file::temp_file(const std::string& text, const std::string& suffix) {
    static std::atomic<int> counter{0};
    path_ = ::testing::TempDir() + "nodelayd_test_" + std::to_string(::getpid()) + "_" +
            std::to_string(counter++) + suffix;
    std::ofstream(path_) << text;
}

temp_file::~temp_file() {
    ::unlink(path_.c_str());
}

// ---------------------------------------------------------------------------------------------

int open_fds(pid_t pid) {
    std::error_code ec;
    int n = 0;
    for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec), end;
         !ec && it != end; it.increment(ec))
        ++n;
    return ec ? -1 : n;
}

double cpu_seconds(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // The command name may hold spaces; fields count from the last ')'.
    const auto close = stat.rfind(')');
    if (close == std::string::npos)
        return -1;
    std::istringstream fields(stat.substr(close + 2));
    std::string field;
    double ticks = 0;
    // After ')': state is field 3; utime and stime are fields 14 and 15.
    for (int i = 3; i <= 15 && fields >> field; ++i)
        if (i >= 14)
            ticks += std::stod(field);
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::uint16_t stats_port(proxy_process& proxy) {
    static const std::regex line(R"(stats endpoint at http://[0-9.]+:(\d+))");
    const std::string log = proxy.log();
    std::smatch m;
    if (!std::regex_search(log, m, line))
        return 0;
    return static_cast<std::uint16_t>(std::stoi(m[1]));
}

std::string http_result::body() const {
    const auto head = raw.rfind("\r\n\r\n");
    return head == std::string::npos ? std::string() : raw.substr(head + 4);
}

http_result http_exchange(std::uint16_t port, const std::string& request, milliseconds limit) {
    http_result r;
    fd_t c(connect_to(port));
    if (!c)
        return r;
    r.connected = true;
    send_all(c.get(), request); // the server may close before taking all of it
    r.raw = recv_to_eof(c.get(), r.error, limit);
    static const std::regex status(R"(HTTP/1\.[01] (\d{3}) )");
    for (std::sregex_iterator it(r.raw.begin(), r.raw.end(), status), end; it != end; ++it)
        r.statuses.push_back(std::stoi((*it)[1]));
    return r;
}

std::optional<double> metric_total(const std::string& metrics, const std::string& name) {
    std::optional<double> total;
    std::istringstream in(metrics);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(name, 0) != 0 || line.size() <= name.size())
            continue;
        const char next = line[name.size()];
        if (next != '{' && next != ' ')
            continue; // another family sharing the prefix
        total = total.value_or(0) + std::stod(line.substr(line.rfind(' ') + 1));
    }
    return total;
}

std::optional<double> scrape_metric(std::uint16_t stats_port, const std::string& name) {
    const auto r = http_exchange(stats_port, "GET /metrics HTTP/1.1\r\nHost: test\r\n"
                                             "Connection: close\r\n\r\n");
    if (r.statuses != std::vector<int>{200})
        return std::nullopt;
    return metric_total(r.body(), name);
}

std::vector<std::string> unexpected_errors(const std::string& log,
                                           const std::vector<std::string>& allowed) {
    std::vector<std::string> out;
    std::istringstream in(log);
    std::string line;
    while (std::getline(in, line)) {
        // "2024-01-01T00:00:00.000 error message": the level is the second word.
        std::istringstream words(line);
        std::string when, level;
        words >> when >> level;
        if (level != "error" && level != "critical")
            continue;
        if (std::none_of(allowed.begin(), allowed.end(),
                         [&](const std::string& a) { return line.find(a) != std::string::npos; }))
            out.push_back(line);
    }
    return out;
}

leak_check::leak_check(proxy_process& proxy) : proxy_(proxy), stats_(stats_port(proxy)) {
    // Threads and the stats endpoint may still be opening descriptors just after the
    // "listening on" line: wait for one answered request and a count that holds for 100 ms.
    if (stats_ != 0)
        http_exchange(stats_, "GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    const auto deadline = steady_clock::now() + 3s;
    int last = open_fds(proxy_.pid());
    while (steady_clock::now() < deadline) {
        std::this_thread::sleep_for(100ms);
        const int now = open_fds(proxy_.pid());
        if (now == last)
            break;
        last = now;
    }
    baseline_ = last;
}

::testing::AssertionResult leak_check::settled(const std::vector<std::string>& allowed_errors,
                                               milliseconds limit) {
    if (stats_ == 0)
        return ::testing::AssertionFailure() << "no 'stats endpoint at' line in the log:\n"
                                             << proxy_.log();
    const auto deadline = steady_clock::now() + limit;
    std::optional<double> active;
    int fds = -1;
    for (;;) {
        active = scrape_metric(stats_, "nodelayd_connections_active");
        // The scrape's own connection closes a moment after ours: wait for the count.
        for (int i = 0; i < 20; ++i) {
            fds = open_fds(proxy_.pid());
            if (fds == baseline_)
                break;
            std::this_thread::sleep_for(10ms);
        }
        if ((active == 0.0 && fds == baseline_) || steady_clock::now() >= deadline)
            break;
        std::this_thread::sleep_for(50ms);
    }
    auto result = ::testing::AssertionSuccess();
    if (active != 0.0 || fds != baseline_) {
        result = ::testing::AssertionFailure();
        result << "after " << duration_cast<milliseconds>(limit).count() << " ms: ";
        if (!active)
            result << "the stats endpoint did not answer; ";
        else if (*active != 0)
            result << *active << " session(s) still active (leaked); ";
        if (fds != baseline_)
            result << "the daemon holds " << fds << " descriptors, " << baseline_
                   << " before the test's traffic; ";
    }
    const auto errors = unexpected_errors(proxy_.log(), allowed_errors);
    if (!errors.empty()) {
        if (result)
            result = ::testing::AssertionFailure();
        result << "unexpected error lines in the log:";
        for (const auto& e : errors)
            result << "\n  " << e;
    }
    if (!result)
        result << "\nlog tail:\n"
               << proxy_.log().substr(proxy_.log().size() > 4000 ? proxy_.log().size() - 4000 : 0);
    return result;
}

} // namespace nodelayd::testing
