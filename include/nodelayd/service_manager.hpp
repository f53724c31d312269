#pragma once
// The systemd side of running as a service (libsystemd's sd-daemon): readiness and status
// notifications, the watchdog, and sockets passed by socket activation. Every call is a
// no-op when the daemon was not started by a service manager.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace nodelayd::service {

/// Sends `state` ("READY=1\nSTATUS=...") to $NOTIFY_SOCKET, if set.
void notify(const std::string& state);

/// The watchdog interval the manager expects pings within (WATCHDOG_USEC), if enabled.
std::optional<std::chrono::microseconds> watchdog_interval();

/// CLOCK_MONOTONIC in microseconds, for RELOADING=1's MONOTONIC_USEC.
std::uint64_t monotonic_usec();

/// A listening socket passed by the service manager.
struct passed_listener {
    /// The descriptor (owned by the receiver).
    int fd = -1;
    /// Its name from LISTEN_FDNAMES ("unknown" when unnamed).
    std::string name;
};

/// Takes the sockets in LISTEN_FDS/LISTEN_FDNAMES and unsets those variables. Descriptors
/// that are not listening stream sockets are closed and reported in `rejected`.
std::vector<passed_listener> take_passed_listeners(std::vector<std::string>& rejected);

} // namespace nodelayd::service
