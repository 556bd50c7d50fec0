#pragma once
// The owner of a socket fd that corio created: attaches it to the loop's backend (epoll:
// one edge-triggered registration for the socket's life) and detaches it before closing.

#include <cerrno>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include <sys/socket.h>
#include <unistd.h>

#include <corio/detail/io_awaiter.hpp>
#include <corio/detail/remote_queue.hpp>
#include <corio/event_loop.hpp>

namespace corio::detail {

class socket_handle {
public:
    socket_handle() = default;
    /// Takes fd and attaches it to loop (closing it if that fails).
    socket_handle(int fd, event_loop& loop) : fd_(fd) {
        if (loop.backend() != backend_kind::epoll) return;  // io_uring needs no registration
        try {
            loop.io().attach(fd);
        } catch (...) {
            ::close(fd);
            fd_ = -1;
            throw;
        }
        loop_ = &loop;
        alive_ = loop.remote_ref();
    }
    socket_handle(socket_handle&& o) noexcept
        : fd_(std::exchange(o.fd_, -1)), loop_(std::exchange(o.loop_, nullptr)), alive_(std::move(o.alive_)) {}
    socket_handle& operator=(socket_handle&& o) noexcept {
        if (this != &o) {
            close();
            fd_ = std::exchange(o.fd_, -1);
            loop_ = std::exchange(o.loop_, nullptr);
            alive_ = std::move(o.alive_);
        }
        return *this;
    }
    ~socket_handle() { close(); }

    [[nodiscard]] int fd() const noexcept { return fd_; }
    [[nodiscard]] bool is_open() const noexcept { return fd_ >= 0; }

    /// Closes the socket. An operation still waiting on it ends with EBADF (epoll) or
    /// as the kernel decides (io_uring); close only what nothing waits on.
    void close() noexcept {
        if (fd_ < 0) return;
        if (loop_ != nullptr) {
            // Once the loop is gone, so is its epoll set and the registration with it.
            if (auto q = alive_.lock(); q && !q->is_closed()) loop_->io().detach(fd_);
        }
        ::close(fd_);
        fd_ = -1;
        loop_ = nullptr;
        alive_.reset();
    }

private:
    int fd_ = -1;
    event_loop* loop_ = nullptr;
    std::weak_ptr<remote_queue> alive_;
};

/// A new socket of the current loop, blocking or not as its backend prefers.
inline socket_handle open_socket(int family, int type, const char* what) {
    event_loop& loop = event_loop::current();
    const int flags = SOCK_CLOEXEC | (loop.io().nonblocking_sockets() ? SOCK_NONBLOCK : 0);
    const int fd = ::socket(family, type | flags, 0);
    if (fd < 0) throw std::system_error(errno, std::system_category(), std::string("corio: ") + what + ": socket");
    return {fd, loop};
}

[[noreturn]] inline void throw_errno(const char* what, const std::string& detail = {}) {
    std::string msg = std::string("corio: ") + what;
    if (!detail.empty()) msg += " " + detail;
    throw std::system_error(errno, std::system_category(), msg);
}

/// An operation that moves bytes (recv, send, read, write): yields the count.
class [[nodiscard]] transfer_awaiter : public io_awaiter {
public:
    transfer_awaiter(io_kind k, int fd, void* data, std::size_t size, const char* what, bool exact = false,
                     std::int64_t at = -1) noexcept
        : io_awaiter(what) {
        kind = k;
        this->fd = fd;
        buf = data;
        len = size;
        offset = at;
        total_ = size;
        if (exact) set_exact();
    }
    /// openat: flags and permissions (buf holds the path).
    void set_open(int flags, unsigned permissions) noexcept {
        msg_flags = flags;
        offset = permissions;
    }
    /// The count; in exact mode, the whole count over every resubmission.
    std::size_t await_resume() const {
        const int n = result_or_throw();
        return exact() ? transferred() : static_cast<std::size_t>(n);
    }

protected:
    std::size_t total_ = 0;
};

/// read_exact / write_all: every byte, or an exception. A stream that ends first
/// throws std::system_error(io_errc::end_of_stream) saying how much had arrived.
class [[nodiscard]] exact_awaiter : public transfer_awaiter {
public:
    exact_awaiter(io_kind k, int fd, const void* data, std::size_t size, const char* what,
                  std::int64_t at = -1) noexcept
        : transfer_awaiter(k, fd, const_cast<void*>(data), size, what, true, at) {}
    bool await_ready() const noexcept { return total_ == 0; }
    void await_resume() const {
        throw_if_failed();
        if (transferred() == total_) return;
        if (cancel_was_sent()) throw_cancelled_now();  // a short transfer, then the cancel
        throw std::system_error(io_errc::end_of_stream, std::string("corio: ") + what() + ": the stream ended after " +
                                                            std::to_string(transferred()) + " of " +
                                                            std::to_string(total_) + " bytes");
    }
};

}  // namespace corio::detail
