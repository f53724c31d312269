#include "nodelayd/asio_support.hpp"

#include <spdlog/spdlog.h>

namespace nodelayd {

void throw_if(const boost::system::error_code& ec, const std::string& what) {
    if (ec)
        throw std::system_error(ec, what);
}

void log_failure::operator()(const std::exception_ptr& e) const {
    if (!e)
        return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        spdlog::error("{} failed: {}", what, ex.what());
    } catch (...) {
        spdlog::error("{} failed with an unknown exception", what);
    }
}

} // namespace nodelayd
