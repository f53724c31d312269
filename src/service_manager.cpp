#include "nodelayd/service_manager.hpp"

#include <systemd/sd-daemon.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>

namespace nodelayd::service {

void notify(const std::string& state) {
    ::sd_notify(0, state.c_str());
}

std::optional<std::chrono::microseconds> watchdog_interval() {
    std::uint64_t usec = 0;
    if (::sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return std::nullopt;
    return std::chrono::microseconds(usec);
}

std::uint64_t monotonic_usec() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000 +
           static_cast<std::uint64_t>(ts.tv_nsec) / 1'000;
}

std::vector<passed_listener> take_passed_listeners(std::vector<std::string>& rejected) {
    char** names = nullptr;
    const int n = ::sd_listen_fds_with_names(1, &names);
    std::vector<passed_listener> out;
    for (int i = 0; i < n; ++i) {
        const int fd = SD_LISTEN_FDS_START + i;
        std::string name = names != nullptr && names[i] != nullptr ? names[i] : "unknown";
        if (::sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) > 0) {
            out.push_back({fd, std::move(name)});
        } else {
            rejected.push_back(name + " (fd " + std::to_string(fd) +
                               "): not a listening stream socket");
            ::close(fd);
        }
    }
    if (names != nullptr) {
        for (int i = 0; i < n; ++i)
            std::free(names[i]);
        std::free(names);
    }
    return out;
}

} // namespace nodelayd::service
