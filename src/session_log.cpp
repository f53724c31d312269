#include "nodelayd/session_log.hpp"

#include "nodelayd/values.hpp"

namespace nodelayd {

session_log parse_session_log(std::string_view text) {
    switch (parse_tristate(text, "errors")) {
    case tristate::on:
        return session_log::on;
    case tristate::third:
        return session_log::errors;
    case tristate::off:
        break;
    }
    return session_log::off;
}

std::string_view to_string(session_log mode) {
    switch (mode) {
    case session_log::on:
        return "on";
    case session_log::errors:
        return "errors";
    case session_log::off:
        return "off";
    }
    return "?";
}

} // namespace nodelayd
