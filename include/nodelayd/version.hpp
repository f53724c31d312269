#pragma once

namespace nodelayd {
/// The release version, from CMake's project() version.
inline constexpr const char* version = NODELAYD_VERSION;
} // namespace nodelayd
