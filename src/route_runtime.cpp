#include "nodelayd/route_runtime.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace nodelayd {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

std::vector<tcp::endpoint> resolve(tcp::resolver& resolver, const host_port& hp, bool passive,
                                   const std::string& where) {
    boost::system::error_code ec;
    const auto flags = passive ? tcp::resolver::passive | tcp::resolver::numeric_service
                               : tcp::resolver::numeric_service;
    const auto results = resolver.resolve(hp.host, std::to_string(hp.port), flags, ec);
    if (ec)
        throw config_error(where + "cannot resolve '" + hp.host + "': " + ec.message());
    std::vector<tcp::endpoint> out;
    for (const auto& entry : results)
        if (std::find(out.begin(), out.end(), entry.endpoint()) == out.end())
            out.push_back(entry.endpoint());
    if (out.empty())
        throw config_error(where + "'" + hp.host + "' resolves to no address");
    return out;
}

} // namespace

std::string to_string(const tcp::endpoint& ep) {
    if (ep.address().is_v6())
        return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
    return ep.address().to_string() + ":" + std::to_string(ep.port());
}

std::vector<std::unique_ptr<route_runtime>> resolve_routes(const daemon_config& config) {
    asio::io_context ctx;
    tcp::resolver resolver(ctx);
    std::vector<std::unique_ptr<route_runtime>> out;
    for (const auto& rc : config.routes) {
        auto rt = std::make_unique<route_runtime>();
        rt->index = out.size();
        rt->config = rc;
        const std::string where = "route '" + rc.name + "': ";
        rt->listen = resolve(resolver, rc.listen, true, where + "key 'listen': ").front();
        if (rc.upstreams.size() > max_upstreams)
            throw config_error(where + "key 'upstream': more than " +
                               std::to_string(max_upstreams) + " servers");
        for (const auto& up : rc.upstreams)
            rt->upstreams.push_back(
                {up.str(), resolve(resolver, up, false, where + "key 'upstream': ")});
        rt->relay = relay_settings{.client = rc.client,
                                   .upstream = rc.upstream,
                                   .buffer_size = rc.buffer_size,
                                   .splice = rc.splice,
                                   .pipe_size = rc.pipe_size,
                                   .idle_timeout = rc.idle_timeout,
                                   .half_closed_timeout = rc.half_closed_timeout};
        // Textually different listen addresses can be the same socket address (127.1 and
        // 127.0.0.1); with SO_REUSEPORT both would bind and split the connections silently.
        for (const auto& other : out)
            if (other->listen == rt->listen && rt->listen.port() != 0)
                throw config_error(where + "key 'listen': " + to_string(rt->listen) +
                                   " is already used by route '" + other->config.name + "'");
        out.push_back(std::move(rt));
    }
    return out;
}

} // namespace nodelayd
