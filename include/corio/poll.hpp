#pragma once
/// @file
/// wait_readable / wait_writable: integrate any non-blocking C library's fd with the loop.

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

// Close the fd only once no wait on it is pending (cancel them first). A wait on an fd
// closed under it ends differently per backend: io_uring's poll holds the file and goes
// on watching it; on epoll, once the file is gone (not kept by a dup or a fork), the wait
// ends with EBADF when the fd's number is waited on again or given to one of corio's
// sockets, or when cancelled. The next fd with that number works on both backends.

/// Completes when fd is readable (or has an error or hang-up).
inline detail::poll_awaiter wait_readable(int fd) noexcept { return {fd, POLLIN, "wait_readable"}; }
/// Completes when fd is writable (or has an error or hang-up).
inline detail::poll_awaiter wait_writable(int fd) noexcept { return {fd, POLLOUT, "wait_writable"}; }

}  // namespace corio
