#include "nodelayd/policy.hpp"

#include "nodelayd/values.hpp"

#include <stdexcept>
#include <string>

namespace nodelayd {

cork_mode parse_cork_mode(std::string_view text) {
    if (text == "auto")
        return cork_mode::automatic;
    if (text == "off")
        return cork_mode::off;
    throw std::invalid_argument("'" + std::string(text) + "' is not auto or off");
}

quickack_mode parse_quickack_mode(std::string_view text) {
    switch (parse_tristate(text, "auto")) {
    case tristate::on:
        return quickack_mode::on;
    case tristate::third:
        return quickack_mode::automatic;
    case tristate::off:
        break;
    }
    return quickack_mode::off;
}

std::string_view to_string(quickack_mode mode) {
    switch (mode) {
    case quickack_mode::on:
        return "on";
    case quickack_mode::automatic:
        return "auto";
    case quickack_mode::off:
        return "off";
    }
    return "?";
}

std::string_view to_string(cork_mode mode) {
    return mode == cork_mode::automatic ? "auto" : "off";
}

} // namespace nodelayd
