#include "nodelayd/proxy_protocol.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

using namespace nodelayd;
using boost::asio::ip::make_address;
using boost::asio::ip::tcp;
using namespace std::string_literals;

namespace {

tcp::endpoint ep(const char* address, unsigned short port) {
    return {make_address(address), port};
}

proxy_parse_result parse(const std::string& bytes) {
    return parse_proxy_header(std::as_bytes(std::span(bytes.data(), bytes.size())));
}

// Builds a byte string from hex ("0d0a 0d0a"; spaces ignored).
std::string hex(std::string_view text) {
    std::string out;
    std::string digits;
    for (char c : text)
        if (c != ' ')
            digits += c;
    for (std::size_t i = 0; i + 1 < digits.size(); i += 2)
        out.push_back(static_cast<char>(std::stoi(digits.substr(i, 2), nullptr, 16)));
    return out;
}

const std::string v2_sig = hex("0d0a0d0a000d0a515549540a");

void expect_complete(const proxy_parse_result& r, std::size_t length, const tcp::endpoint& source,
                     const tcp::endpoint& destination) {
    ASSERT_EQ(r.status, proxy_parse_status::complete) << r.error;
    EXPECT_EQ(r.length, length);
    ASSERT_TRUE(r.source && r.destination);
    EXPECT_EQ(*r.source, source);
    EXPECT_EQ(*r.destination, destination);
}

void expect_invalid(const std::string& bytes, const char* fragment) {
    const auto r = parse(bytes);
    EXPECT_EQ(r.status, proxy_parse_status::invalid) << "accepted: " << bytes;
    EXPECT_NE(r.error.find(fragment), std::string::npos)
        << "error '" << r.error << "' lacks '" << fragment << "'";
}

// Every strict prefix of a valid header asks for more; the whole of it is complete.
void expect_prefixes_need_more(const std::string& header) {
    for (std::size_t n = 0; n < header.size(); ++n)
        EXPECT_EQ(parse(header.substr(0, n)).status, proxy_parse_status::need_more)
            << n << " of " << header.size() << " bytes";
    EXPECT_EQ(parse(header).status, proxy_parse_status::complete);
}

} // namespace

TEST(proxy_protocol, versions) {
    EXPECT_EQ(parse_proxy_version("off"), proxy_version::off);
    EXPECT_EQ(parse_proxy_version("v1"), proxy_version::v1);
    EXPECT_EQ(parse_proxy_version("v2"), proxy_version::v2);
    for (const char* bad : {"", "on", "1", "V1", "v3"})
        EXPECT_THROW(parse_proxy_version(bad), std::invalid_argument) << bad;
    EXPECT_EQ(to_string(proxy_version::v2), "v2");
}

// The example of section 2.1 of the spec.
TEST(proxy_protocol, encode_v1_tcp4) {
    EXPECT_EQ(
        encode_proxy_header(proxy_version::v1, ep("192.168.0.1", 56324), ep("192.168.0.11", 443)),
        "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
}

TEST(proxy_protocol, encode_v1_tcp6) {
    EXPECT_EQ(encode_proxy_header(proxy_version::v1, ep("2001:db8::1", 65535), ep("::1", 0)),
              "PROXY TCP6 2001:db8::1 ::1 65535 0\r\n");
}

// The bytes HAProxy sends for 172.19.0.1:42578 -> 172.19.0.3:80.
TEST(proxy_protocol, encode_v2_tcp4) {
    EXPECT_EQ(encode_proxy_header(proxy_version::v2, ep("172.19.0.1", 42578), ep("172.19.0.3", 80)),
              hex("0d0a0d0a000d0a515549540a 21 11 000c ac130001 ac130003 a652 0050"));
}

TEST(proxy_protocol, encode_v2_tcp6) {
    EXPECT_EQ(encode_proxy_header(proxy_version::v2, ep("2001:db8::1", 1), ep("::1", 443)),
              hex("0d0a0d0a000d0a515549540a 21 21 0024"
                  "20010db8000000000000000000000001 00000000000000000000000000000001"
                  "0001 01bb"));
}

TEST(proxy_protocol, encode_off_is_empty) {
    EXPECT_EQ(encode_proxy_header(proxy_version::off, ep("1.2.3.4", 1), ep("5.6.7.8", 2)), "");
}

// A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d: they go out as IPv4.
TEST(proxy_protocol, encode_unmaps_v4_mapped) {
    EXPECT_EQ(encode_proxy_header(proxy_version::v1, ep("::ffff:127.0.0.2", 40000),
                                  ep("::ffff:127.0.0.1", 1143)),
              "PROXY TCP4 127.0.0.2 127.0.0.1 40000 1143\r\n");
}

// Different families: the IPv4 address is sent IPv4-mapped, both in one TCP6 header.
TEST(proxy_protocol, encode_mixed_families_as_tcp6) {
    EXPECT_EQ(encode_proxy_header(proxy_version::v1, ep("127.0.0.2", 40000), ep("::1", 8080)),
              "PROXY TCP6 ::ffff:127.0.0.2 ::1 40000 8080\r\n");
    EXPECT_EQ(encode_proxy_header(proxy_version::v2, ep("::1", 1), ep("10.0.0.1", 2)),
              hex("0d0a0d0a000d0a515549540a 21 21 0024"
                  "00000000000000000000000000000001 00000000000000000000ffff0a000001"
                  "0001 0002"));
}

TEST(proxy_protocol, encode_drops_scope_id) {
    tcp::endpoint link_local(make_address("fe80::1%1"), 5);
    EXPECT_EQ(encode_proxy_header(proxy_version::v1, link_local, ep("fe80::2", 6)),
              "PROXY TCP6 fe80::1 fe80::2 5 6\r\n");
}

TEST(proxy_protocol, parse_v1_leaves_payload) {
    const std::string header = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    expect_complete(parse(header + "GET / HTTP/1.1\r\n"), header.size(), ep("192.168.0.1", 56324),
                    ep("192.168.0.11", 443));
    expect_complete(parse("PROXY TCP6 2001:db8::1 ::1 65535 0\r\n"), 36, ep("2001:db8::1", 65535),
                    ep("::1", 0));
}

TEST(proxy_protocol, parse_v1_unknown_has_no_addresses) {
    for (const std::string line :
         {"PROXY UNKNOWN\r\n"s, "PROXY UNKNOWN ffff:f::f ffff:f::f 65535 65535\r\n"s}) {
        const auto r = parse(line + "x");
        EXPECT_EQ(r.status, proxy_parse_status::complete) << r.error;
        EXPECT_EQ(r.length, line.size());
        EXPECT_FALSE(r.source || r.destination);
    }
}

// The longest line the spec allows (107 bytes with CRLF) is accepted; no CRLF by then is not.
TEST(proxy_protocol, parse_v1_length_bound) {
    const std::string v6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    const std::string longest = "PROXY UNKNOWN " + v6 + " " + v6 + " 65535 65535\r\n";
    ASSERT_EQ(longest.size(), 107u);
    EXPECT_EQ(parse(longest).status, proxy_parse_status::complete);
    const std::string tcp6 = "PROXY TCP6 " + v6 + " " + v6 + " 65535 65535\r\n";
    expect_complete(parse(tcp6), 104, ep(v6.c_str(), 65535), ep(v6.c_str(), 65535));

    const std::string no_crlf = "PROXY UNKNOWN " + std::string(200, 'a');
    EXPECT_EQ(parse(no_crlf.substr(0, 106)).status, proxy_parse_status::need_more);
    expect_invalid(no_crlf.substr(0, 107), "no CRLF within 107");
    expect_invalid(no_crlf, "no CRLF within 107");
    expect_invalid(longest.substr(0, 105) + "x\r\n", "no CRLF within 107"); // LF is byte 108
}

TEST(proxy_protocol, parse_v1_partial) {
    expect_prefixes_need_more("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
    expect_prefixes_need_more("PROXY UNKNOWN\r\n");
}

TEST(proxy_protocol, parse_v1_garbage) {
    expect_invalid("GET / HTTP/1.1\r\n", "not a PROXY protocol header");
    EXPECT_EQ(parse("PROX").status, proxy_parse_status::need_more);
    expect_invalid("PROXX", "not a PROXY");
    expect_invalid("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY");
    expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "LF without CR");
    expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "CR without LF");
    expect_invalid("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "unknown protocol 'UDP4'");
    expect_invalid("PROXY \r\n", "unknown protocol ''");
    expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "4 fields");
    expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "4 fields");
    expect_invalid("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "4 fields");
    expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "4 fields");
    expect_invalid("PROXY TCP4 1.2.3.4 ::1 1 2\r\n", "IPv4 address");
    expect_invalid("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "IPv6 address");
    expect_invalid("PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n", "IPv4 address");
    expect_invalid("PROXY TCP6 fe80::1%1 ::1 1 2\r\n", "IPv6 address");
    expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "port");
    expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "port");
    expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "port");
    expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 2x\r\n", "port");
}

TEST(proxy_protocol, parse_v2_tcp4_and_tcp6) {
    const std::string tcp4 = hex("0d0a0d0a000d0a515549540a 21 11 000c ac130001 ac130003 a652 0050");
    expect_complete(parse(tcp4 + "GET"), 28, ep("172.19.0.1", 42578), ep("172.19.0.3", 80));
    const std::string tcp6 = v2_sig + hex("21 21 0024"
                                          "20010db8000000000000000000000001"
                                          "00000000000000000000000000000001 0001 01bb");
    expect_complete(parse(tcp6), 52, ep("2001:db8::1", 1), ep("::1", 443));
}

TEST(proxy_protocol, parse_v2_partial) {
    expect_prefixes_need_more(
        hex("0d0a0d0a000d0a515549540a 21 11 000c ac130001 ac130003 a652 0050"));
    expect_prefixes_need_more(v2_sig + hex("20 00 0000"));
}

// TLVs after the addresses (ALPN "h2", a NOOP with 3 bytes) count in the length and are skipped.
TEST(proxy_protocol, parse_v2_skips_tlvs) {
    const std::string header =
        v2_sig + hex("21 11 0017 7f000002 7f000001 9c40 0050 01 0002 6832 04 0003 000000");
    expect_complete(parse(header + "payload"), 16 + 0x17, ep("127.0.0.2", 40000),
                    ep("127.0.0.1", 80));
    EXPECT_EQ(parse(header.substr(0, header.size() - 1)).status, proxy_parse_status::need_more);
}

// LOCAL (a health check by the proxy itself): complete, no addresses, even if some are given.
TEST(proxy_protocol, parse_v2_local) {
    for (const std::string& header :
         {v2_sig + hex("20 00 0000"), v2_sig + hex("20 11 000c 7f000002 7f000001 9c40 0050")}) {
        const auto r = parse(header + "x");
        EXPECT_EQ(r.status, proxy_parse_status::complete) << r.error;
        EXPECT_EQ(r.length, header.size());
        EXPECT_FALSE(r.source || r.destination);
    }
}

// Families nodelayd does not relay (UNSPEC, UDP, UNIX) fall back to the connection's addresses.
TEST(proxy_protocol, parse_v2_other_families_have_no_addresses) {
    for (const std::string& header :
         {v2_sig + hex("21 00 0000"), v2_sig + hex("21 12 000c 7f000002 7f000001 9c40 0050"),
          v2_sig + hex("21 31 00d8") + std::string(216, '\0')}) {
        const auto r = parse(header);
        EXPECT_EQ(r.status, proxy_parse_status::complete) << r.error;
        EXPECT_EQ(r.length, header.size());
        EXPECT_FALSE(r.source);
    }
}

TEST(proxy_protocol, parse_v2_garbage) {
    expect_invalid(hex("0d0a0d0a000d0a515549540b"), "not a PROXY");
    expect_invalid(hex("0d0a0d0b"), "not a PROXY");
    expect_invalid(v2_sig + hex("11 11 000c"), "version 1");
    expect_invalid(v2_sig + hex("31 11 000c"), "version 3");
    expect_invalid(v2_sig + hex("22 11 000c"), "command 2");
    expect_invalid(v2_sig + hex("21 41 000c"), "family");
    expect_invalid(v2_sig + hex("21 13 000c"), "family");
    expect_invalid(v2_sig + hex("21 11 0008 7f000002 7f000001"), "needs 12");
    expect_invalid(v2_sig + hex("21 21 000c") + std::string(12, '\0'), "needs 36");
    // The length is checked before its bytes arrive: no waiting for 64 KiB.
    expect_invalid(v2_sig + hex("21 11 1001"), "exceeds 4096");
    expect_invalid(v2_sig + hex("21 11 ffff"), "exceeds 4096");
    EXPECT_EQ(parse(v2_sig + hex("21 11 1000")).status, proxy_parse_status::need_more);
}

TEST(proxy_protocol, round_trips) {
    for (const auto version : {proxy_version::v1, proxy_version::v2})
        for (const auto& [src, dst] : {std::pair{ep("10.1.2.3", 1), ep("10.3.2.1", 65535)},
                                       std::pair{ep("2001:db8::5", 0), ep("::", 9)}}) {
            const auto header = encode_proxy_header(version, src, dst);
            expect_complete(parse(header + "rest"), header.size(), src, dst);
        }
}
