#pragma once
// The stats endpoint's HTTP exchange without a socket: the bytes a client sent go in, the
// responses to send and the decision to close come out. stats_server runs one per connection
// and only moves bytes and keeps time; tests/fuzz/fuzz_stats_http.cpp drives the very same code
// with arbitrary bytes.

#include "nodelayd/stats.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include <cstddef>
#include <functional>
#include <optional>
#include <string>

namespace nodelayd {

/// Where the endpoint's answers come from.
struct stats_sources {
    /// Produces the data for one response (/metrics, /stats, /).
    std::function<stats_snapshot()> snapshot;
    /// Whether the listeners accept (/healthz).
    std::function<bool()> healthy;
};

/// What a stats connection does next.
struct stats_http_step {
    /// read: receive more and commit() it; reply: send `bytes`; close: close the connection
    /// now, sending nothing (the client went away or stopped mid-request).
    enum class action { read, reply, close };
    /// The action.
    action what = action::read;
    /// reply: the serialized response.
    std::string bytes;
    /// reply: its status code.
    unsigned status = 0;
    /// reply: close gracefully once it is sent instead of reading the next request.
    bool close_after = false;
    /// close: why, for the debug log.
    std::string reason;
};

/// One stats connection's HTTP state. Requests are parsed and answered one at a time, so a
/// client pipelining many requests never has more than one response buffered.
///
/// Safe by default: GET and HEAD only (405), request line and headers at most
/// max_header_bytes (431), malformed requests 400; a request with a body is answered and the
/// connection closed, its body never read. After a reply with close_after or a close, the
/// exchange is over: next() keeps returning close.
class stats_http_exchange {
public:
    /// Answers from `sources` (which must outlive the exchange).
    stats_http_exchange(const stats_sources& sources, std::size_t max_header_bytes);

    /// Space for the next bytes from the client; commit() what was written there.
    boost::asio::mutable_buffer prepare();
    /// Takes `n` bytes written into prepare()'s space as received.
    void commit(std::size_t n);
    /// The client sent its FIN: what was received is all there will be.
    void end_of_input();
    /// What to do next given everything received so far. With `closing` (the server is
    /// stopping) a reply closes the connection.
    stats_http_step next(bool closing = false);

private:
    using parser_type = boost::beast::http::request_parser<boost::beast::http::empty_body>;

    /// The step for a parse failure `ec`.
    stats_http_step failed(const boost::beast::error_code& ec);
    /// The step answering the request the parser holds.
    stats_http_step answer(bool closing);

    const stats_sources& sources_;
    std::size_t max_header_bytes_;
    boost::beast::flat_buffer input_;
    std::optional<parser_type> parser_;
    /// Bytes of the current request's header the parser has consumed.
    std::size_t header_bytes_ = 0;
    bool end_of_input_ = false;
    bool over_ = false;
};

} // namespace nodelayd
