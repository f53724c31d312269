#pragma once
// Textual endpoints ("host:port", "[v6]:port") as written in configs and on the command line.

#include <cstdint>
#include <string>
#include <string_view>

namespace nodelayd {

/// A host (name, IPv4 or IPv6 literal without brackets) and a port, before resolution.
struct host_port {
    /// Host name or address literal; "0.0.0.0" / "::" for wildcards.
    std::string host;
    /// TCP port; 0 asks the kernel for one (listeners only).
    std::uint16_t port = 0;

    /// Renders as host:port, bracketing IPv6 literals.
    [[nodiscard]] std::string str() const;
    /// Field-wise equality.
    bool operator==(const host_port&) const = default;
};

/// Parses "host:port", "[v6]:port", "*:port" (all IPv4 addresses) or ":port".
/// Throws std::invalid_argument with a message saying what is wrong.
host_port parse_host_port(std::string_view text);

} // namespace nodelayd
