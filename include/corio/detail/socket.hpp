#pragma once
// The owner of a socket fd that corio created: attaches it to the loop's backend (epoll:
// one edge-triggered registration for the socket's life; io_uring: its operations are
// counted) and has the backend close it, ending its operations first.

#include <cerrno>
#include <memory>
#include <new>
#include <thread>
#include <string>
#include <system_error>
#include <utility>

#include <fcntl.h>
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
    /// Takes fd and attaches it to loop (closing it if that fails); `stream`: a byte
    /// stream socket (SOCK_STREAM), not a datagram one.
    socket_handle(int fd, event_loop& loop, bool stream) : fd_(fd) {
        try {
            loop.io().attach(fd, stream);
        } catch (...) {
            ::close(fd);
            fd_ = -1;
            throw;
        }
        loop_ = &loop;
        alive_ = loop.remote_ref();
        owner_ = std::this_thread::get_id();  // sockets are made on their loop's thread
    }
    socket_handle(socket_handle&& o) noexcept
        : fd_(std::exchange(o.fd_, -1)),
          loop_(std::exchange(o.loop_, nullptr)),
          alive_(std::move(o.alive_)),
          owner_(o.owner_),
          listening_(std::exchange(o.listening_, false)) {}
    socket_handle& operator=(socket_handle&& o) noexcept {
        if (this != &o) {
            close();
            fd_ = std::exchange(o.fd_, -1);
            loop_ = std::exchange(o.loop_, nullptr);
            alive_ = std::move(o.alive_);
            owner_ = o.owner_;
            listening_ = std::exchange(o.listening_, false);
        }
        return *this;
    }
    ~socket_handle() { close(); }

    [[nodiscard]] int fd() const noexcept { return fd_; }
    [[nodiscard]] bool is_open() const noexcept { return fd_ >= 0; }

    /// Closes the socket. Every operation still waiting on it ends promptly, with
    /// std::system_error(EBADF) "...: the socket was closed", on both backends; the
    /// descriptor number is given back only once the kernel holds none of them (io_uring:
    /// perhaps a loop turn later), so no operation can reach a socket that reuses it.
    void close() noexcept {
        if (fd_ < 0) return;
        const int fd = std::exchange(fd_, -1);
        // A listener leaves LISTEN now, not when the backend lets go of the descriptor (on
        // io_uring, once its pending accept's completion has come): its port is free at once
        // and no more connections queue up in its backlog.
        if (listening_) ::shutdown(fd, SHUT_RD);
        event_loop* loop = std::exchange(loop_, nullptr);
        const std::shared_ptr<remote_queue> q = alive_.lock();
        alive_.reset();
        // Once the loop is gone, so are its operations and registrations.
        if (loop == nullptr || !q || q->is_closed()) {
            ::close(fd);
            return;
        }
        if (std::this_thread::get_id() == owner_) {
            loop->io().close_socket(fd);
            return;
        }
        // Another thread: the backend's tables are its loop's alone, so the close goes to
        // the loop's thread. A loop that closes before it takes it closes the fd itself.
        struct closing final : remote_item {
            closing(int f, event_loop* l) noexcept : fd(f), loop(l) {
                fn = [](remote_item* self, bool run) noexcept {
                    auto* me = static_cast<closing*>(self);
                    if (run)
                        me->loop->io().close_socket(me->fd);
                    else
                        ::close(me->fd);
                    delete me;
                };
            }
            int fd;
            event_loop* loop;
        };
        auto* item = new (std::nothrow) closing(fd, loop);
        if (item == nullptr) {
            // Out of memory: end the socket's operations without giving its number back.
            ::shutdown(fd, SHUT_RDWR);
            return;
        }
        if (!q->push(item)) item->fn(item, false);
    }

    /// Puts the descriptor in non-blocking mode (O_NONBLOCK), for code other than corio's
    /// that is given it; corio's own operations work in either mode.
    /// The socket listens (tcp_listener): close() stops that first.
    void mark_listening() noexcept { listening_ = true; }

    void set_nonblocking(const char* what) const {
        const int flags = ::fcntl(fd_, F_GETFL);
        if (flags < 0 || ((flags & O_NONBLOCK) == 0 && ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK) < 0))
            throw std::system_error(errno, std::system_category(), std::string("corio: ") + what);
    }

private:
    int fd_ = -1;
    event_loop* loop_ = nullptr;
    std::weak_ptr<remote_queue> alive_;
    std::thread::id owner_;  // the loop's thread: the only one that may touch its backend
    bool listening_ = false;
};

/// A new socket of the current loop, blocking or not as its backend prefers.
inline socket_handle open_socket(int family, int type, const char* what) {
    event_loop& loop = event_loop::current();
    const int flags = SOCK_CLOEXEC | (loop.io().nonblocking_sockets() ? SOCK_NONBLOCK : 0);
    const int fd = ::socket(family, type | flags, 0);
    if (fd < 0) throw std::system_error(errno, std::system_category(), std::string("corio: ") + what + ": socket");
    return {fd, loop, type == SOCK_STREAM};
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
