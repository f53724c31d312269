#include "nodelayd/stats_server.hpp"

#include "nodelayd/asio_support.hpp"

#include "nodelayd/endpoint.hpp"
#include "nodelayd/stats_http.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <spdlog/spdlog.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <optional>
#include <system_error>
#include <unordered_set>
#include <utility>

namespace nodelayd {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;
using unix_socket = asio::local::stream_protocol;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

/// After an error response or Connection: close, the client's unread bytes are drained for at
/// most this long (and this much) so that closing does not reset the response away.
constexpr std::chrono::milliseconds max_linger{2'000};
constexpr std::size_t max_linger_bytes = std::size_t{1024} * 1024;

/// A connection stop() can close; implemented by each stream type's session.
struct connection {
    virtual ~connection() = default;
    virtual void close() = 0;
};

template <class Protocol> struct stream_connection final : connection {
    explicit stream_connection(typename Protocol::socket socket) : stream(std::move(socket)) {}
    void close() override {
        beast::error_code ignored;
        stream.socket().shutdown(asio::socket_base::shutdown_both, ignored);
        stream.close();
    }
    beast::basic_stream<Protocol> stream;
};

/// Everything a running server needs; shared by the stats_server and its coroutines, so a
/// coroutine still pending when the stats_server goes away never touches freed memory.
struct server_state {
    server_state(asio::io_context& c, stats_server::snapshot_source s,
                 stats_server::health_source h, stats_server_limits l)
        : ctx(c), sources{std::move(s), std::move(h)}, limits(l) {}
    server_state(const server_state&) = delete;
    server_state& operator=(const server_state&) = delete;
    ~server_state() { remove_socket_file(); }

    asio::io_context& ctx;
    stats_sources sources;
    stats_server_limits limits;

    std::optional<tcp::acceptor> tcp_acceptor;
    std::optional<unix_socket::acceptor> unix_acceptor;
    std::string address;
    /// Unix socket path and the identity of the file we bound, so stop() removes only ours.
    std::string socket_path;
    dev_t socket_dev = 0;
    ino_t socket_ino = 0;

    std::unordered_set<connection*> open;
    bool started = false;
    bool stopped = false;
    std::chrono::steady_clock::time_point last_refusal_log{};
    std::uint64_t refusals_unlogged = 0;

    void bind_tcp(const tcp::endpoint& ep) {
        const std::string shown = host_port{ep.address().to_string(), ep.port()}.str();
        auto& a = tcp_acceptor.emplace(ctx);
        boost::system::error_code ec;
        a.open(ep.protocol(), ec);
        throw_if(ec, "stats: socket " + shown);
        a.set_option(tcp::acceptor::reuse_address(true), ec);
        throw_if(ec, "stats: setsockopt SO_REUSEADDR " + shown);
        a.bind(ep, ec);
        throw_if(ec, "stats: bind " + shown);
        a.listen(asio::socket_base::max_listen_connections, ec);
        throw_if(ec, "stats: listen " + shown);
        const auto bound = a.local_endpoint(ec);
        throw_if(ec, "stats: getsockname " + shown);
        address = host_port{bound.address().to_string(), bound.port()}.str();
    }

    void bind_unix(const std::string& path) {
        unix_socket::endpoint ep;
        try {
            ep = unix_socket::endpoint(path);
        } catch (const boost::system::system_error& e) {
            throw std::system_error(e.code(), "stats: bind " + path);
        }
        // Replace a socket file left by an earlier run; refuse to delete anything else.
        struct stat st {};
        if (::lstat(path.c_str(), &st) == 0) {
            if (!S_ISSOCK(st.st_mode))
                throw std::system_error(std::make_error_code(std::errc::file_exists),
                                        "stats: bind " + path + ": not a socket");
            if (::unlink(path.c_str()) != 0)
                throw std::system_error(errno, std::generic_category(), "stats: unlink " + path);
        }
        auto& a = unix_acceptor.emplace(ctx);
        boost::system::error_code ec;
        a.open(ep.protocol(), ec);
        throw_if(ec, "stats: socket " + path);
        a.bind(ep, ec);
        throw_if(ec, "stats: bind " + path);
        if (::lstat(path.c_str(), &st) == 0) {
            socket_dev = st.st_dev;
            socket_ino = st.st_ino;
        }
        socket_path = path;
        a.listen(asio::socket_base::max_listen_connections, ec);
        throw_if(ec, "stats: listen " + path);
        address = path;
    }

    void remove_socket_file() {
        if (socket_path.empty())
            return;
        struct stat st {};
        if (::lstat(socket_path.c_str(), &st) == 0 && st.st_dev == socket_dev &&
            st.st_ino == socket_ino)
            ::unlink(socket_path.c_str());
        socket_path.clear();
    }

    void stop() {
        if (stopped)
            return;
        stopped = true;
        boost::system::error_code ignored;
        if (tcp_acceptor)
            tcp_acceptor->close(ignored);
        if (unix_acceptor)
            unix_acceptor->close(ignored);
        remove_socket_file();
        // Closing completes the sessions' operations later (posted), so `open` does not change
        // while we walk it.
        for (auto* c : open)
            c->close();
    }

    void log_refusal() {
        ++refusals_unlogged;
        const auto now = std::chrono::steady_clock::now();
        if (now - last_refusal_log < std::chrono::seconds(10))
            return;
        spdlog::warn("stats: refused {} connection(s): max connections ({}) reached",
                     refusals_unlogged, limits.max_connections);
        last_refusal_log = now;
        refusals_unlogged = 0;
    }

    template <class Acceptor>
    static asio::awaitable<void> accept_loop(std::shared_ptr<server_state> self,
                                             Acceptor& acceptor) {
        using protocol = typename Acceptor::protocol_type;
        auto& ctx = self->ctx;
        asio::steady_timer backoff(ctx);
        while (!self->stopped && acceptor.is_open()) {
            auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
            if (ec == asio::error::operation_aborted || self->stopped || !acceptor.is_open())
                break;
            if (ec) {
                spdlog::warn("stats: accept: {}", ec.message());
                if (out_of_descriptors(ec)) {
                    backoff.expires_after(std::chrono::milliseconds(100));
                    co_await backoff.async_wait(use_tuple);
                }
                continue;
            }
            if (self->open.size() >= self->limits.max_connections) {
                self->log_refusal();
                socket.close(ec);
                continue;
            }
            auto conn = std::make_shared<stream_connection<protocol>>(std::move(socket));
            self->open.insert(conn.get());
            asio::co_spawn(ctx, session<protocol>(self, std::move(conn)),
                           log_failure{"stats: connection"});
        }
    }

    template <class Protocol>
    static asio::awaitable<void> session(std::shared_ptr<server_state> self,
                                         std::shared_ptr<stream_connection<Protocol>> conn) {
        struct unregister {
            server_state& server;
            connection* c;
            ~unregister() { server.open.erase(c); }
        } guard{*self, conn.get()};
        co_await self->serve(conn->stream);
    }

    /// Moves bytes between the client and its stats_http_exchange, which decides everything
    /// HTTP; this side only reads, writes and keeps the deadlines.
    template <class Stream> asio::awaitable<void> serve(Stream& stream) {
        stats_http_exchange exchange(sources, limits.max_header_bytes);
        // One deadline for the whole request: a client trickling bytes does not reset it.
        stream.expires_after(limits.request_timeout);
        for (;;) {
            // Once stopping, a request still gets its answer, with Connection: close.
            auto step = exchange.next(stopped);
            switch (step.what) {
            case stats_http_step::action::read: {
                auto [ec, n] = co_await stream.async_read_some(exchange.prepare(), use_tuple);
                exchange.commit(n);
                if (ec == asio::error::eof) {
                    exchange.end_of_input();
                } else if (ec) {
                    // Reset, timed out, or closed by stop().
                    spdlog::debug("stats: connection closed: {}", ec.message());
                    stream.close();
                    co_return;
                }
                break;
            }
            case stats_http_step::action::close:
                spdlog::debug("stats: connection closed: {}", step.reason);
                stream.close();
                co_return;
            case stats_http_step::action::reply:
                if (step.close_after) {
                    co_await reply_and_close(stream, std::move(step.bytes));
                    co_return;
                }
                stream.expires_after(limits.request_timeout);
                if (auto [wec, wn] =
                        co_await asio::async_write(stream, asio::buffer(step.bytes), use_tuple);
                    wec) {
                    spdlog::debug("stats: write: {}", wec.message());
                    stream.close();
                    co_return;
                }
                stream.expires_after(limits.request_timeout);
                break;
            }
        }
    }

    /// Sends `bytes` (a response with Connection: close), then closes gracefully: FIN first,
    /// then what the client still sends is read and dropped (bounded) so our close does not
    /// turn into a reset that could discard the response before the client reads it.
    template <class Stream>
    asio::awaitable<void> reply_and_close(Stream& stream, std::string bytes) {
        stream.expires_after(limits.request_timeout);
        auto [ec, n] = co_await asio::async_write(stream, asio::buffer(bytes), use_tuple);
        if (!ec) {
            beast::error_code ignored;
            stream.socket().shutdown(asio::socket_base::shutdown_send, ignored);
            stream.expires_after(std::min(limits.request_timeout, max_linger));
            std::array<char, 4096> sink{};
            std::size_t drained = 0;
            while (drained < max_linger_bytes) {
                auto [rec, got] = co_await stream.async_read_some(asio::buffer(sink), use_tuple);
                if (rec)
                    break;
                drained += got;
            }
        }
        stream.close();
    }
};

} // namespace

struct stats_server::impl {
    std::shared_ptr<server_state> state;
};

stats_server::stats_server(asio::io_context& ctx, const tcp::endpoint& endpoint,
                           snapshot_source snapshot, health_source healthy,
                           stats_server_limits limits)
    : impl_(std::make_unique<impl>(impl{
          std::make_shared<server_state>(ctx, std::move(snapshot), std::move(healthy), limits)})) {
    impl_->state->bind_tcp(endpoint);
}

stats_server::stats_server(asio::io_context& ctx, const std::string& path, snapshot_source snapshot,
                           health_source healthy, stats_server_limits limits)
    : impl_(std::make_unique<impl>(impl{
          std::make_shared<server_state>(ctx, std::move(snapshot), std::move(healthy), limits)})) {
    impl_->state->bind_unix(path);
}

stats_server::~stats_server() {
    impl_->state->stop();
}

void stats_server::start() {
    auto& s = impl_->state;
    if (s->started || s->stopped)
        return;
    s->started = true;
    if (s->tcp_acceptor)
        asio::co_spawn(s->ctx, server_state::accept_loop(s, *s->tcp_acceptor),
                       log_failure{"stats: accept loop"});
    if (s->unix_acceptor)
        asio::co_spawn(s->ctx, server_state::accept_loop(s, *s->unix_acceptor),
                       log_failure{"stats: accept loop"});
}

void stats_server::stop() {
    impl_->state->stop();
}

std::string stats_server::address() const {
    return impl_->state->address;
}

} // namespace nodelayd
