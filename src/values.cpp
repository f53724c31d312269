#include "nodelayd/values.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>
#include <stdexcept>
#include <string>

namespace nodelayd {
namespace {

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

// Splits "64k" into 64 and "k"; throws unless the number part is a whole number.
std::pair<std::uint64_t, std::string> number_and_unit(std::string_view text, const char* what) {
    std::uint64_t value = 0;
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ptr == text.data() || ec != std::errc())
        throw std::invalid_argument("'" + std::string(text) + "' is not " + what);
    return {value, lower(std::string_view(ptr, static_cast<std::size_t>(end - ptr)))};
}

} // namespace

bool parse_switch(std::string_view text) {
    const auto v = lower(text);
    if (v == "on" || v == "yes" || v == "true" || v == "1")
        return true;
    if (v == "off" || v == "no" || v == "false" || v == "0")
        return false;
    throw std::invalid_argument("'" + std::string(text) + "' is not on or off");
}

tristate parse_tristate(std::string_view text, std::string_view third) {
    if (lower(text) == lower(third))
        return tristate::third;
    try {
        return parse_switch(text) ? tristate::on : tristate::off;
    } catch (const std::invalid_argument&) {
        throw std::invalid_argument("'" + std::string(text) + "' is not on, " + std::string(third) +
                                    " or off");
    }
}

std::chrono::milliseconds parse_duration(std::string_view text) {
    const char* what = "a duration (e.g. 500ms, 5s, 2m, 1h)";
    const auto [value, unit] = number_and_unit(text, what);
    std::uint64_t ms_per_unit = 0;
    if (unit == "ms")
        ms_per_unit = 1;
    else if (unit.empty() || unit == "s")
        ms_per_unit = 1000;
    else if (unit == "m")
        ms_per_unit = 60'000;
    else if (unit == "h")
        ms_per_unit = 3'600'000;
    else if (unit == "d")
        ms_per_unit = 86'400'000;
    else
        throw std::invalid_argument("'" + std::string(text) + "' is not " + what);
    if (value == 0)
        throw std::invalid_argument("'" + std::string(text) + "': must be greater than zero");
    // Timers add durations to now() in nanoseconds: stay well inside that range (~146 years).
    if (value > std::numeric_limits<std::int64_t>::max() / 2'000'000 / ms_per_unit)
        throw std::invalid_argument("'" + std::string(text) + "' is too long");
    return std::chrono::milliseconds(static_cast<std::int64_t>(value * ms_per_unit));
}

std::chrono::microseconds parse_busy_poll(std::string_view text) {
    const char* what = "off or a duration in us or ms (e.g. 50us)";
    if (lower(text) == "off")
        return std::chrono::microseconds(0);
    const auto [value, unit] = number_and_unit(text, what);
    std::uint64_t us_per_unit = 0;
    if (unit.empty() || unit == "us")
        us_per_unit = 1;
    else if (unit == "ms")
        us_per_unit = 1000;
    else
        throw std::invalid_argument("'" + std::string(text) + "' is not " + what);
    // Past a few milliseconds polling only burns CPU: the kernel's own wake-up is cheaper.
    constexpr std::uint64_t max_us = 10'000;
    if (value > max_us / us_per_unit)
        throw std::invalid_argument("'" + std::string(text) + "' is longer than 10ms");
    return std::chrono::microseconds(static_cast<std::int64_t>(value * us_per_unit));
}

std::size_t parse_size(std::string_view text) {
    const char* what = "a size (e.g. 65536, 64k, 1m)";
    const auto [value, unit] = number_and_unit(text, what);
    std::uint64_t mult = 0;
    if (unit.empty() || unit == "b")
        mult = 1;
    else if (unit == "k" || unit == "kb" || unit == "kib")
        mult = 1024;
    else if (unit == "m" || unit == "mb" || unit == "mib")
        mult = 1024 * 1024;
    else if (unit == "g" || unit == "gb" || unit == "gib")
        mult = 1024ull * 1024 * 1024;
    else
        throw std::invalid_argument("'" + std::string(text) + "' is not " + what);
    if (value == 0)
        throw std::invalid_argument("'" + std::string(text) + "': must be greater than zero");
    if (value > std::numeric_limits<std::size_t>::max() / mult)
        throw std::invalid_argument("'" + std::string(text) + "' is too large");
    return static_cast<std::size_t>(value * mult);
}

std::size_t parse_count(std::string_view text, std::size_t min, std::size_t max) {
    std::uint64_t value = 0;
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc() || ptr != end)
        throw std::invalid_argument("'" + std::string(text) + "' is not a whole number");
    if (value < min || value > max)
        throw std::invalid_argument("'" + std::string(text) + "' is out of range " +
                                    std::to_string(min) + ".." + std::to_string(max));
    return static_cast<std::size_t>(value);
}

} // namespace nodelayd
