// libFuzzer target: the bytes a stats client sends, through stats_http_exchange (the code
// stats_server runs on every connection) with the server's limits. The input is the client's
// byte stream verbatim, so the corpus is real requests; it is delivered twice, in one piece and
// in pseudo-random pieces, and both deliveries must get the same answers. A sanitizer report,
// an escaped exception, a response that is not well-formed HTTP, a status outside what the
// endpoint sends, or an exchange that does not end is a finding.

#include "nodelayd/stats_http.hpp"
#include "nodelayd/stats_server.hpp"

#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace nodelayd;
namespace http = boost::beast::http;
using action = stats_http_step::action;

void require(bool ok, const char* what) {
    if (ok)
        return;
    std::fprintf(stderr, "fuzz_stats_http: %s\n", what);
    std::abort();
}

stats_snapshot small_snapshot() {
    stats_snapshot s;
    s.version = "fuzz";
    s.uptime_seconds = 12.5;
    route_snapshot r;
    r.name = "imap";
    r.connections_total = 3;
    r.bytes_total = {812, 2311};
    s.routes.push_back(r);
    return s;
}

const stats_sources& sources() {
    static const stats_sources s{small_snapshot, [] { return true; }};
    return s;
}

/// One answer as the client would see it.
struct answer {
    unsigned status;
    bool close_after;
    bool operator==(const answer&) const = default;
};

/// Checks that `step` is one well-formed HTTP response and that its framing and Connection
/// header agree with what the exchange says it does.
void check_reply(const stats_http_step& step) {
    static const std::vector<unsigned> statuses{200, 400, 404, 405, 431, 500, 503};
    require(std::find(statuses.begin(), statuses.end(), step.status) != statuses.end(),
            "a status the endpoint never sends");
    require(step.status != 400 && step.status != 431 ? true : step.close_after,
            "an error response keeps the connection open");
    http::response_parser<http::empty_body> parser;
    parser.skip(true); // read the header only: HEAD answers have a length but no body
    boost::beast::error_code ec;
    const auto used = parser.put(boost::asio::buffer(step.bytes), ec);
    require(!ec && parser.is_header_done(), "a reply is not a well-formed response header");
    const auto& res = parser.get();
    require(res.result_int() == step.status, "the status line differs from the step's status");
    require(res.keep_alive() == !step.close_after, "Connection: disagrees with close_after");
    const auto length = parser.content_length();
    require(length.has_value(), "a response without Content-Length");
    const std::size_t body = step.bytes.size() - used;
    require(body == *length || body == 0, "the body does not match Content-Length");
    if (step.status == 405)
        require(res[http::field::allow] == "GET, HEAD", "405 without Allow: GET, HEAD");
}

/// Feeds `input` to a fresh exchange in pieces `piece` chooses, as the server would: read when
/// asked, EOF once everything is delivered. Returns the answers in order.
template <class Piece> std::vector<answer> run(std::string_view input, Piece piece) {
    stats_http_exchange exchange(sources(), stats_server_limits{}.max_header_bytes);
    std::vector<answer> answers;
    std::size_t delivered = 0;
    bool eof = false;
    for (;;) {
        auto step = exchange.next();
        if (step.what == action::read) {
            // A read after EOF would get EOF again: the server would spin.
            require(!eof, "the exchange wants to read after the end of input");
            if (delivered == input.size()) {
                exchange.end_of_input();
                eof = true;
                continue;
            }
            const auto space = exchange.prepare();
            require(space.size() > 0, "no space to read into");
            const std::size_t n = std::min({space.size(), input.size() - delivered, piece()});
            std::memcpy(space.data(), input.data() + delivered, n);
            exchange.commit(n);
            delivered += n;
            continue;
        }
        if (step.what == action::close)
            break;
        check_reply(step);
        answers.push_back({step.status, step.close_after});
        // Every request has a request line and an empty line: more answers than bytes is a loop.
        require(answers.size() <= input.size(), "more answers than requests");
        if (step.close_after)
            break;
    }
    require(exchange.next().what == action::close, "the exchange goes on after it ended");
    return answers;
}

bool is_refusal(const answer& a) {
    return (a.status == 400 || a.status == 431) && a.close_after;
}

/// Whether two deliveries of the same bytes got the same answers. Only how a broken request is
/// refused may differ: Beast detects a bad request line at once when the bytes come in one
/// piece, but once it has asked for more it waits for the end of the header, so in pieces the
/// same request may be refused later (431), or never answered when the client closes first.
bool same_but_the_refusal(const std::vector<answer>& a, const std::vector<answer>& b) {
    const std::size_t common = std::min(a.size(), b.size());
    std::size_t i = 0;
    while (i < common && a[i] == b[i])
        ++i;
    const auto rest_is_one_refusal = [i](const std::vector<answer>& v) {
        return v.size() == i || (v.size() == i + 1 && is_refusal(v[i]));
    };
    return rest_is_one_refusal(a) && rest_is_one_refusal(b);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const auto whole = run(input, [] { return SIZE_MAX; });
    // Pieces of 1..64 bytes from a generator seeded by the input, so a run is reproducible.
    std::uint32_t state = 2166136261U ^ static_cast<std::uint32_t>(size);
    const auto pieces = run(input, [&state] {
        state = state * 1664525U + 1013904223U;
        return std::size_t{1} + (state >> 26);
    });
    require(same_but_the_refusal(whole, pieces), "the answers depend on how the bytes were split");
    return 0;
}
