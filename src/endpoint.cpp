#include "nodelayd/endpoint.hpp"

#include <charconv>
#include <stdexcept>

namespace nodelayd {

std::string host_port::str() const {
    if (host.find(':') != std::string::npos)
        return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

host_port parse_host_port(std::string_view text) {
    const std::string shown(text);
    if (text.empty())
        throw std::invalid_argument("empty address, expected HOST:PORT");
    std::string_view host;
    std::string_view port;
    if (text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos)
            throw std::invalid_argument("'" + shown + "': missing ']' after IPv6 address");
        host = text.substr(1, close - 1);
        if (close + 1 >= text.size() || text[close + 1] != ':')
            throw std::invalid_argument("'" + shown + "': expected ':PORT' after ']'");
        port = text.substr(close + 2);
        if (host.empty())
            throw std::invalid_argument("'" + shown + "': empty IPv6 address");
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos)
            throw std::invalid_argument("'" + shown + "': expected HOST:PORT");
        host = text.substr(0, colon);
        if (host.find(':') != std::string_view::npos)
            throw std::invalid_argument("'" + shown + "': IPv6 addresses need brackets, as [" +
                                        std::string(host) + "]:PORT");
        port = text.substr(colon + 1);
        if (host.empty() || host == "*")
            host = "0.0.0.0";
    }
    unsigned value = 0;
    const auto* end = port.data() + port.size();
    const auto [ptr, ec] = std::from_chars(port.data(), end, value);
    if (port.empty() || ec != std::errc() || ptr != end || value > 65535)
        throw std::invalid_argument("'" + shown + "': port must be a number from 0 to 65535");
    return host_port{std::string(host), static_cast<std::uint16_t>(value)};
}

} // namespace nodelayd
