#pragma once
// Command-line parsing: turns argv into actions (help, version, check) and a settings layer
// that build_config() combines with the config file.

#include "nodelayd/config.hpp"

#include <optional>
#include <string>

namespace nodelayd {

/// What the command line asked for.
struct cli_request {
    /// --help: print usage and exit.
    bool help = false;
    /// --version: print the version and exit.
    bool version = false;
    /// --check: validate the configuration and exit.
    bool check = false;
    /// --config FILE, if given.
    std::optional<std::string> config_path;
    /// Every other option given, as key/value settings in command-line order.
    settings values;
    /// Usage text, for --help and errors.
    std::string usage;
};

/// Parses argv. Throws config_error for unknown options or missing values.
cli_request parse_command_line(int argc, const char* const* argv);

} // namespace nodelayd
