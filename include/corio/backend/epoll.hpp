#pragma once
// The epoll backend: completion semantics emulated with readiness. An operation first
// tries its syscall; only on EAGAIN does it wait for the fd.
// - corio's own sockets are attached once, edge-triggered, for their whole life: no
//   epoll_ctl per operation.
// - A foreign fd (wait_readable on a C library's socket) is registered level-triggered
//   while someone waits, and the registration is removed as soon as no operation waits
//   on it (the user may close the fd after wait_readable returns).

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <ctime>
#include <string>
#include <system_error>
#include <vector>

#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <corio/backend/backend.hpp>
#include <corio/config.hpp>

namespace corio::detail {

/// Test hook for the epoll_wait fallback. When set, each epoll_pwait2 call first asks it:
/// a non-zero return is the errno the call fails with, without asking the kernel (ENOSYS
/// plays a kernel before 5.11, EPERM a seccomp profile older than the syscall). One
/// predictable branch per timed wait, next to a syscall.
inline int (*epoll_pwait2_fault)() = nullptr;

class epoll_backend final : public backend {
public:
    explicit epoll_backend(int wake_fd) : wake_fd_(wake_fd) {
        epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
        if (epfd_ < 0) throw std::system_error(errno, std::system_category(), "corio: epoll backend: epoll_create1");
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = nullptr;  // nullptr marks the wakeup fd
        if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, wake_fd_, &ev) < 0) {
            const int e = errno;
            ::close(epfd_);
            throw std::system_error(e, std::system_category(), "corio: epoll backend: registering the wakeup eventfd");
        }
    }
    ~epoll_backend() override { ::close(epfd_); }

    [[nodiscard]] backend_kind kind() const noexcept override { return backend_kind::epoll; }
    /// False once epoll_pwait2 has turned out to be missing (found at the first timed
    /// wait): timeouts then go to epoll_wait, rounded up to whole milliseconds.
    [[nodiscard]] bool precise_timeouts() const noexcept { return has_pwait2_; }

    void submit(io_op& op) override {
        op.cancel_requested = false;
        if (op.fd < 0) {
            // A closed stream: the operation fails with EBADF under its own name, as the
            // kernel makes it fail on io_uring.
            op.result = -EBADF;
            op.complete(&op);
            return;
        }
        fd_state& s = state_for(op.fd);
        // Try the syscall first; an edge-triggered fd that is ready already will not
        // report it again, so a poll on it checks now too.
        if ((op.kind != io_kind::poll || s.edge) && try_now(op, s.edge)) {
            op.complete(&op);
            return;
        }
        op.next = nullptr;
        io_op** tail = &s.waiters;
        while (*tail != nullptr) tail = &(*tail)->next;
        *tail = &op;
        op.in_kernel = true;
        ++in_flight_;
        if (s.edge) return;
        if (const int e = update(op.fd, s); e != 0) {
            unlink(s, op);
            op.result = -e;
            op.complete(&op);
        }
    }

    void cancel(io_op& op) noexcept override {
        if (!op.in_kernel) return;
        fd_state& s = fds_[static_cast<std::size_t>(op.fd)];
        unlink(s, op);
        if (!s.edge) (void)update(op.fd, s);
        op.result = -ECANCELED;
        op.complete(&op);
    }

    void attach(int fd) override {
        fd_state& s = state_for(fd);
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.ptr = reinterpret_cast<void*>(static_cast<std::uintptr_t>(fd) + 1);
        if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) < 0)
            throw std::system_error(errno, std::system_category(), "corio: epoll backend: registering a socket");
        s.registered = ev.events;
        s.edge = true;
    }

    void detach(int fd) noexcept override {
        if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return;
        fd_state& s = fds_[static_cast<std::size_t>(fd)];
        if (!s.edge) return;
        // Anything still waiting on a socket being closed ends with EBADF, as it would
        // in the kernel.
        while (s.waiters != nullptr) {
            io_op& op = *s.waiters;
            unlink(s, op);
            op.result = -EBADF;
            op.complete(&op);
        }
        (void)::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
        s = fd_state{};
    }

    bool wait(std::chrono::nanoseconds timeout) override {
        epoll_event events[128];
        int n = 0;
        if (timeout.count() < 0) {
            n = ::epoll_wait(epfd_, events, 128, -1);
        } else {
            timespec ts{};
            ts.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000'000);
            ts.tv_nsec = static_cast<long>(timeout.count() % 1'000'000'000);
            if (has_pwait2_) {
                n = pwait2(events, ts);
                // ENOSYS: the kernel predates it; EPERM: a seccomp profile that does not
                // know it (epoll_pwait2 itself never fails with EPERM).
                if (n < 0 && (errno == ENOSYS || errno == EPERM)) {
                    has_pwait2_ = false;
                    n = wait_ms(events, timeout);
                }
            } else {
                n = wait_ms(events, timeout);
            }
        }
        if (n < 0) {
            if (errno == EINTR) return false;
            throw std::system_error(errno, std::system_category(), "corio: epoll backend: epoll_wait");
        }
        bool woke = false;
        for (int i = 0; i < n; ++i) {
            if (events[i].data.ptr == nullptr) {
                woke = true;
                continue;
            }
            const int fd = static_cast<int>(reinterpret_cast<std::uintptr_t>(events[i].data.ptr) - 1);
            dispatch(fd, events[i].events);
        }
        return woke;
    }

private:
    struct fd_state {
        io_op* waiters = nullptr;
        std::uint32_t registered = 0;  // the mask epoll has for this fd, 0: not registered
        bool edge = false;             // attached for life, edge-triggered
    };

    int pwait2(epoll_event* events, const timespec& ts) {
        if (CORIO_UNLIKELY(epoll_pwait2_fault != nullptr)) {
            if (const int e = epoll_pwait2_fault(); e != 0) {
                errno = e;
                return -1;
            }
        }
        return ::epoll_pwait2(epfd_, events, 128, &ts, nullptr);
    }

    int wait_ms(epoll_event* events, std::chrono::nanoseconds timeout) {
        // Round up: waking early costs the loop a busy spin to the deadline. Capped at
        // INT_MAX ms (24.8 days): cast, a longer timeout would turn negative, "forever".
        const std::int64_t ns = timeout.count();
        std::int64_t ms = ns / 1'000'000 + (ns % 1'000'000 != 0 ? 1 : 0);
        if (ms > INT_MAX) ms = INT_MAX;
        return ::epoll_wait(epfd_, events, 128, static_cast<int>(ms));
    }

    fd_state& state_for(int fd) {
        if (fd < 0) throw std::system_error(EBADF, std::system_category(), "corio: epoll backend: negative fd");
        const auto i = static_cast<std::size_t>(fd);
        if (i >= fds_.size()) fds_.resize(i + 1);
        return fds_[i];
    }

    static std::uint32_t wanted(const io_op& op) noexcept {
        switch (op.kind) {
            case io_kind::poll:
                return op.poll_mask;
            case io_kind::read:
            case io_kind::recv:
            case io_kind::recvmsg:
            case io_kind::accept:
                return POLLIN;
            case io_kind::write:
            case io_kind::send:
            case io_kind::sendmsg:
            case io_kind::connect:
                return POLLOUT;
            case io_kind::openat:
            case io_kind::fsync:
                return 0;
        }
        return 0;
    }

    // Returns 0 or an errno.
    int update(int fd, fd_state& s) noexcept {
        std::uint32_t mask = 0;
        for (io_op* w = s.waiters; w != nullptr; w = w->next) mask |= wanted(*w);
        std::uint32_t ev_mask = 0;
        if ((mask & POLLIN) != 0U) ev_mask |= EPOLLIN | EPOLLRDHUP;
        if ((mask & POLLOUT) != 0U) ev_mask |= EPOLLOUT;
        if (ev_mask == s.registered) return 0;
        epoll_event ev{};
        ev.events = ev_mask;
        ev.data.ptr = reinterpret_cast<void*>(static_cast<std::uintptr_t>(fd) + 1);
        int rc = 0;
        if (ev_mask == 0)
            rc = ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
        else if (s.registered == 0)
            rc = ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
        else
            rc = ::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev);
        if (rc < 0) {
            const int e = errno;
            // The fd was closed behind our back: forget the registration.
            if (ev_mask == 0 || e == EBADF || e == ENOENT) s.registered = 0;
            return ev_mask == 0 ? 0 : e;
        }
        s.registered = ev_mask;
        return 0;
    }

    void unlink(fd_state& s, io_op& op) noexcept {
        for (io_op** p = &s.waiters; *p != nullptr; p = &(*p)->next) {
            if (*p == &op) {
                *p = op.next;
                break;
            }
        }
        op.next = nullptr;
        op.in_kernel = false;
        --in_flight_;
    }

    // Runs the operation's syscall; true when it finished (result set), false on EAGAIN.
    static bool try_now(io_op& op, bool edge) noexcept {
        long rc = 0;
    again:
        switch (op.kind) {
            case io_kind::poll: {
                if (!edge) return false;
                pollfd p{op.fd, static_cast<short>(op.poll_mask), 0};
                if (::poll(&p, 1, 0) <= 0) return false;
                op.result = static_cast<int>(static_cast<unsigned short>(p.revents));
                return true;
            }
            case io_kind::recvmsg:
                rc = ::recvmsg(op.fd, static_cast<msghdr*>(op.buf), op.msg_flags);
                break;
            case io_kind::sendmsg:
                rc = ::sendmsg(op.fd, static_cast<const msghdr*>(op.buf), op.msg_flags | MSG_NOSIGNAL);
                break;
            case io_kind::openat:
            case io_kind::fsync:
                op.result = -EOPNOTSUPP;  // the file layer sends these to the thread pool
                return true;
            case io_kind::read:
                rc = op.offset < 0 ? ::read(op.fd, op.buf, op.len) : ::pread(op.fd, op.buf, op.len, op.offset);
                break;
            case io_kind::write:
                rc = op.offset < 0 ? ::write(op.fd, op.buf, op.len) : ::pwrite(op.fd, op.buf, op.len, op.offset);
                break;
            case io_kind::recv:
                rc = ::recv(op.fd, op.buf, op.len, op.msg_flags);
                break;
            case io_kind::send:
                rc = ::send(op.fd, op.buf, op.len, op.msg_flags | MSG_NOSIGNAL);
                break;
            case io_kind::accept: {
                socklen_t* lenp = op.addr != nullptr ? &op.addrlen : nullptr;
                rc = ::accept4(op.fd, op.addr, lenp, op.msg_flags | SOCK_CLOEXEC | SOCK_NONBLOCK);
                break;
            }
            case io_kind::connect: {
                if (op.in_kernel) {  // woken for writability: the connect has finished
                    int err = 0;
                    socklen_t len = sizeof err;
                    rc = ::getsockopt(op.fd, SOL_SOCKET, SO_ERROR, &err, &len);
                    if (rc == 0 && err != 0) {
                        op.result = -err;
                        return true;
                    }
                    break;
                }
                rc = ::connect(op.fd, op.addr, op.addrlen);
                if (rc < 0 && (errno == EINPROGRESS || errno == EAGAIN)) return false;
                break;
            }
        }
        if (rc < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
            if (errno == EINTR) goto again;
            op.result = -errno;
            return true;
        }
        op.result = static_cast<int>(rc);
        return true;
    }

    void dispatch(int fd, std::uint32_t events) {
        fd_state& s = fds_[static_cast<std::size_t>(fd)];
        const bool error = (events & (EPOLLERR | EPOLLHUP)) != 0U;
        std::uint32_t ready = 0;
        if ((events & (EPOLLIN | EPOLLRDHUP)) != 0U || error) ready |= POLLIN;
        if ((events & EPOLLOUT) != 0U || error) ready |= POLLOUT;
        // Complete every waiter whose readiness arrived; collect first, then complete,
        // since a completion may submit a new operation on the same fd.
        io_op* done = nullptr;
        io_op** done_tail = &done;
        for (io_op** p = &s.waiters; *p != nullptr;) {
            io_op& op = **p;
            if ((wanted(op) & ready) == 0U) {
                p = &op.next;
                continue;
            }
            if (op.kind == io_kind::poll) {
                std::uint32_t revents = ready & op.poll_mask;
                if ((events & EPOLLERR) != 0U) revents |= POLLERR;
                if ((events & EPOLLHUP) != 0U) revents |= POLLHUP;
                op.result = static_cast<int>(revents);
            } else if (!try_now(op, s.edge)) {
                p = &op.next;
                continue;
            }
            *p = op.next;
            op.next = nullptr;
            op.in_kernel = false;
            --in_flight_;
            *done_tail = &op;
            done_tail = &op.next;
        }
        if (!s.edge) (void)update(fd, s);
        while (done != nullptr) {
            io_op* op = done;
            done = op->next;
            op->next = nullptr;
            op->complete(op);
        }
    }

    int epfd_ = -1;
    int wake_fd_;
    bool has_pwait2_ = true;
    std::vector<fd_state> fds_;
};

}  // namespace corio::detail
