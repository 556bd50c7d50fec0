#pragma once
// The interface both backends implement. An io_op lives in the awaiting coroutine
// frame (no allocation per operation); the backend calls op->complete exactly once,
// after the kernel has let go of the op's buffers, with op->result set to the
// syscall's result or -errno (-ECANCELED when a cancel won).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <sys/socket.h>
#include <unistd.h>

/// @file
/// backend_kind: which kernel interface a loop's I/O goes through.

namespace corio {

/// The backend an event_loop uses, chosen in loop_options (event_loop::backend() says which
/// one it got).
enum class backend_kind : std::uint8_t { automatic, io_uring, epoll };

/// The backend's name: "automatic", "io_uring" or "epoll".
constexpr std::string_view to_string(backend_kind k) noexcept {
    switch (k) {
        case backend_kind::automatic:
            return "automatic";
        case backend_kind::io_uring:
            return "io_uring";
        case backend_kind::epoll:
            return "epoll";
    }
    return "unknown";
}

namespace detail {

// openat and fsync are io_uring only: on epoll, file operations go to the thread pool
// (a regular file is always "ready").
enum class io_kind : std::uint8_t { poll, read, write, recv, send, recvmsg, sendmsg, accept, connect, openat, fsync };

struct io_op {
    io_kind kind = io_kind::poll;
    int fd = -1;
    std::uint32_t poll_mask = 0;  // poll: POLLIN / POLLOUT
    int msg_flags = 0;            // recv / send / accept flags
    void* buf = nullptr;          // recvmsg / sendmsg: the msghdr; openat: the path
    std::size_t len = 0;
    std::int64_t offset = -1;  // read / write: -1 means the file position; openat: the mode
    sockaddr* addr = nullptr;
    socklen_t addrlen = 0;  // connect: the address length; accept: in/out length
    int result = 0;
    void (*complete)(io_op*) noexcept = nullptr;

    // Backend bookkeeping.
    io_op* next = nullptr;    // epoll: waiters on one fd; io_uring: what waits for an SQE
    io_op* prev = nullptr;    // io_uring: the same list, doubly linked
    bool in_kernel = false;   // submitted and not yet completed (io_uring: perhaps still parked)
    std::uint8_t parked = 0;  // io_uring: 1 the op waits for an SQE, 2 its cancel does
    // recv for tcp_stream::receive: the result's bytes are handed over, not copied. On
    // completion buf points at them and offset is the receive-pool buffer's id (the
    // backend's lease_home takes it back), or -1: buf was malloc'd for this op.
    bool lease = false;
    // The io_uring backend's per-submission state, next to each other so that starting an
    // op clears them in one store.
    bool cancel_requested = false;
    bool waiting_ready = false;  // polling before a retry after -EAGAIN
    bool counted = false;        // counted among its socket's operations in flight
    // A recv issued right after a send on its socket, which is not expected to find data
    // yet: it waits for readiness before trying (IORING_RECVSEND_POLL_FIRST).
    bool poll_first = false;
    bool zero_copy = false;   // a send that goes zero-copy (loop_options::zero_copy_send)
    bool fixed_file = false;  // its socket is in the table of registered files (IOSQE_FIXED_FILE)
};

/// Where tcp_stream::receive's leases give their buffers back (the io_uring backend's
/// receive pool). It outlives the backend while leases are out.
struct lease_home {
    void (*give_back)(lease_home* home, std::int32_t buffer) noexcept = nullptr;
};

class backend {
public:
    backend() = default;
    backend(const backend&) = delete;
    backend& operator=(const backend&) = delete;
    virtual ~backend() = default;

    [[nodiscard]] virtual backend_kind kind() const noexcept = 0;
    /// Starts an operation; completion may come in a later wait() or inside submit()
    /// itself, still before it returns (epoll: a syscall that succeeds at once, or a bad
    /// fd; io_uring: an op on a socket being closed, -EBADF). Never drops the op: io_uring
    /// parks one that finds the submission ring full until the next wait, and never
    /// throws; epoll throws only when it cannot grow its fd table (bad_alloc).
    virtual void submit(io_op& op) = 0;
    /// Abandons an operation; its complete() still comes, with -ECANCELED or a result
    /// if the operation won the race (perhaps inside cancel() itself). Never dropped.
    virtual void cancel(io_op& op) noexcept = 0;
    /// Waits for completions; timeout < 0: forever, 0: poll. Calls op->complete for each.
    /// Returns true if the remote-wakeup fd fired.
    virtual bool wait(std::chrono::nanoseconds timeout) = 0;
    /// Sockets corio itself creates are attached once for their whole life (epoll:
    /// registered edge-triggered) and detached just before they are closed. `stream`: a
    /// byte stream (TCP, Unix stream), where a short transfer means the socket was drained
    /// (or its send buffer filled), unlike a datagram socket.
    virtual void attach(int /*fd*/, bool /*stream*/) {}
    virtual void detach(int /*fd*/) noexcept {}
    /// Closes an attached socket. Every operation still waiting on it completes first,
    /// with -EBADF (unless a cancel of its own or a result won the race), and the number
    /// is not given back while the kernel holds one of them: io_uring cancels them by fd
    /// and closes the descriptor once the last CQE has come; epoll ends them in detach().
    virtual void close_socket(int fd) noexcept {
        detach(fd);
        ::close(fd);
    }
    /// Whether corio's own sockets should be non-blocking. io_uring prefers blocking
    /// sockets: it then waits for readiness inside the kernel instead of failing with
    /// -EAGAIN and costing a second round trip.
    [[nodiscard]] virtual bool nonblocking_sockets() const noexcept { return true; }
    /// Operations submitted and not yet completed.
    [[nodiscard]] std::size_t in_flight() const noexcept { return in_flight_; }
    /// Where leased receive-pool buffers go back; null before the pool exists, or none.
    [[nodiscard]] virtual lease_home* leases() noexcept { return nullptr; }

protected:
    std::size_t in_flight_ = 0;
};

}  // namespace detail
}  // namespace corio
