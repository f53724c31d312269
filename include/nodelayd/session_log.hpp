#pragma once
// Which sessions get a log line when they close (the `log-sessions` key): every one, only
// those that did not end normally (HAProxy's `option dontlog-normal`), or none (nginx's
// `access_log off`). A line per connection costs a formatted write and a wake-up of the
// log reader: 15% of the connection-per-request rate in bench `http-close`.

#include <string_view>

namespace nodelayd {

/// Which closed sessions are logged.
enum class session_log {
    /// Every session.
    on,
    /// Sessions that did not complete normally: resets, timeouts, failed connects, shutdown.
    errors,
    /// None.
    off,
};

/// Parses "on", "errors" or "off" (any case; also yes/no, true/false, 1/0; throws
/// std::invalid_argument otherwise).
session_log parse_session_log(std::string_view text);

/// Renders a mode as written in configs.
std::string_view to_string(session_log mode);

/// Whether a session that ended `completed` (both directions closed normally) or not is
/// logged under `mode`.
constexpr bool logs_session(session_log mode, bool completed) {
    return mode == session_log::on || (mode == session_log::errors && !completed);
}

} // namespace nodelayd
