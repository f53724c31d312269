#pragma once
// Small helpers shared by the coroutine-based servers (relay workers and the stats endpoint).

#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include <cerrno>
#include <exception>
#include <string>
#include <system_error>

namespace nodelayd {

/// A worker's socket: bound to its io_context's executor (not any_io_executor), which keeps
/// the socket and every pending operation on it smaller.
using tcp_socket =
    boost::asio::basic_stream_socket<boost::asio::ip::tcp, boost::asio::io_context::executor_type>;
/// A worker's listening socket; accepts tcp_sockets.
using tcp_acceptor = boost::asio::basic_socket_acceptor<boost::asio::ip::tcp,
                                                        boost::asio::io_context::executor_type>;

/// Throws std::system_error with `what` (e.g. "bind 127.0.0.1:80") when `ec` is set.
void throw_if(const boost::system::error_code& ec, const std::string& what);

/// Whether an accept failed for lack of descriptors or memory: retrying at once would spin.
inline bool out_of_descriptors(const boost::system::error_code& ec) {
    namespace error = boost::asio::error;
    return ec == error::no_descriptors || ec == error::no_buffer_space || ec == error::no_memory ||
           ec.value() == ENFILE;
}

/// A co_spawn completion handler that logs an escaped exception, so none is lost.
struct log_failure {
    /// What failed, for the log line ("route=imap session").
    std::string what;
    /// Logs `e` (if any) at error level.
    void operator()(const std::exception_ptr& e) const;
};

} // namespace nodelayd
