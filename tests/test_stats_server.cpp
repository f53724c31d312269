// Integration tests of the stats endpoint: a real stats_server on an io_context thread, real
// loopback (TCP and Unix) sockets, a fake snapshot source. Every wait is bounded.

#include "nodelayd/stats_server.hpp"

#include <gtest/gtest.h>

#include <boost/asio/post.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

namespace {

namespace asio = boost::asio;
using namespace std::chrono;
using namespace std::chrono_literals;
using nodelayd::stats_server;
using nodelayd::stats_server_limits;

// ---------------------------------------------------------------------------------------------
// Client side: blocking sockets with bounded waits

/// Owns a descriptor.
class fd_t {
public:
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
    [[nodiscard]] int get() const { return fd_; }
    void reset(int fd = -1) {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = fd;
    }
    explicit operator bool() const { return fd_ >= 0; }

private:
    int fd_;
};

void set_timeouts(int fd, milliseconds limit) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(limit.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((limit.count() % 1000) * 1000);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

fd_t connect_tcp(std::uint16_t port) {
    fd_t fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    set_timeouts(fd.get(), 5s);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
        fd.reset();
    return fd;
}

fd_t connect_unix(const std::string& path) {
    fd_t fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    set_timeouts(fd.get(), 5s);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
        fd.reset();
    return fd;
}

bool send_all(int fd, const std::string& data) {
    std::size_t off = 0;
    while (off < data.size()) {
        const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        off += static_cast<std::size_t>(n);
    }
    return true;
}

/// How a wait for the peer's close ended.
enum class closed_by { eof, reset, timeout };

/// Reads (and keeps) everything until EOF, reset or `limit`.
closed_by read_to_close(int fd, std::string& out, milliseconds limit = 5s) {
    const auto deadline = steady_clock::now() + limit;
    char buf[16384];
    while (true) {
        const auto left = duration_cast<milliseconds>(deadline - steady_clock::now());
        pollfd p{fd, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0)
            return closed_by::timeout;
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n == 0)
            return closed_by::eof;
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return closed_by::reset;
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
}

struct http_response {
    int status = 0;
    std::map<std::string, std::string> headers; // names lower-cased
    std::string body;
    [[nodiscard]] std::string header(const std::string& name) const {
        auto it = headers.find(name);
        return it == headers.end() ? std::string() : it->second;
    }
};

/// Parses responses (Content-Length framed) off one connection, in order.
class response_reader {
public:
    explicit response_reader(int fd) : fd_(fd) {}

    /// The next response, or nullopt on close/timeout/garbage. `head` skips the body.
    std::optional<http_response> next(bool head = false, milliseconds limit = 5s) {
        const auto deadline = steady_clock::now() + limit;
        std::size_t end;
        while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
            if (!fill(deadline))
                return std::nullopt;
        http_response r;
        const std::string head_text = buf_.substr(0, end);
        buf_.erase(0, end + 4);
        std::size_t line_end = head_text.find("\r\n");
        const std::string status_line = head_text.substr(0, line_end);
        if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12)
            return std::nullopt;
        r.status = std::atoi(status_line.c_str() + 9);
        while (line_end != std::string::npos) {
            const std::size_t start = line_end + 2;
            line_end = head_text.find("\r\n", start);
            const std::string line = head_text.substr(start, line_end - start);
            const auto colon = line.find(':');
            if (colon == std::string::npos)
                continue;
            std::string name = line.substr(0, colon);
            for (auto& c : name)
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            std::string value = line.substr(colon + 1);
            value.erase(0, value.find_first_not_of(' '));
            r.headers[name] = value;
        }
        if (head)
            return r;
        const std::size_t length = std::strtoul(r.header("content-length").c_str(), nullptr, 10);
        while (buf_.size() < length)
            if (!fill(deadline))
                return std::nullopt;
        r.body = buf_.substr(0, length);
        buf_.erase(0, length);
        return r;
    }

    /// Bytes received past the last parsed response.
    [[nodiscard]] const std::string& rest() const { return buf_; }

private:
    bool fill(steady_clock::time_point deadline) {
        const auto left = duration_cast<milliseconds>(deadline - steady_clock::now());
        pollfd p{fd_, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0)
            return false;
        char buf[16384];
        const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0)
            return false;
        buf_.append(buf, static_cast<std::size_t>(n));
        return true;
    }

    int fd_;
    std::string buf_;
};

std::string get(const std::string& path, const std::string& extra_headers = "") {
    return "GET " + path + " HTTP/1.1\r\nHost: stats\r\n" + extra_headers + "\r\n";
}

/// One request on a fresh connection.
std::optional<http_response> fetch_on(int fd, const std::string& request, bool head = false) {
    if (fd < 0 || !send_all(fd, request))
        return std::nullopt;
    return response_reader(fd).next(head);
}

// ---------------------------------------------------------------------------------------------
// Server side

nodelayd::stats_snapshot fake_snapshot() {
    nodelayd::stats_snapshot s;
    s.version = "test";
    s.uptime_seconds = 12.5;
    nodelayd::route_snapshot r;
    r.name = "imap";
    r.connections_active = 1;
    r.connections_total = 3;
    r.bytes_total = {1234, 5678};
    r.writes_total = {10, 20};
    r.chunks_total = {12, 25};
    s.routes.push_back(r);
    return s;
}

/// A stats_server running on its own io_context thread; stopped (bounded) on destruction.
class running_server {
public:
    /// TCP on 127.0.0.1:0.
    explicit running_server(stats_server_limits limits = {},
                            stats_server::snapshot_source custom = nullptr) {
        server_ = std::make_unique<stats_server>(
            ctx_, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0),
            custom ? std::move(custom) : source(), health(), limits);
        run();
    }
    /// Unix socket at `path`.
    running_server(const std::string& path, stats_server_limits limits) {
        server_ = std::make_unique<stats_server>(ctx_, path, source(), health(), limits);
        run();
    }
    running_server(const running_server&) = delete;
    running_server& operator=(const running_server&) = delete;
    ~running_server() { EXPECT_TRUE(stop()) << "io_context did not run out of work after stop()"; }

    /// Stops the server on its thread; true when the io_context then ran out of work (every
    /// connection closed) within 5 s.
    bool stop() {
        if (!thread_.joinable())
            return true;
        asio::post(ctx_, [this] { server_->stop(); });
        const bool drained = done_.wait_for(5s) == std::future_status::ready;
        if (!drained)
            ctx_.stop();
        thread_.join();
        return drained;
    }

    [[nodiscard]] std::uint16_t port() const {
        const auto a = server_->address();
        return static_cast<std::uint16_t>(std::stoi(a.substr(a.rfind(':') + 1)));
    }
    [[nodiscard]] std::string address() const { return server_->address(); }

    std::atomic<bool> healthy{true};
    std::atomic<int> snapshots{0};

private:
    stats_server::snapshot_source source() {
        return [this] {
            ++snapshots;
            return fake_snapshot();
        };
    }
    stats_server::health_source health() {
        return [this] { return healthy.load(); };
    }
    void run() {
        server_->start();
        auto promise = std::make_shared<std::promise<void>>();
        done_ = promise->get_future();
        thread_ = std::thread([this, promise] {
            ctx_.run();
            promise->set_value();
        });
    }

    asio::io_context ctx_{1};
    std::unique_ptr<stats_server> server_;
    std::future<void> done_;
    std::thread thread_;
};

/// A fresh temporary directory, removed on destruction.
class temp_dir {
public:
    temp_dir() {
        std::string templ = (std::filesystem::temp_directory_path() / "nodelayd-stats-XXXXXX");
        if (::mkdtemp(templ.data()) == nullptr)
            throw std::system_error(errno, std::generic_category(), "mkdtemp");
        path_ = templ;
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

// ---------------------------------------------------------------------------------------------
// Endpoints

TEST(StatsServer, MetricsArePrometheusText) {
    running_server s;
    EXPECT_EQ(s.address(), "127.0.0.1:" + std::to_string(s.port()));
    fd_t c = connect_tcp(s.port());
    auto r = fetch_on(c.get(), get("/metrics"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_NE(r->body.find("nodelayd_bytes_total"), std::string::npos) << r->body;
    EXPECT_EQ(s.snapshots.load(), 1);
}

TEST(StatsServer, StatsIsJson) {
    running_server s;
    fd_t c = connect_tcp(s.port());
    auto r = fetch_on(c.get(), get("/stats"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->header("content-type"), "application/json");
    ASSERT_FALSE(r->body.empty());
    EXPECT_EQ(r->body.front(), '{') << r->body;
}

TEST(StatsServer, HealthzFollowsTheHealthSource) {
    running_server s;
    fd_t c = connect_tcp(s.port());
    response_reader reader(c.get());
    ASSERT_TRUE(send_all(c.get(), get("/healthz")));
    auto ok = reader.next();
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 200);
    EXPECT_EQ(ok->body, "ok\n");

    s.healthy = false;
    ASSERT_TRUE(send_all(c.get(), get("/healthz")));
    auto down = reader.next();
    ASSERT_TRUE(down);
    EXPECT_EQ(down->status, 503);
    EXPECT_EQ(s.snapshots.load(), 0) << "/healthz must not take a snapshot";
}

TEST(StatsServer, RootIsAnHtmlPageWithSvg) {
    running_server s;
    fd_t c = connect_tcp(s.port());
    auto r = fetch_on(c.get(), get("/"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->header("content-type"), "text/html; charset=utf-8");
    EXPECT_NE(r->body.find("<svg"), std::string::npos);
}

TEST(StatsServer, HeadHasLengthButNoBody) {
    running_server s;
    fd_t c = connect_tcp(s.port());
    response_reader reader(c.get());
    ASSERT_TRUE(send_all(c.get(), "HEAD /metrics HTTP/1.1\r\nHost: stats\r\n\r\n" + get("/nope")));
    auto head = reader.next(/*head=*/true);
    ASSERT_TRUE(head);
    EXPECT_EQ(head->status, 200);
    EXPECT_GT(std::stoul(head->header("content-length")), 0U);
    // The next bytes are the second response's: nothing of a body in between.
    auto next = reader.next();
    ASSERT_TRUE(next);
    EXPECT_EQ(next->status, 404);
}

TEST(StatsServer, UnknownPathIs404) {
    running_server s;
    fd_t c = connect_tcp(s.port());
    auto r = fetch_on(c.get(), get("/metrics/extra"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404);
    EXPECT_EQ(s.snapshots.load(), 0);
}

TEST(StatsServer, QueryStringIsIgnored) {
    running_server s;
    fd_t c = connect_tcp(s.port());
    auto r = fetch_on(c.get(), get("/healthz?verbose=1"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
}

TEST(StatsServer, AFailingSnapshotIs500AndTheServerCarriesOn) {
    std::atomic<bool> fail{true};
    running_server s({}, [&] {
        if (fail)
            throw std::runtime_error("snapshot exploded");
        return fake_snapshot();
    });
    fd_t c = connect_tcp(s.port());
    response_reader reader(c.get());
    ASSERT_TRUE(send_all(c.get(), get("/metrics")));
    auto failed = reader.next();
    ASSERT_TRUE(failed);
    EXPECT_EQ(failed->status, 500);
    fail = false;
    ASSERT_TRUE(send_all(c.get(), get("/metrics")));
    auto served = reader.next();
    ASSERT_TRUE(served) << "the connection did not survive the failure";
    EXPECT_EQ(served->status, 200);
}

// ---------------------------------------------------------------------------------------------
// Safety

TEST(StatsServer, PostIs405WithAllow) {
    running_server s;
    fd_t c = connect_tcp(s.port());
    auto r = fetch_on(c.get(), "POST /metrics HTTP/1.1\r\nHost: stats\r\nContent-Length: 5\r\n"
                               "\r\nhello");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 405);
    EXPECT_NE(r->header("allow").find("GET"), std::string::npos) << r->header("allow");
    EXPECT_EQ(s.snapshots.load(), 0);
    // The body was not read as a request: the server closes instead.
    std::string rest;
    EXPECT_EQ(read_to_close(c.get(), rest, 3s), closed_by::eof);
    EXPECT_EQ(rest, "");
}

TEST(StatsServer, OversizedHeaderIs431AndClosed) {
    running_server s;
    fd_t c = connect_tcp(s.port());
    const std::string request = "GET /metrics HTTP/1.1\r\nHost: stats\r\nX-Big: " +
                                std::string(std::size_t{64} * 1024, 'a') + "\r\n\r\n";
    ASSERT_TRUE(send_all(c.get(), request));
    std::string got;
    EXPECT_EQ(read_to_close(c.get(), got), closed_by::eof);
    EXPECT_EQ(got.rfind("HTTP/1.1 431 ", 0), 0U) << got;
    EXPECT_NE(got.find("Connection: close"), std::string::npos) << got;
    EXPECT_EQ(s.snapshots.load(), 0);
}

// Found by fuzz_stats_http: this header (8.4 KiB) was served with 200, as its first fields
// arrive in the server's first read (512 bytes) and Beast limits each parse, not the header.
TEST(StatsServer, HeaderOverTheLimitIs431HoweverItsFieldsArrive) {
    running_server s;
    fd_t c = connect_tcp(s.port());
    const std::string request =
        get("/healthz",
            "X-Small: " + std::string(400, 's') + "\r\nX-Big: " + std::string(8000, 'b') + "\r\n");
    ASSERT_GT(request.size(), stats_server_limits{}.max_header_bytes);
    auto r = fetch_on(c.get(), request);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 431);
    EXPECT_EQ(r->header("connection"), "close");
}

TEST(StatsServer, HeaderJustUnderTheLimitIsServed) {
    stats_server_limits limits;
    limits.max_header_bytes = 1024;
    running_server s(limits);
    fd_t c = connect_tcp(s.port());
    auto r = fetch_on(c.get(), get("/healthz", "X-Pad: " + std::string(900, 'p') + "\r\n"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
}

TEST(StatsServer, GarbageIs400AndClosed) {
    running_server s;
    fd_t c = connect_tcp(s.port());
    ASSERT_TRUE(send_all(c.get(), "\x16\x03\x01 hello there\r\n\r\n"));
    std::string got;
    EXPECT_EQ(read_to_close(c.get(), got), closed_by::eof);
    EXPECT_EQ(got.rfind("HTTP/1.1 400 ", 0), 0U) << got;
}

TEST(StatsServer, BadHeaderLineIs400AndClosed) {
    running_server s;
    fd_t c = connect_tcp(s.port());
    ASSERT_TRUE(send_all(c.get(), "GET / HTTP/1.1\r\nno colon here\r\n\r\n"));
    std::string got;
    EXPECT_EQ(read_to_close(c.get(), got), closed_by::eof);
    EXPECT_EQ(got.rfind("HTTP/1.1 400 ", 0), 0U) << got;
}

TEST(StatsServer, SlowlorisIsClosedAtTheRequestTimeout) {
    stats_server_limits limits;
    limits.request_timeout = 500ms;
    running_server s(limits);
    fd_t c = connect_tcp(s.port());
    const auto t0 = steady_clock::now();
    ASSERT_TRUE(send_all(c.get(), "GET /metrics HTTP/1.1\r\nX-Slow: "));
    // One more header byte every 100 ms, for at most 3 s, until the server closes.
    std::optional<milliseconds> closed_after;
    while (steady_clock::now() - t0 < 3s) {
        pollfd p{c.get(), POLLIN, 0};
        if (::poll(&p, 1, 100) > 0) {
            char b;
            const ssize_t n = ::recv(c.get(), &b, 1, 0);
            ASSERT_LE(n, 0) << "the server answered a request it never got";
            closed_after = duration_cast<milliseconds>(steady_clock::now() - t0);
            break;
        }
        if (!send_all(c.get(), "z")) {
            closed_after = duration_cast<milliseconds>(steady_clock::now() - t0);
            break;
        }
    }
    ASSERT_TRUE(closed_after) << "a client trickling headers was never closed";
    EXPECT_GE(closed_after->count(), 450);
    EXPECT_LE(closed_after->count(), 1500);
}

TEST(StatsServer, IdleKeepAliveIsClosedAtTheRequestTimeout) {
    stats_server_limits limits;
    limits.request_timeout = 300ms;
    running_server s(limits);
    fd_t c = connect_tcp(s.port());
    auto r = fetch_on(c.get(), get("/healthz"));
    ASSERT_TRUE(r);
    const auto t0 = steady_clock::now();
    std::string rest;
    EXPECT_EQ(read_to_close(c.get(), rest, 3s), closed_by::eof);
    EXPECT_LE(steady_clock::now() - t0, 1500ms);
}

TEST(StatsServer, CutOffRequestsDoNotHurtTheServer) {
    running_server s;
    {
        fd_t c = connect_tcp(s.port());
        ASSERT_TRUE(send_all(c.get(), "GET /metr"));
    } // closed mid-request line
    {
        fd_t c = connect_tcp(s.port());
        ASSERT_TRUE(send_all(c.get(), "GET /metrics HTTP/1.1\r\nHost: st"));
        linger l{1, 0}; // reset instead of FIN
        ::setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    {
        fd_t c = connect_tcp(s.port());
        ASSERT_TRUE(send_all(c.get(), get("/metrics")));
    } // closed before reading the response
    fd_t c = connect_tcp(s.port());
    auto r = fetch_on(c.get(), get("/healthz"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
}

// ---------------------------------------------------------------------------------------------
// Connections

TEST(StatsServer, PipelinedRequestsAreAnsweredInOrder) {
    running_server s;
    fd_t c = connect_tcp(s.port());
    ASSERT_TRUE(send_all(c.get(), get("/healthz") + get("/nope") + get("/stats")));
    response_reader reader(c.get());
    auto first = reader.next();
    auto second = reader.next();
    auto third = reader.next();
    ASSERT_TRUE(first && second && third);
    EXPECT_EQ(first->status, 200);
    EXPECT_EQ(first->body, "ok\n");
    EXPECT_EQ(second->status, 404);
    EXPECT_EQ(third->status, 200);
    EXPECT_EQ(third->body.front(), '{');
}

TEST(StatsServer, ConnectionCloseIsHonoured) {
    running_server s;
    fd_t c = connect_tcp(s.port());
    ASSERT_TRUE(send_all(c.get(), get("/healthz", "Connection: close\r\n") + get("/stats")));
    response_reader reader(c.get());
    auto r = reader.next();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->header("connection"), "close");
    std::string rest;
    EXPECT_EQ(read_to_close(c.get(), rest, 3s), closed_by::eof);
    EXPECT_EQ(reader.rest() + rest, "") << "answered a request after Connection: close";
}

TEST(StatsServer, Http10ClosesUnlessKeepAlive) {
    running_server s;
    fd_t c = connect_tcp(s.port());
    ASSERT_TRUE(send_all(c.get(), "GET /healthz HTTP/1.0\r\n\r\n"));
    std::string got;
    EXPECT_EQ(read_to_close(c.get(), got), closed_by::eof);
    EXPECT_EQ(got.rfind("HTTP/1.0 200 ", 0), 0U) << got;
}

TEST(StatsServer, ConnectionsPastTheCapAreClosedAtOnce) {
    stats_server_limits limits;
    limits.max_connections = 2;
    running_server s(limits);
    // Two kept-alive connections, each proven accepted by a full exchange.
    fd_t a = connect_tcp(s.port());
    fd_t b = connect_tcp(s.port());
    ASSERT_TRUE(fetch_on(a.get(), get("/healthz")));
    ASSERT_TRUE(fetch_on(b.get(), get("/healthz")));

    fd_t third = connect_tcp(s.port());
    ASSERT_TRUE(third);
    const auto t0 = steady_clock::now();
    std::string got;
    const auto how = read_to_close(third.get(), got, 3s);
    EXPECT_NE(how, closed_by::timeout);
    EXPECT_EQ(got, "");
    EXPECT_LE(steady_clock::now() - t0, 1s);

    // The first two are still served.
    EXPECT_TRUE(fetch_on(a.get(), get("/healthz")));

    // Once one leaves, a new connection is served again (the server notices the close
    // asynchronously, so retry for a bounded time).
    b.reset();
    bool served = false;
    for (const auto until = steady_clock::now() + 3s; !served && steady_clock::now() < until;) {
        fd_t c = connect_tcp(s.port());
        auto r = fetch_on(c.get(), get("/healthz"));
        served = r && r->status == 200;
        if (!served)
            std::this_thread::sleep_for(20ms);
    }
    EXPECT_TRUE(served);
}

TEST(StatsServer, StopClosesOpenConnections) {
    running_server s;
    fd_t idle = connect_tcp(s.port());
    fd_t used = connect_tcp(s.port());
    ASSERT_TRUE(fetch_on(used.get(), get("/healthz")));
    const auto t0 = steady_clock::now();
    EXPECT_TRUE(s.stop()) << "a connection kept the io_context busy after stop()";
    EXPECT_LE(steady_clock::now() - t0, 2s);
    std::string got;
    EXPECT_NE(read_to_close(used.get(), got, 2s), closed_by::timeout);
    EXPECT_NE(read_to_close(idle.get(), got, 2s), closed_by::timeout);
    EXPECT_FALSE(connect_tcp(s.port())) << "still accepting after stop()";
}

TEST(StatsServer, DestroyedWithOpenConnectionsBeforeItsIoContext) {
    // The daemon may tear down with the io_context halted mid-flight: the server object goes
    // first, its coroutines are destroyed later with the io_context (ASan checks this).
    asio::io_context ctx{1};
    auto server = std::make_unique<stats_server>(
        ctx, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0),
        [] { return fake_snapshot(); }, [] { return true; });
    server->start();
    const auto a = server->address();
    const auto port = static_cast<std::uint16_t>(std::stoi(a.substr(a.rfind(':') + 1)));
    std::thread runner([&] { ctx.run(); });
    fd_t c = connect_tcp(port);
    fd_t idle = connect_tcp(port);
    EXPECT_TRUE(fetch_on(c.get(), get("/healthz")));
    ctx.stop();
    runner.join();
    server.reset();
    std::string got;
    EXPECT_NE(read_to_close(c.get(), got, 2s), closed_by::timeout);
}

// ---------------------------------------------------------------------------------------------
// Setup

TEST(StatsServer, BindFailureNamesTheStepAndAddress) {
    running_server s;
    asio::io_context ctx;
    try {
        stats_server second(
            ctx, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), s.port()),
            [] { return fake_snapshot(); }, [] { return true; });
        FAIL() << "bound a port in use";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code(), std::errc::address_in_use);
        EXPECT_NE(std::string(e.what()).find("stats: bind 127.0.0.1:" + std::to_string(s.port())),
                  std::string::npos)
            << e.what();
    }
}

TEST(StatsServer, Ipv6AddressIsBracketed) {
    asio::io_context ctx;
    std::unique_ptr<stats_server> s;
    try {
        s = std::make_unique<stats_server>(
            ctx, asio::ip::tcp::endpoint(asio::ip::make_address("::1"), 0),
            [] { return fake_snapshot(); }, [] { return true; });
    } catch (const std::system_error& e) {
        GTEST_SKIP() << "no IPv6 loopback: " << e.what();
    }
    const auto a = s->address();
    EXPECT_EQ(a.rfind("[::1]:", 0), 0U) << a;
    EXPECT_GT(std::stoi(a.substr(6)), 0);
}

TEST(StatsServer, UnixSocketServesAndReplacesAStaleFile) {
    temp_dir dir;
    const auto path = dir.file("stats.sock");
    { // A stale socket file, as a crashed daemon leaves it.
        fd_t stale(::socket(AF_UNIX, SOCK_STREAM, 0));
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
        ASSERT_EQ(::bind(stale.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    }
    ASSERT_TRUE(std::filesystem::is_socket(path));
    {
        running_server s(path, {});
        EXPECT_EQ(s.address(), path);
        fd_t c = connect_unix(path);
        ASSERT_TRUE(c);
        response_reader reader(c.get());
        ASSERT_TRUE(send_all(c.get(), get("/healthz") + get("/metrics")));
        auto health = reader.next();
        ASSERT_TRUE(health);
        EXPECT_EQ(health->status, 200);
        EXPECT_EQ(health->body, "ok\n");
        auto metrics = reader.next();
        ASSERT_TRUE(metrics);
        EXPECT_NE(metrics->body.find("nodelayd_bytes_total"), std::string::npos);
        EXPECT_TRUE(s.stop());
        EXPECT_FALSE(std::filesystem::exists(path)) << "socket file left behind after stop()";
    }
}

TEST(StatsServer, UnixSocketRefusesToReplaceARegularFile) {
    temp_dir dir;
    const auto path = dir.file("not-a-socket");
    std::ofstream(path) << "keep me\n";
    asio::io_context ctx;
    try {
        stats_server s(
            ctx, path, [] { return fake_snapshot(); }, [] { return true; });
        FAIL() << "replaced a regular file";
    } catch (const std::system_error& e) {
        EXPECT_NE(std::string(e.what()).find("stats: bind " + path), std::string::npos) << e.what();
    }
    EXPECT_TRUE(std::filesystem::is_regular_file(path));
}

TEST(StatsServer, UnixSocketPathTooLongIsASystemError) {
    asio::io_context ctx;
    const std::string path = "/tmp/" + std::string(200, 'x');
    EXPECT_THROW(stats_server(
                     ctx, path, [] { return fake_snapshot(); }, [] { return true; }),
                 std::system_error);
}

} // namespace
