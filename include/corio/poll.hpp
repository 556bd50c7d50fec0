#pragma once
// wait_readable / wait_writable: integrate any non-blocking C library's fd with the loop.

#include <poll.h>

#include <corio/detail/io_awaiter.hpp>

namespace corio {

namespace detail {

class [[nodiscard]] poll_awaiter : public io_awaiter {
public:
    poll_awaiter(int fd, std::uint32_t mask, const char* what) noexcept : io_awaiter(what) {
        kind = io_kind::poll;
        this->fd = fd;
        poll_mask = mask;
    }
    /// The poll events that fired (POLLIN, POLLOUT, POLLERR, POLLHUP).
    unsigned await_resume() const { return static_cast<unsigned>(result_or_throw()); }
};

}  // namespace detail

/// Completes when fd is readable (or has an error or hang-up).
inline detail::poll_awaiter wait_readable(int fd) noexcept { return {fd, POLLIN, "wait_readable"}; }
/// Completes when fd is writable (or has an error or hang-up).
inline detail::poll_awaiter wait_writable(int fd) noexcept { return {fd, POLLOUT, "wait_writable"}; }

}  // namespace corio
