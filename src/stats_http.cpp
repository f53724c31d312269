#include "nodelayd/stats_http.hpp"

#include "nodelayd/stats_render.hpp"

#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <string_view>
#include <utility>

namespace nodelayd {

namespace beast = boost::beast;
namespace http = beast::http;

namespace {

/// What an HTTP parse error means for the connection.
enum class read_failure { silent, too_large, malformed };

read_failure classify(const beast::error_code& ec) {
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow)
        return read_failure::too_large;
    // The peer went away, before or in the middle of a request.
    if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
        ec.category() != http::make_error_code(http::error::end_of_stream).category())
        return read_failure::silent;
    return read_failure::malformed;
}

using request = http::request<http::empty_body>;
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

response respond(const stats_sources& sources, const request& req) {
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
                            render_prometheus(sources.snapshot()));
    } else if (target == "/stats") {
        res =
            make_response(http::status::ok, v, "application/json", render_json(sources.snapshot()));
    } else if (target == "/healthz") {
        const bool ok = sources.healthy();
        res = plain(ok ? http::status::ok : http::status::service_unavailable, v,
                    ok ? "ok\n" : "unavailable\n");
    } else if (target == "/") {
        res = make_response(http::status::ok, v, "text/html; charset=utf-8",
                            render_html(sources.snapshot()));
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

/// respond(), with a failing snapshot or renderer answered by 500 instead of a dropped
/// connection.
response respond_safely(const stats_sources& sources, const request& req) {
    try {
        return respond(sources, req);
    } catch (const std::exception& e) {
        spdlog::error("stats: {} {}: {}", std::string_view(req.method_string()),
                      std::string_view(req.target()), e.what());
        return plain(http::status::internal_server_error, req.version(), "internal server error\n");
    }
}

/// The bytes Beast's writer would send for `res`.
std::string serialize(response& res) {
    std::string out;
    http::serializer<false, http::string_body> sr{res};
    beast::error_code ec;
    while (!sr.is_done()) {
        sr.next(ec, [&](beast::error_code&, const auto& buffers) {
            out += beast::buffers_to_string(buffers);
            sr.consume(beast::buffer_bytes(buffers));
        });
        if (ec)
            throw beast::system_error(ec);
    }
    return out;
}

stats_http_step reply(response res, bool keep_alive) {
    res.keep_alive(keep_alive);
    stats_http_step step;
    step.what = stats_http_step::action::reply;
    step.status = res.result_int();
    step.close_after = !keep_alive;
    step.bytes = serialize(res);
    return step;
}

} // namespace

stats_http_exchange::stats_http_exchange(const stats_sources& sources, std::size_t max_header_bytes)
    : sources_(sources), max_header_bytes_(max_header_bytes) {}

boost::asio::mutable_buffer stats_http_exchange::prepare() {
    // As much as Beast's own reads take at once: what is parsed is consumed, so the buffer
    // never holds more than the header limit plus one read.
    return input_.prepare(beast::read_size(input_, 65536));
}

void stats_http_exchange::commit(std::size_t n) {
    input_.commit(n);
}

void stats_http_exchange::end_of_input() {
    end_of_input_ = true;
}

stats_http_step stats_http_exchange::next(bool closing) {
    if (over_)
        return stats_http_step{stats_http_step::action::close, {}, 0, false, "exchange over"};
    if (!parser_) {
        parser_.emplace();
        header_bytes_ = 0;
    }
    // The loop of Beast's read_header, with the reads left to the caller.
    while (!parser_->is_header_done()) {
        beast::error_code ec;
        if (input_.size() > 0) {
            // Beast applies its header limit to what one put() has not consumed yet, and
            // consumes every complete field: fields arriving in several reads would pass
            // however large the header. The limit left for the rest makes it the whole header's.
            if (header_bytes_ >= max_header_bytes_)
                return failed(http::error::header_limit);
            parser_->header_limit(static_cast<std::uint32_t>(
                std::min<std::size_t>(max_header_bytes_ - header_bytes_, UINT32_MAX)));
            const auto used = parser_->put(input_.data(), ec);
            input_.consume(used);
            header_bytes_ += used;
            if (!ec && used > 0)
                continue;
            if (ec && ec != http::error::need_more)
                return failed(ec);
        }
        if (!end_of_input_)
            return stats_http_step{};
        if (!parser_->got_some())
            return failed(http::error::end_of_stream);
        parser_->put_eof(ec);
        if (ec)
            return failed(ec);
    }
    return answer(closing);
}

stats_http_step stats_http_exchange::failed(const beast::error_code& ec) {
    over_ = true;
    switch (classify(ec)) {
    case read_failure::too_large:
        return reply(plain(http::status::request_header_fields_too_large, 11,
                           "request header fields too large\n"),
                     false);
    case read_failure::malformed:
        return reply(plain(http::status::bad_request, 11, "bad request\n"), false);
    case read_failure::silent:
        break;
    }
    return stats_http_step{stats_http_step::action::close, {}, 0, false, ec.message()};
}

stats_http_step stats_http_exchange::answer(bool closing) {
    const auto& req = parser_->get();
    // A request body is never read: answer, then close instead of parsing past it.
    const bool keep_alive = req.keep_alive() && parser_->is_done() && !closing;
    auto step = reply(respond_safely(sources_, req), keep_alive);
    parser_.reset();
    over_ = !keep_alive;
    return step;
}

} // namespace nodelayd
