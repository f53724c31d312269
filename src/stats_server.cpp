#include "nodelayd/stats_server.hpp"

#include "nodelayd/asio_support.hpp"

#include "nodelayd/endpoint.hpp"
#include "nodelayd/stats_render.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <optional>
#include <string_view>
#include <system_error>
#include <unordered_set>
#include <utility>

namespace nodelayd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using unix_socket = asio::local::stream_protocol;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

/// After an error response or Connection: close, the client's unread bytes are drained for at
/// most this long (and this much) so that closing does not reset the response away.
constexpr std::chrono::milliseconds max_linger{2'000};
constexpr std::size_t max_linger_bytes = 1024 * 1024;

/// What an HTTP read error means for the connection.
enum class read_failure { silent, too_large, malformed };

read_failure classify(const beast::error_code& ec) {
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow)
        return read_failure::too_large;
    // The peer went away (before or in the middle of a request), timed out, or we closed.
    if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
        ec.category() != http::make_error_code(http::error::end_of_stream).category())
        return read_failure::silent;
    return read_failure::malformed;
}

using response = http::response<http::string_body>;

response make_response(http::status status, unsigned version, std::string_view content_type,
                       std::string body) {
    response res{status, version};
    res.set(http::field::server, "nodelayd/" NODELAYD_VERSION);
    res.set(http::field::content_type, content_type);
    res.set(http::field::cache_control, "no-store");
    res.set("X-Content-Type-Options", "nosniff");
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
}

response plain(http::status status, unsigned version, std::string body) {
    return make_response(status, version, "text/plain; charset=utf-8", std::move(body));
}

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
        : ctx(c), snapshot(std::move(s)), healthy(std::move(h)), limits(l) {}
    server_state(const server_state&) = delete;
    server_state& operator=(const server_state&) = delete;
    ~server_state() { remove_socket_file(); }

    asio::io_context& ctx;
    stats_server::snapshot_source snapshot;
    stats_server::health_source healthy;
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

    template <class Stream> asio::awaitable<void> serve(Stream& stream) {
        beast::flat_buffer buffer;
        while (!stopped) {
            http::request_parser<http::empty_body> parser;
            parser.header_limit(static_cast<std::uint32_t>(
                std::min<std::size_t>(limits.max_header_bytes, UINT32_MAX)));
            // One deadline for the whole request: a client trickling bytes does not reset it.
            stream.expires_after(limits.request_timeout);
            auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, use_tuple);
            if (ec) {
                switch (classify(ec)) {
                case read_failure::silent:
                    spdlog::debug("stats: connection closed: {}", ec.message());
                    stream.close();
                    co_return;
                case read_failure::too_large:
                    co_await reply_and_close(stream,
                                             plain(http::status::request_header_fields_too_large,
                                                   11, "request header fields too large\n"));
                    co_return;
                case read_failure::malformed:
                    co_await reply_and_close(stream,
                                             plain(http::status::bad_request, 11, "bad request\n"));
                    co_return;
                }
            }
            const auto& req = parser.get();
            auto res = respond_safely(req);
            // A request body is never read: answer, then close instead of parsing past it.
            const bool keep_alive = req.keep_alive() && parser.is_done() && !stopped;
            res.keep_alive(keep_alive);
            if (!keep_alive) {
                co_await reply_and_close(stream, std::move(res));
                co_return;
            }
            stream.expires_after(limits.request_timeout);
            auto [wec, wn] = co_await http::async_write(stream, res, use_tuple);
            if (wec) {
                spdlog::debug("stats: write: {}", wec.message());
                stream.close();
                co_return;
            }
        }
        stream.close();
    }

    /// Sends `res` with Connection: close, then closes gracefully: FIN first, then what the
    /// client still sends is read and dropped (bounded) so our close does not turn into a
    /// reset that could discard the response before the client reads it.
    template <class Stream> asio::awaitable<void> reply_and_close(Stream& stream, response res) {
        res.keep_alive(false);
        stream.expires_after(limits.request_timeout);
        auto [ec, n] = co_await http::async_write(stream, res, use_tuple);
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

    /// respond(), with a failing snapshot or renderer answered by 500 instead of a dropped
    /// connection.
    response respond_safely(const http::request<http::empty_body>& req) const {
        try {
            return respond(req);
        } catch (const std::exception& e) {
            spdlog::error("stats: {} {}: {}", std::string_view(req.method_string()),
                          std::string_view(req.target()), e.what());
            return plain(http::status::internal_server_error, req.version(),
                         "internal server error\n");
        }
    }

    response respond(const http::request<http::empty_body>& req) const {
        const unsigned v = req.version();
        const bool head = req.method() == http::verb::head;
        if (req.method() != http::verb::get && !head) {
            auto res = plain(http::status::method_not_allowed, v, "method not allowed\n");
            res.set(http::field::allow, "GET, HEAD");
            return res;
        }
        std::string_view target = req.target();
        target = target.substr(0, target.find('?'));

        response res;
        if (target == "/metrics") {
            res = make_response(http::status::ok, v, "text/plain; version=0.0.4; charset=utf-8",
                                render_prometheus(snapshot()));
        } else if (target == "/stats") {
            res = make_response(http::status::ok, v, "application/json", render_json(snapshot()));
        } else if (target == "/healthz") {
            const bool ok = healthy();
            res = plain(ok ? http::status::ok : http::status::service_unavailable, v,
                        ok ? "ok\n" : "unavailable\n");
        } else if (target == "/") {
            res = make_response(http::status::ok, v, "text/html; charset=utf-8",
                                render_html(snapshot()));
            // The page is self-contained: forbid every external fetch.
            res.set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "
                                               "script-src 'unsafe-inline'; img-src data:");
        } else {
            res = plain(http::status::not_found, v, "not found\n");
        }
        if (head) {
            const auto length = res.body().size();
            res.body().clear();
            res.content_length(length);
        }
        return res;
    }
};

} // namespace

struct stats_server::impl {
    std::shared_ptr<server_state> state;
};

stats_server::stats_server(asio::io_context& ctx, const tcp::endpoint& endpoint,
                           snapshot_source snapshot, health_source healthy,
                           stats_server_limits limits)
    : impl_(std::make_unique<impl>(
          std::make_shared<server_state>(ctx, std::move(snapshot), std::move(healthy), limits))) {
    impl_->state->bind_tcp(endpoint);
}

stats_server::stats_server(asio::io_context& ctx, const std::string& path, snapshot_source snapshot,
                           health_source healthy, stats_server_limits limits)
    : impl_(std::make_unique<impl>(
          std::make_shared<server_state>(ctx, std::move(snapshot), std::move(healthy), limits))) {
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
