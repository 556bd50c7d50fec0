#pragma once
// The io_uring backend. Operations are prepared into the submission ring as they are
// started and handed to the kernel together at the next wait: one io_uring_enter per
// loop turn. user_data points at the io_op in the awaiting frame; 0 marks a CQE to
// ignore (an async-cancel's own completion), 1 the wakeup eventfd read.

#include <corio/config.hpp>

#if CORIO_HAS_IO_URING

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <liburing.h>
#include <poll.h>

#include <corio/backend/backend.hpp>

namespace corio::detail {

/// Test hook for the setup fallback. When set, it is called before each io_uring_setup
/// attempt with the flags about to be tried; a non-zero return is the errno that attempt
/// fails with, without asking the kernel: EINVAL plays a kernel too old for those flags
/// (the next set is tried), EPERM a container whose seccomp profile forbids io_uring.
/// Read once per attempt, at loop creation only.
inline int (*uring_setup_fault)(unsigned flags) = nullptr;

class uring_backend final : public backend {
public:
    /// The kernel's limit on queue_depth (IORING_MAX_ENTRIES): above it, every set of
    /// flags is refused with EINVAL.
    static constexpr unsigned max_queue_depth = 32768;

    uring_backend(unsigned queue_depth, int wake_fd) : wake_fd_(wake_fd) {
        if (queue_depth == 0) queue_depth = 256;
        // Newest flags first: SINGLE_ISSUER|DEFER_TASKRUN (6.1) runs completions only
        // when we wait, on our thread; COOP_TASKRUN (5.19) avoids IPIs; then plain.
        const unsigned flag_sets[] = {
            IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
            IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
            0U,
        };
        int rc = -EINVAL;
        for (unsigned flags : flag_sets) {
            rc = uring_setup_fault != nullptr ? -uring_setup_fault(flags) : 0;
            if (rc == 0) {
                io_uring_params params{};
                params.flags = flags;
                rc = io_uring_queue_init_params(queue_depth, &ring_, &params);
            }
            if (rc == 0) {
                flags_ = flags;
                break;
            }
            if (rc != -EINVAL) break;  // EPERM, ENOMEM, ENOSYS: no other flag set will help
        }
        if (rc != 0) throw setup_error(-rc, queue_depth);
        arm_wakeup();
    }
    ~uring_backend() override { io_uring_queue_exit(&ring_); }

    [[nodiscard]] backend_kind kind() const noexcept override { return backend_kind::io_uring; }
    /// The IORING_SETUP_* flags the kernel accepted (0: plain); describe() names them.
    [[nodiscard]] unsigned setup_flags() const noexcept { return flags_; }
    [[nodiscard]] bool nonblocking_sockets() const noexcept override { return false; }
    [[nodiscard]] std::string describe() const {
        if ((flags_ & IORING_SETUP_DEFER_TASKRUN) != 0U) return "io_uring (SINGLE_ISSUER|DEFER_TASKRUN)";
        if ((flags_ & IORING_SETUP_COOP_TASKRUN) != 0U) return "io_uring (COOP_TASKRUN)";
        return "io_uring";
    }

    void submit(io_op& op) override {
        prep(op);
        op.in_kernel = true;
        op.cancel_requested = false;
        ++in_flight_;
    }

    void cancel(io_op& op) noexcept override {
        if (!op.in_kernel || op.cancel_requested) return;
        op.cancel_requested = true;
        io_uring_sqe* sqe = next_sqe_noexcept();
        if (sqe == nullptr) return;  // the op completes on its own; nothing is lost
        io_uring_prep_cancel64(sqe, user_data(op), 0);
        io_uring_sqe_set_data64(sqe, 0);
    }

    bool wait(std::chrono::nanoseconds timeout) override {
        int rc = 0;
        if (timeout.count() == 0) {
            rc = io_uring_submit_and_get_events(&ring_);
        } else {
            io_uring_cqe* cqe = nullptr;
            __kernel_timespec ts{};
            __kernel_timespec* tsp = nullptr;
            if (timeout.count() > 0) {
                ts.tv_sec = timeout.count() / 1'000'000'000;
                ts.tv_nsec = timeout.count() % 1'000'000'000;
                tsp = &ts;
            }
            rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, tsp, nullptr);
        }
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
            throw std::system_error(-rc, std::system_category(), "corio: io_uring backend: io_uring_enter");
        return reap();
    }

private:
    // user_data: the op's address, with bit 1 set while the op waits for readiness
    // before retrying (a non-blocking fd answered -EAGAIN).
    static constexpr __u64 poll_tag = 2;
    static __u64 user_data(const io_op& op) noexcept {
        return reinterpret_cast<__u64>(&op) | (op.waiting_ready ? poll_tag : 0);
    }

    void prep(io_op& op) {
        io_uring_sqe* sqe = next_sqe();
        op.waiting_ready = false;
        switch (op.kind) {
            case io_kind::poll:
                io_uring_prep_poll_add(sqe, op.fd, op.poll_mask);
                break;
            case io_kind::read:
                io_uring_prep_read(sqe, op.fd, op.buf, static_cast<unsigned>(op.len), static_cast<__u64>(op.offset));
                break;
            case io_kind::write:
                io_uring_prep_write(sqe, op.fd, op.buf, static_cast<unsigned>(op.len), static_cast<__u64>(op.offset));
                break;
            case io_kind::recv:
                io_uring_prep_recv(sqe, op.fd, op.buf, op.len, op.msg_flags);
                break;
            case io_kind::send:
                io_uring_prep_send(sqe, op.fd, op.buf, op.len, op.msg_flags | MSG_NOSIGNAL);
                break;
            case io_kind::recvmsg:
                io_uring_prep_recvmsg(sqe, op.fd, static_cast<msghdr*>(op.buf), static_cast<unsigned>(op.msg_flags));
                break;
            case io_kind::sendmsg:
                io_uring_prep_sendmsg(sqe, op.fd, static_cast<const msghdr*>(op.buf),
                                      static_cast<unsigned>(op.msg_flags | MSG_NOSIGNAL));
                break;
            case io_kind::accept:
                // Accepted sockets stay blocking: see nonblocking_sockets().
                io_uring_prep_accept(sqe, op.fd, op.addr, op.addr != nullptr ? &op.addrlen : nullptr,
                                     op.msg_flags | SOCK_CLOEXEC);
                break;
            case io_kind::connect:
                io_uring_prep_connect(sqe, op.fd, op.addr, op.addrlen);
                break;
            case io_kind::openat:
                io_uring_prep_openat(sqe, AT_FDCWD, static_cast<const char*>(op.buf), op.msg_flags | O_CLOEXEC,
                                     static_cast<mode_t>(op.offset));
                break;
            case io_kind::fsync:
                io_uring_prep_fsync(sqe, op.fd, 0);
                break;
        }
        io_uring_sqe_set_data64(sqe, user_data(op));
    }

    void prep_ready_wait(io_op& op) {
        io_uring_sqe* sqe = next_sqe();
        const bool out = op.kind == io_kind::write || op.kind == io_kind::send || op.kind == io_kind::sendmsg ||
                         op.kind == io_kind::connect;
        io_uring_prep_poll_add(sqe, op.fd, out ? POLLOUT : POLLIN);
        op.waiting_ready = true;
        io_uring_sqe_set_data64(sqe, user_data(op));
    }

    static std::system_error setup_error(int e, unsigned queue_depth) {
        std::string why = "corio: io_uring backend: io_uring_setup failed";
        if (e == EINVAL && queue_depth > max_queue_depth)
            why += " (queue_depth " + std::to_string(queue_depth) + " is above the kernel's limit of " +
                   std::to_string(max_queue_depth) + ")";
        else if (e == EINVAL)
            why += " (the kernel refused every set of setup flags, plain ones too)";
        else if (e == EPERM || e == EACCES)
            why += " (io_uring is forbidden here: a container's seccomp profile, or kernel.io_uring_disabled)";
        else if (e == ENOSYS)
            why += " (this kernel has no io_uring)";
        else if (e == ENOMEM)
            why += " (locked memory limit too low: raise RLIMIT_MEMLOCK or lower queue_depth)";
        return {e, std::system_category(), why};
    }

    io_uring_sqe* next_sqe() {
        io_uring_sqe* sqe = next_sqe_noexcept();
        if (sqe == nullptr)
            throw std::system_error(EBUSY, std::system_category(), "corio: io_uring backend: submission queue full");
        return sqe;
    }

    io_uring_sqe* next_sqe_noexcept() noexcept {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        if (sqe == nullptr) {
            // The ring is full: hand what we have to the kernel and take a fresh slot.
            io_uring_submit(&ring_);
            sqe = io_uring_get_sqe(&ring_);
        }
        return sqe;
    }

    void arm_wakeup() {
        io_uring_sqe* sqe = next_sqe();
        io_uring_prep_poll_multishot(sqe, wake_fd_, POLLIN);
        io_uring_sqe_set_data64(sqe, 1);
    }

    bool reap() {
        bool woke = false;
        for (;;) {
            io_uring_cqe* cqe = nullptr;
            if (io_uring_peek_cqe(&ring_, &cqe) != 0 || cqe == nullptr) break;
            const __u64 data = cqe->user_data;
            const int res = cqe->res;
            const unsigned cflags = cqe->flags;
            io_uring_cqe_seen(&ring_, cqe);
            if (data == 0) continue;
            if (data == 1) {
                woke = true;
                if ((cflags & IORING_CQE_F_MORE) == 0U) arm_wakeup();
                continue;
            }
            auto* op = reinterpret_cast<io_op*>(static_cast<std::uintptr_t>(data & ~poll_tag));
            int result = res;
            if ((data & poll_tag) != 0) {
                // Readiness arrived for a retry; a cancel that came meanwhile wins.
                if (op->cancel_requested && result >= 0) {
                    result = -ECANCELED;
                } else if (result >= 0) {
                    prep(*op);
                    continue;
                }
            } else if (res == -EAGAIN && op->kind != io_kind::poll && !op->cancel_requested) {
                // A non-blocking fd said "not now": wait for readiness, then try again.
                prep_ready_wait(*op);
                continue;
            }
            op->in_kernel = false;
            op->result = result;
            --in_flight_;
            op->complete(op);
        }
        return woke;
    }

    io_uring ring_{};
    unsigned flags_ = 0;
    int wake_fd_;
};

}  // namespace corio::detail

#endif  // CORIO_HAS_IO_URING
