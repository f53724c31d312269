#include "nodelayd/session_registry.hpp"

namespace nodelayd {

session_registry::entry::entry(session_registry& registry, relay_control& control)
    : registry_(registry), it_(registry.sessions_.insert(registry.sessions_.end(), &control)) {}

session_registry::entry::~entry() {
    registry_.sessions_.erase(it_);
}

void session_registry::abort_all(close_reason reason) {
    for (auto* control : sessions_)
        control->abort(reason);
}

} // namespace nodelayd
