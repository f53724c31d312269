#include "nodelayd/proxy_io.hpp"

#include "nodelayd/socket_ops.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cstddef>

namespace nodelayd {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

proxy_parse_result failed(std::string why) {
    proxy_parse_result r;
    r.status = proxy_parse_status::invalid;
    r.error = std::move(why);
    return r;
}

// Reads exactly `out.size()` bytes, which a peek has shown to be queued.
std::error_code take(int fd, std::span<std::byte> out) {
    while (!out.empty()) {
        const auto read = sys::read_some(fd, out);
        if (read.bytes == 0)
            return read.error ? read.error : std::make_error_code(std::errc::io_error);
        out = out.subspan(read.bytes);
    }
    return {};
}

} // namespace

asio::awaitable<proxy_parse_result> receive_proxy_header(tcp_socket& client, const relay& control,
                                                         std::chrono::milliseconds timeout,
                                                         bool quickack) {
    const int fd = client.native_handle();
    std::array<std::byte, proxy_header_max_length> buffer;
    std::size_t have = 0; // header bytes already taken off the socket, at the buffer's start
    asio::steady_timer deadline(client.get_executor());
    deadline.expires_after(timeout);
    for (;;) {
        // Look at what is queued (the header may have come with the connection), unconsumed.
        const auto peeked = sys::peek_some(fd, std::span(buffer).subspan(have));
        if (peeked.error)
            co_return failed("read failed: " + peeked.error.message());
        if (peeked.eof)
            co_return failed("client closed the connection before a whole PROXY header");
        const std::size_t seen = have + peeked.bytes;
        auto header = parse_proxy_header(std::span(buffer.data(), seen));
        if (header.status == proxy_parse_status::invalid)
            co_return header;
        // Complete: take exactly the rest of the header; what follows stays queued for the
        // relay. Need more: every byte seen belongs to the header, so take them all; the
        // socket is then drained and the wait below ends only when more bytes arrive.
        const bool complete = header.status == proxy_parse_status::complete;
        const std::size_t upto = complete ? header.length : seen;
        if (const auto ec = take(fd, std::span(buffer).subspan(have, upto - have)))
            co_return failed("read failed: " + ec.message());
        have = upto;
        if (complete)
            co_return header;
        if (quickack)
            sys::arm_quickack(fd);
        const auto waited = co_await (client.async_wait(tcp_socket::wait_read, use_tuple) ||
                                      deadline.async_wait(use_tuple));
        if (control.aborted())
            co_return failed("session aborted");
        if (waited.index() == 1)
            co_return failed("no complete PROXY header within " + std::to_string(timeout.count()) +
                             "ms");
    }
}

asio::awaitable<boost::system::error_code>
send_proxy_header(tcp_socket& upstream, proxy_version version,
                  const connection_addresses& addresses) {
    if (version == proxy_version::off)
        co_return boost::system::error_code{};
    const std::string header =
        encode_proxy_header(version, addresses.source, addresses.destination);
    const auto [ec, written] =
        co_await asio::async_write(upstream, asio::buffer(header), use_tuple);
    co_return ec;
}

} // namespace nodelayd
