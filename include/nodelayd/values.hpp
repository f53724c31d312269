#pragma once
// Parsers for the scalar values of config keys. Each throws std::invalid_argument with a
// message that says what was expected, so the caller only has to name the key.

#include <chrono>
#include <cstddef>
#include <string_view>

namespace nodelayd {

/// "on|off" (also yes/no, true/false, 1/0).
bool parse_switch(std::string_view text);

/// A three-way key's value: see parse_tristate().
enum class tristate { off, on, third };

/// "on|off" as parse_switch(), or the word `third` (any case, like the switch words).
tristate parse_tristate(std::string_view text, std::string_view third);

/// "250ms", "5s", "2m", "1h", "1d"; a bare number means seconds. Must be > 0.
std::chrono::milliseconds parse_duration(std::string_view text);

/// "65536", "64k", "1m" (binary multiples). Must be > 0.
std::size_t parse_size(std::string_view text);

/// A busy-poll window: "off" or "0" (none), "50us", "1ms"; a bare number means microseconds
/// (like Linux's net.core.busy_poll). At most 10ms.
std::chrono::microseconds parse_busy_poll(std::string_view text);

/// A whole number in [min, max].
std::size_t parse_count(std::string_view text, std::size_t min, std::size_t max);

} // namespace nodelayd
