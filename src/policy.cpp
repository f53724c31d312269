#include "nodelayd/policy.hpp"

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

std::string_view to_string(cork_mode mode) {
    return mode == cork_mode::automatic ? "auto" : "off";
}

} // namespace nodelayd
