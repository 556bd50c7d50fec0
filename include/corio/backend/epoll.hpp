#pragma once
// The epoll backend: completion semantics emulated with readiness. An operation first
// tries its syscall; only on EAGAIN does it wait for the fd.
// - corio's own sockets are attached once, edge-triggered, for their whole life: no
//   epoll_ctl per operation. Each remembers, per direction, whether it may be ready: a
//   syscall that finds it empty (EAGAIN, or a short transfer on a byte stream, which
//   drained the receive queue or filled the send buffer) clears that, and the next event
//   sets it. An operation in a direction known to be empty waits for the edge without
//   trying its syscall: an echo costs one recv and one send, not a third recv that fails
//   with EAGAIN. Once an event has shown the end of the stream or an error, the direction
//   stays ready (the end is read again and again, and no further edge would come).
// - A foreign fd (wait_readable on a C library's socket, a pipe) is registered
//   level-triggered and one-shot, and the registration is kept after the wait: an event
//   disarms it, so an fd nobody waits on cannot wake the loop, and the next wait re-arms
//   it with one EPOLL_CTL_MOD instead of an ADD and a DEL around every wait.
//   The user may close a foreign fd at any time, and the kernel hands its number out
//   again. epoll forgets a registration when its file is closed, so the re-arming MOD
//   fails with ENOENT once the number names another file: then the fd is registered
//   afresh, and waits still pending on the old file end with EBADF (nothing could wake
//   them any more). A wait on a foreign fd closed mid-wait ends that way, or when it is
//   cancelled. (io_uring's poll holds the file it started on and goes on watching it.)
//   Each registration's key carries a generation of its number, so the events of an old
//   file that lives on elsewhere (a dup) are not taken for the new one's.

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <ctime>
#include <string>
#include <system_error>
#include <utility>
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

/// Test hook for epoll_ctl. When set, each epoll_ctl call of a backend first asks it (with
/// the op and the fd): a non-zero return is the errno the call fails with, without asking
/// the kernel. Lets a test count the calls, or play a registration the kernel dropped.
inline int (*epoll_ctl_hook)(int op, int fd) = nullptr;

/// Test hook: when set, called after each syscall an operation on an attached socket
/// tries (not for attempts skipped because the direction is known to be empty), with
/// whether it finished (false: EAGAIN). Lets a test count the attempts that found nothing.
inline void (*epoll_attempt_hook)(const io_op& op, bool finished) = nullptr;

class epoll_backend final : public backend {
public:
    explicit epoll_backend(int wake_fd) : wake_fd_(wake_fd) {
        epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
        if (epfd_ < 0) throw std::system_error(errno, std::system_category(), "corio: epoll backend: epoll_create1");
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = 0;  // 0 marks the wakeup fd
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
        if ((op.kind != io_kind::poll || s.edge) && attempt(op, s)) {
            op.complete(&op);
            return;
        }
        io_op* stale = nullptr;
        if (!s.edge) {
            if (const int e = arm(op.fd, s, wanted(op), stale); e != 0) {
                fail_all(stale, -EBADF);
                op.result = -e;
                op.complete(&op);
                return;
            }
        }
        op.next = nullptr;
        io_op** tail = &s.waiters;
        while (*tail != nullptr) tail = &(*tail)->next;
        *tail = &op;
        op.in_kernel = true;
        ++in_flight_;
        fail_all(stale, -EBADF);  // last: a completion may submit, and move fds_
    }

    void cancel(io_op& op) noexcept override {
        if (!op.in_kernel) return;
        fd_state& s = fds_[static_cast<std::size_t>(op.fd)];
        unlink(s, op);
        // A foreign fd keeps its registration, armed for what the op wanted: it may report
        // once more, to nobody, and is disarmed by that.
        op.result = -ECANCELED;
        op.complete(&op);
    }

    void attach(int fd, bool stream) override {
        fd_state& s = state_for(fd);
        // corio has just made this socket: a foreign fd registered under its number was
        // closed since, and its pending waits can never be woken.
        io_op* stale = nullptr;
        if (!s.edge && s.registered != 0) {
            stale = std::exchange(s.waiters, nullptr);
            s.registered = 0;
            ++s.generation;
        }
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.u64 = key(fd, s);
        const int rc = ctl(EPOLL_CTL_ADD, fd, &ev);
        const int e = errno;
        if (rc == 0) {
            s.registered = ev.events;
            s.edge = true;
            s.stream = stream;
            s.ready = POLLIN | POLLOUT;  // unknown: the first operation tries
            s.closed = 0;
        }
        fail_all(stale, -EBADF);
        if (rc < 0) throw std::system_error(e, std::system_category(), "corio: epoll backend: registering a socket");
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
        (void)ctl(EPOLL_CTL_DEL, fd, nullptr);
        s = fd_state{.generation = s.generation + 1};
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
            if (events[i].data.u64 == 0) {
                woke = true;
                continue;
            }
            dispatch(events[i].data.u64, events[i].events);
        }
        return woke;
    }

private:
    struct fd_state {
        io_op* waiters = nullptr;
        std::uint32_t registered = 0;  // the mask epoll has for this fd, 0: not registered
        std::uint32_t generation = 0;  // bumped when the number is found to name a new file
        bool edge = false;             // attached for life, edge-triggered
        // Attached sockets only (see the file comment): POLLIN / POLLOUT.
        bool stream = false;      // a byte stream: a short transfer drained (or filled) it
        std::uint8_t ready = 0;   // the directions that may be ready
        std::uint8_t closed = 0;  // the directions an event showed ended or failed: always ready
    };

    // An event's key: the fd + 1 (0 is the wakeup fd) and the generation it was registered in.
    static std::uint64_t key(int fd, const fd_state& s) noexcept {
        return (std::uint64_t{s.generation} << 32) | (static_cast<std::uint32_t>(fd) + 1U);
    }

    int pwait2(epoll_event* events, const timespec& ts) {
        if (CORIO_UNLIKELY(epoll_pwait2_fault != nullptr)) {
            if (const int e = epoll_pwait2_fault(); e != 0) {
                errno = e;
                return -1;
            }
        }
        return ::epoll_pwait2(epfd_, events, 128, &ts, nullptr);
    }

    int ctl(int op, int fd, epoll_event* ev) noexcept {
        if (CORIO_UNLIKELY(epoll_ctl_hook != nullptr)) {
            if (const int e = epoll_ctl_hook(op, fd); e != 0) {
                errno = e;
                return -1;
            }
        }
        return ::epoll_ctl(epfd_, op, fd, ev);
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

    // Registers a foreign fd for what its waiters and `extra` (an op about to join them)
    // want, or re-arms its one-shot registration; returns 0 or an errno. The MOD also
    // checks that the number still names the file registered: if not (ENOENT, or EBADF
    // when it names none), the registration is made afresh under a new generation, and the
    // waiters of the old file are handed back in `stale`, to be failed with EBADF.
    int arm(int fd, fd_state& s, std::uint32_t extra, io_op*& stale) noexcept {
        std::uint32_t want = extra;
        for (io_op* w = s.waiters; w != nullptr; w = w->next) want |= wanted(*w);
        if (s.registered != 0) {
            if (ctl_for(EPOLL_CTL_MOD, fd, s, want) == 0) return 0;
            if (errno != ENOENT && errno != EBADF) return errno;
            stale = std::exchange(s.waiters, nullptr);
            s.registered = 0;
            ++s.generation;
            if (extra == 0) return 0;  // nobody left to register for
            want = extra;
        }
        if (ctl_for(EPOLL_CTL_ADD, fd, s, want) == 0) return 0;
        if (errno != EEXIST) return errno;
        // Registered already, with a key we no longer hold (the number was given back to
        // the file registered under it): take the registration over.
        return ctl_for(EPOLL_CTL_MOD, fd, s, want) == 0 ? 0 : errno;
    }

    // epoll_ctl ADD or MOD of a foreign fd for `poll_mask`, level-triggered and one-shot.
    int ctl_for(int op, int fd, fd_state& s, std::uint32_t poll_mask) noexcept {
        epoll_event ev{};
        ev.events = EPOLLONESHOT;
        if ((poll_mask & POLLIN) != 0U) ev.events |= EPOLLIN | EPOLLRDHUP;
        if ((poll_mask & POLLOUT) != 0U) ev.events |= EPOLLOUT;
        ev.data.u64 = key(fd, s);
        if (ctl(op, fd, &ev) < 0) return -1;
        s.registered = ev.events;
        return 0;
    }

    // Ends each op of a list already taken off its fd with `result`.
    void fail_all(io_op* list, int result) noexcept {
        while (list != nullptr) {
            io_op* op = list;
            list = op->next;
            op->next = nullptr;
            op->in_kernel = false;
            --in_flight_;
            op->result = result;
            op->complete(op);
        }
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

    // One attempt at the operation; true when it finished (result set). On an attached
    // socket it is skipped (false) while its direction is known to be empty, and its
    // outcome updates what is known (see the file comment).
    static bool attempt(io_op& op, fd_state& s) noexcept {
        if (!s.edge) return try_now(op, false);
        const auto dir = static_cast<std::uint8_t>(wanted(op));
        // A connect is always issued; only its completion waits for writability.
        const bool issue = op.kind == io_kind::connect && !op.in_kernel;
        if (!issue && (s.ready & dir) == 0U) return false;
        if (!tried(op, try_now(op, true))) {
            s.ready &= static_cast<std::uint8_t>(~dir | s.closed);
            return false;
        }
        if (s.stream && op.result > 0 && static_cast<std::size_t>(op.result) < op.len) {
            std::uint8_t drained = 0;
            switch (op.kind) {
                case io_kind::recv:
                    if ((op.msg_flags & MSG_PEEK) == 0) drained = POLLIN;
                    break;
                case io_kind::read:
                    drained = POLLIN;
                    break;
                case io_kind::send:
                case io_kind::write:
                    drained = POLLOUT;
                    break;
                default:
                    break;
            }
            s.ready &= static_cast<std::uint8_t>(~drained | s.closed);
        }
        return true;
    }

    static bool tried(const io_op& op, bool finished) noexcept {
        if (CORIO_UNLIKELY(epoll_attempt_hook != nullptr)) epoll_attempt_hook(op, finished);
        return finished;
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

    void dispatch(std::uint64_t event_key, std::uint32_t events) {
        const int fd = static_cast<int>((event_key & 0xffff'ffffU) - 1U);
        fd_state& s = fds_[static_cast<std::size_t>(fd)];
        // A registration of an earlier file with this number, which epoll keeps while the
        // file lives on elsewhere: its events are not the current file's.
        if ((event_key >> 32) != s.generation) return;
        const bool error = (events & (EPOLLERR | EPOLLHUP)) != 0U;
        std::uint32_t ready = 0;
        if ((events & (EPOLLIN | EPOLLRDHUP)) != 0U || error) ready |= POLLIN;
        if ((events & EPOLLOUT) != 0U || error) ready |= POLLOUT;
        if (s.edge) {
            s.ready |= static_cast<std::uint8_t>(ready);
            if ((events & EPOLLRDHUP) != 0U || error) s.closed |= POLLIN;
            if (error) s.closed |= POLLOUT;
        }
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
            } else if (!attempt(op, s)) {
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
        // The event disarmed a foreign fd's one-shot registration: re-arm it for those
        // still waiting. If that fails they cannot be woken any more, and end with the error.
        io_op* stale = nullptr;
        io_op* failed = nullptr;
        int failure = 0;
        if (!s.edge && s.waiters != nullptr) {
            if (const int e = arm(fd, s, 0, stale); e != 0) {
                failed = std::exchange(s.waiters, nullptr);
                failure = -e;
            }
        }
        // From here on `s` may move: a completion may submit an op on a higher fd.
        while (done != nullptr) {
            io_op* op = done;
            done = op->next;
            op->next = nullptr;
            op->complete(op);
        }
        fail_all(stale, -EBADF);
        fail_all(failed, failure);
    }

    int epfd_ = -1;
    int wake_fd_;
    bool has_pwait2_ = true;
    std::vector<fd_state> fds_;
};

}  // namespace corio::detail
