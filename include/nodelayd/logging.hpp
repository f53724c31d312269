#pragma once
// Logging set-up: spdlog on stderr; under systemd's journal, each line starts with its syslog
// priority ("<6>") and carries no timestamp, so journalctl shows levels and its own times.

#include <string>

namespace nodelayd {

/// Whether stderr is the journal stream systemd connected (JOURNAL_STREAM names its
/// device and inode).
bool stderr_is_journal();

/// Installs the default logger at `level` (an spdlog level name).
void setup_logging(const std::string& level);

} // namespace nodelayd
