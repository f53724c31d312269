#include "nodelayd/proxy_protocol.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace nodelayd {
namespace {

namespace ip = boost::asio::ip;
using ip::tcp;

constexpr std::array<unsigned char, 12> v2_signature{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                     0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::string_view v1_prefix = "PROXY ";
constexpr std::size_t v2_fixed_length = 16;
constexpr unsigned char v2_version = 0x20;
constexpr unsigned char v2_cmd_local = 0x0;
constexpr unsigned char v2_cmd_proxy = 0x1;
constexpr unsigned char v2_tcp4 = 0x11;
constexpr unsigned char v2_tcp6 = 0x21;
constexpr std::size_t v2_tcp4_length = 2 * 4 + 2 * 2;
constexpr std::size_t v2_tcp6_length = 2 * 16 + 2 * 2;

// Plain IPv4 for v4-mapped IPv6, and no scope id (the header has no room for one).
ip::address normalized(const ip::address& a) {
    if (a.is_v4())
        return a;
    const ip::address_v6 v6(a.to_v6().to_bytes());
    if (v6.is_v4_mapped())
        return ip::make_address_v4(ip::v4_mapped, v6);
    return v6;
}

ip::address_v6 as_v6(const ip::address& a) {
    return a.is_v6() ? a.to_v6() : ip::make_address_v6(ip::v4_mapped, a.to_v4());
}

void append_port(std::string& out, unsigned short port) {
    out.push_back(static_cast<char>(port >> 8));
    out.push_back(static_cast<char>(port & 0xFF));
}

template <typename Bytes> void append_bytes(std::string& out, const Bytes& bytes) {
    out.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

proxy_parse_result invalid(std::string why) {
    proxy_parse_result r;
    r.status = proxy_parse_status::invalid;
    r.error = std::move(why);
    return r;
}

proxy_parse_result need_more() {
    return {};
}

// Whether `data` starts like `prefix` as far as either goes.
bool agrees_with(std::span<const std::byte> data, const void* prefix, std::size_t size) {
    return std::memcmp(data.data(), prefix, std::min(data.size(), size)) == 0;
}

// A decimal port without leading zeroes, as version 1 demands.
std::optional<unsigned short> parse_v1_port(std::string_view text) {
    if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0'))
        return std::nullopt;
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value > 65535)
        return std::nullopt;
    return static_cast<unsigned short>(value);
}

std::optional<ip::address> parse_v1_address(std::string_view text, bool v6) {
    boost::system::error_code ec;
    const std::string s(text);
    if (v6) {
        const auto a = ip::make_address_v6(s, ec);
        if (ec || a.scope_id() != 0)
            return std::nullopt;
        return a;
    }
    const auto a = ip::make_address_v4(s, ec); // inet_pton: no leading zeroes either
    if (ec)
        return std::nullopt;
    return a;
}

proxy_parse_result parse_v1(std::span<const std::byte> data) {
    const std::string_view text(reinterpret_cast<const char*>(data.data()),
                                std::min(data.size(), proxy_v1_max_length));
    const auto eol = text.find_first_of("\r\n", v1_prefix.size());
    if (eol != std::string_view::npos && text[eol] == '\n')
        return invalid("v1: LF without CR");
    if (eol == std::string_view::npos || eol + 1 == text.size())
        return text.size() == proxy_v1_max_length
                   ? invalid("v1: no CRLF within " + std::to_string(proxy_v1_max_length) + " bytes")
                   : need_more();
    if (text[eol + 1] != '\n')
        return invalid("v1: CR without LF");

    proxy_parse_result r;
    r.status = proxy_parse_status::complete;
    r.length = eol + 2;
    const std::string_view line = text.substr(v1_prefix.size(), eol - v1_prefix.size());
    const std::string_view proto = line.substr(0, line.find(' '));
    if (proto == "UNKNOWN")
        return r; // the rest of the line is to be ignored
    if (proto != "TCP4" && proto != "TCP6")
        return invalid("v1: unknown protocol '" + std::string(proto) + "'");

    std::vector<std::string_view> fields;
    std::string_view rest = line.substr(proto.size());
    while (!rest.empty()) {
        if (rest[0] != ' ')
            return invalid("v1: malformed line");
        rest.remove_prefix(1);
        const auto field = rest.substr(0, rest.find(' '));
        fields.push_back(field);
        rest.remove_prefix(field.size());
    }
    if (fields.size() != 4)
        return invalid("v1: expected 4 fields after " + std::string(proto));
    const bool v6 = proto == "TCP6";
    const auto src = parse_v1_address(fields[0], v6);
    const auto dst = parse_v1_address(fields[1], v6);
    if (!src || !dst)
        return invalid("v1: bad " + std::string(v6 ? "IPv6" : "IPv4") + " address");
    const auto src_port = parse_v1_port(fields[2]);
    const auto dst_port = parse_v1_port(fields[3]);
    if (!src_port || !dst_port)
        return invalid("v1: bad port");
    r.source = tcp::endpoint(*src, *src_port);
    r.destination = tcp::endpoint(*dst, *dst_port);
    return r;
}

unsigned short read_port(const std::byte* p) {
    return static_cast<unsigned short>((std::to_integer<unsigned>(p[0]) << 8) |
                                       std::to_integer<unsigned>(p[1]));
}

template <typename Bytes> Bytes read_bytes(const std::byte* p) {
    Bytes out;
    std::memcpy(out.data(), p, out.size());
    return out;
}

proxy_parse_result parse_v2(std::span<const std::byte> data) {
    const auto ver_cmd = std::to_integer<unsigned char>(data[12]);
    const auto family = std::to_integer<unsigned char>(data[13]);
    const std::size_t length =
        (std::to_integer<std::size_t>(data[14]) << 8) | std::to_integer<std::size_t>(data[15]);
    if ((ver_cmd & 0xF0) != v2_version)
        return invalid("v2: unsupported version " + std::to_string(ver_cmd >> 4));
    const unsigned char command = ver_cmd & 0x0F;
    if (command != v2_cmd_local && command != v2_cmd_proxy)
        return invalid("v2: unknown command " + std::to_string(command));
    if ((family >> 4) > 3 || (family & 0x0F) > 2)
        return invalid("v2: unknown address family/protocol " + std::to_string(family));
    if (length > proxy_v2_max_payload)
        return invalid("v2: address block of " + std::to_string(length) + " bytes exceeds " +
                       std::to_string(proxy_v2_max_payload));
    if (data.size() < v2_fixed_length + length)
        return need_more();

    proxy_parse_result r;
    r.status = proxy_parse_status::complete;
    r.length = v2_fixed_length + length;
    if (command == v2_cmd_local)
        return r; // a health check by the proxy itself: its own addresses apply
    const std::byte* block = data.data() + v2_fixed_length;
    if (family == v2_tcp4) {
        if (length < v2_tcp4_length)
            return invalid("v2: TCP over IPv4 needs 12 address bytes, got " +
                           std::to_string(length));
        using bytes = ip::address_v4::bytes_type;
        r.source = tcp::endpoint(ip::address_v4(read_bytes<bytes>(block)), read_port(block + 8));
        r.destination =
            tcp::endpoint(ip::address_v4(read_bytes<bytes>(block + 4)), read_port(block + 10));
    } else if (family == v2_tcp6) {
        if (length < v2_tcp6_length)
            return invalid("v2: TCP over IPv6 needs 36 address bytes, got " +
                           std::to_string(length));
        using bytes = ip::address_v6::bytes_type;
        r.source = tcp::endpoint(ip::address_v6(read_bytes<bytes>(block)), read_port(block + 32));
        r.destination =
            tcp::endpoint(ip::address_v6(read_bytes<bytes>(block + 16)), read_port(block + 34));
    }
    // Anything else (UNSPEC, UDP, UNIX) falls back to the connection's own addresses, as the
    // spec asks of receivers that do not support it. TLVs past the addresses are skipped.
    return r;
}

} // namespace

proxy_version parse_proxy_version(std::string_view text) {
    if (text == "off")
        return proxy_version::off;
    if (text == "v1")
        return proxy_version::v1;
    if (text == "v2")
        return proxy_version::v2;
    throw std::invalid_argument("'" + std::string(text) + "' is not off, v1 or v2");
}

std::string_view to_string(proxy_version version) {
    switch (version) {
    case proxy_version::off:
        return "off";
    case proxy_version::v1:
        return "v1";
    case proxy_version::v2:
        return "v2";
    }
    return "off";
}

std::string encode_proxy_header(proxy_version version, const tcp::endpoint& source,
                                const tcp::endpoint& destination) {
    ip::address src = normalized(source.address());
    ip::address dst = normalized(destination.address());
    if (src.is_v4() != dst.is_v4()) {
        src = as_v6(src);
        dst = as_v6(dst);
    }
    const bool v4 = src.is_v4();
    std::string out;
    if (version == proxy_version::v1) {
        out = std::string(v1_prefix) + (v4 ? "TCP4 " : "TCP6 ") + src.to_string() + " " +
              dst.to_string() + " " + std::to_string(source.port()) + " " +
              std::to_string(destination.port()) + "\r\n";
    } else if (version == proxy_version::v2) {
        append_bytes(out, v2_signature);
        out.push_back(static_cast<char>(v2_version | v2_cmd_proxy));
        out.push_back(static_cast<char>(v4 ? v2_tcp4 : v2_tcp6));
        append_port(out, static_cast<unsigned short>(v4 ? v2_tcp4_length : v2_tcp6_length));
        if (v4) {
            append_bytes(out, src.to_v4().to_bytes());
            append_bytes(out, dst.to_v4().to_bytes());
        } else {
            append_bytes(out, src.to_v6().to_bytes());
            append_bytes(out, dst.to_v6().to_bytes());
        }
        append_port(out, source.port());
        append_port(out, destination.port());
    }
    return out;
}

proxy_parse_result parse_proxy_header(std::span<const std::byte> data) {
    if (agrees_with(data, v1_prefix.data(), v1_prefix.size()))
        return data.size() <= v1_prefix.size() ? need_more() : parse_v1(data);
    if (agrees_with(data, v2_signature.data(), v2_signature.size()))
        return data.size() < v2_fixed_length ? need_more() : parse_v2(data);
    return invalid("not a PROXY protocol header");
}

} // namespace nodelayd
