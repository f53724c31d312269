#pragma once
// Logging set-up: spdlog on stderr; under systemd's journal, each line starts with its syslog
// priority ("<6>") and carries no timestamp, so journalctl shows levels and its own times.

#include <string>

namespace nodelayd {

/// Whether stderr is the journal stream systemd connected (JOURNAL_STREAM names its
/// device and inode).
bool stderr_is_journal();

/// Installs the default logger at `level` (an spdlog level name), writing to stderr through
/// a batching_sink: lines from a thread in a batching_sink::batched_logging scope wait for
/// flush_logs().
void setup_logging(const std::string& level);

/// Writes the lines held back for the calling thread's loop (and any others held); costs no
/// more than an atomic load when there are none.
void flush_logs();

} // namespace nodelayd
