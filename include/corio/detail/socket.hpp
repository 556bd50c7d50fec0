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
#include <corio/net/endpoint.hpp>

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

/// The socket's own address (getsockname) or its peer's (getpeername).
inline net::endpoint socket_name(int fd, bool peer) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    auto* sa = reinterpret_cast<sockaddr*>(&ss);
    if ((peer ? ::getpeername(fd, sa, &len) : ::getsockname(fd, sa, &len)) < 0)
        throw std::system_error(errno, std::system_category(),
                                peer ? "corio: remote_endpoint" : "corio: local_endpoint");
    return net::endpoint::from_sockaddr(sa, len);
}

[[noreturn]] inline void throw_errno(const char* what, const std::string& detail = {}) {
    std::string msg = std::string("corio: ") + what;
    if (!detail.empty()) msg += " " + detail;
    throw std::system_error(errno, std::system_category(), msg);
}

}  // namespace corio::detail
