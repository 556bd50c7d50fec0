#pragma once
// The io_uring backend. Operations are prepared into the submission ring as they are
// started and handed to the kernel together at the next wait: one io_uring_enter per
// loop turn. user_data points at the io_op in the awaiting frame; values no op can have
// (ops are 8-aligned) mark the backend's own requests: 0 a CQE to ignore (an
// async-cancel's own completion), 1 the wakeup eventfd's poll, fd << 3 | 5 a cancel of
// every operation on a socket being closed.
//
// Nothing started is ever dropped. An operation, a cancel or the wakeup's re-arm that
// finds no free SQE is parked in a FIFO (the ops' own links: no allocation) and goes in
// first at the next wait, which hands the kernel as many ring-fulls as it takes.
//
// A socket is closed only once the kernel holds no operation on it: closing cancels them
// all by fd, and the descriptor is released when the last one's CQE has come. Until then
// its number cannot be reused, so no retry or resubmission can reach another socket.
//
// Stream sockets read in small pieces get one multishot receive (Linux 6.0) over a ring of
// provided buffers (Linux 5.19) instead of a submission per read: the kernel fills a
// buffer of the loop's pool whenever data arrives, and the CQE (user_data fd << 3 | 3)
// queues it on its socket. A read takes from that queue, copying into the caller's
// buffer; one that finds it empty waits on the socket, not in the kernel, so cancelling
// it loses nothing (what arrives stays queued for the next read). The buffer goes back to
// the ring when it has been read. Where the kernel refuses either part, or the pool runs
// dry (ENOBUFS), a read is a plain recv as before, so every read is still answered.
//
// A listener gets one multishot accept (Linux 5.19) in the same way: its CQEs (user_data
// fd << 3 | 6) hand each new connection to the accept() waiting on the listener, or queue
// it there for the next one; a listener nobody accepts on is told to stop once a few are
// queued, so that the kernel's backlog holds the rest. A cancelled accept loses nothing.
// Closing the listener closes what is queued.
//
// A recv issued right after a send on its socket waits for readiness before it tries
// (IORING_RECVSEND_POLL_FIRST): the answer to what was just sent is not there yet.
//
// Writes of at least loop_options::zero_copy_send bytes to a peer on another host go as
// zero-copy sends (Linux 6.0): the kernel sends from the caller's buffer, and the write
// completes when its second CQE (IORING_CQE_F_NOTIF) says the kernel has let go of it,
// once the peer's TCP has acknowledged the data. A cancel cannot end it sooner.

#include <corio/config.hpp>

#if CORIO_HAS_IO_URING

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <csignal>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <corio/backend/backend.hpp>

namespace corio::detail {

/// Test hook for the setup fallback. When set, it is called before each io_uring_setup
/// attempt with the flags about to be tried; a non-zero return is the errno that attempt
/// fails with, without asking the kernel: EINVAL plays a kernel too old for those flags
/// (the next set is tried), EPERM a container whose seccomp profile forbids io_uring.
/// Read once per attempt, at loop creation only.
inline int (*uring_setup_fault)(unsigned flags) = nullptr;

/// Test hook for a kernel without some operation: asked at loop creation with each
/// IORING_OP_* the backend needs; true makes the probe report that one missing.
inline bool (*uring_probe_fault)(unsigned opcode) = nullptr;

/// The requests uring_request_fault can have the kernel refuse.
enum class uring_request : std::uint8_t {
    multishot_poll,    ///< the wakeup eventfd's multishot poll (Linux 5.13)
    oneshot_poll,      ///< the wakeup eventfd's one-shot poll, where multishot is missing
    cancel_fd,         ///< IORING_ASYNC_CANCEL_FD, closing a socket (Linux 5.19)
    register_file,     ///< a socket's entry in the table of registered files (Linux 5.19)
    multishot_recv,    ///< a stream socket's multishot receive (Linux 6.0)
    multishot_accept,  ///< a listener's multishot accept (Linux 5.19)
};

/// Test hook for a kernel without provided-buffer rings (before 5.19): asked when the
/// backend first sets up its receive pool; a non-zero return is the errno registering
/// the ring fails with, without asking the kernel. Reads are then plain receives.
inline int (*uring_buf_ring_fault)() = nullptr;
/// Test hook for older kernels: asked each time the backend sends one of those requests;
/// true sends it with a flag no kernel knows, so that the kernel itself answers -EINVAL,
/// as 5.10 does for a multishot poll and 5.18 for a cancel by fd.
inline bool (*uring_request_fault)(uring_request) = nullptr;

/// Test hook for a kernel without min-wait (before 6.12): when set, batched waits
/// (loop_options::batch_wait) are off, as has_min_wait() then says.
inline void (*uring_min_wait_fault)() = nullptr;

/// Test hook: zero-copy sends (loop_options::zero_copy_send) to a peer on this host too,
/// which they otherwise skip (see uring_backend::zero_copy_to), so that tests over loopback
/// reach them. Such a send ends only once the peer has read what it sent.
inline bool uring_zero_copy_local = false;

/// Test hook for a full submission ring: asked each time the backend wants an SQE; true
/// plays a ring the kernel has not yet emptied (no SQE is free). One predictable branch
/// per SQE.
inline bool (*uring_sqe_fault)() = nullptr;

/// Test hook for kernels that answer -EAGAIN on a non-blocking descriptor (this backend
/// then waits for readiness and retries): asked with the fd of each recv, send, read and
/// write; true sends the operation with MSG_DONTWAIT / RWF_NOWAIT, so that the kernel
/// answers -EAGAIN instead of waiting itself, as newer kernels do.
inline bool (*uring_nowait_fault)(int fd) = nullptr;

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
                // A completion ring larger than the submission ring: completions of many
                // turns' submissions can be waiting at once (the kernel keeps what does not
                // fit, IORING_FEAT_NODROP, but that is its slow path).
                params.flags = flags | IORING_SETUP_CQSIZE;
                params.cq_entries = cq_entries_for(queue_depth);
                rc = io_uring_queue_init_params(queue_depth, &ring_, &params);
            }
            if (rc == 0) {
                flags_ = flags;
                break;
            }
            if (rc != -EINVAL) break;  // EPERM, ENOMEM, ENOSYS: no other flag set will help
        }
        if (rc != 0) throw setup_error(-rc, queue_depth);
        try {
            check_features();
            start_wakeup();
        } catch (...) {
            io_uring_queue_exit(&ring_);
            throw;
        }
    }
    ~uring_backend() override {
        // The kernel cancels what is left and lets go of every file; then the sockets
        // that were waiting for their operations to end are closed.
        io_uring_queue_exit(&ring_);
        for (std::size_t fd = 0; fd < fds_.size(); ++fd) {
            drop_accepted(fds_[fd]);
            if (fds_[fd].closing) ::close(static_cast<int>(fd));
        }
        if (home_ != nullptr && home_->out > 0) {
            home_->owner = nullptr;  // the last lease unmaps the pool
        } else if (home_ != nullptr) {
            ::munmap(home_->mapping, home_->mapped);
            delete home_;
        }
    }

    [[nodiscard]] lease_home* leases() noexcept override { return home_; }

    [[nodiscard]] backend_kind kind() const noexcept override { return backend_kind::io_uring; }
    /// The IORING_SETUP_* flags the kernel accepted (0: plain); describe() names them.
    [[nodiscard]] unsigned setup_flags() const noexcept { return flags_; }
    /// False on a kernel without multishot poll: the wakeup poll is re-armed after each wake.
    [[nodiscard]] bool multishot_wakeup() const noexcept { return multishot_wakeup_; }
    [[nodiscard]] bool nonblocking_sockets() const noexcept override { return false; }
    [[nodiscard]] std::string describe() const {
        std::string flags;
        if ((flags_ & IORING_SETUP_DEFER_TASKRUN) != 0U)
            flags = "SINGLE_ISSUER|DEFER_TASKRUN";
        else if ((flags_ & IORING_SETUP_COOP_TASKRUN) != 0U)
            flags = "COOP_TASKRUN";
        if (!multishot_wakeup_)
            flags +=
                std::string(flags.empty() ? "" : ", ") + "one-shot wakeup poll: no multishot poll before Linux 5.13";
        return flags.empty() ? "io_uring" : "io_uring (" + flags + ")";
    }

    /// Never throws: an op that finds no SQE waits for one (see the file comment).
    void submit(io_op& op) noexcept override {
        op.cancel_requested = false;
        op.waiting_ready = false;
        op.counted = false;
        op.poll_first = false;
        op.zero_copy = false;
        op.fixed_file = false;
        // Only corio's own sockets are counted: a foreign fd's count could outlive its file
        // and hold the close of the next socket that gets its number.
        if (static_cast<std::size_t>(op.fd) < fds_.size() && fds_[static_cast<std::size_t>(op.fd)].attached) {
            fd_state& s = fds_[static_cast<std::size_t>(op.fd)];
            if (CORIO_UNLIKELY(s.closing)) {
                // The socket is being closed (an exact transfer resubmitting, say): nothing
                // more may reach it.
                op.result = -EBADF;
                op.complete(&op);
                return;
            }
            ++s.ops;
            op.counted = true;
            op.fixed_file = s.fixed;
            if (op.kind == io_kind::recv) {
                op.poll_first = std::exchange(s.after_send, false);
                // A stream read in small pieces goes through the receive pool; once its socket
                // has a multishot armed or data queued, every read does, so that bytes keep
                // their order.
                if (s.stream && op.msg_flags == 0 && op.len != 0 && pool_state_ != pool_off &&
                    uring_nowait_fault == nullptr &&
                    (op.len <= 4 * std::size_t{pool_.size} || s.armed || s.q_head >= 0)) {
                    op.in_kernel = true;
                    ++in_flight_;
                    if (read_pooled(op, static_cast<std::size_t>(op.fd))) return;
                    if (CORIO_UNLIKELY(op.lease) && !give_own_buffer(op)) return;
                    send(op);
                    return;
                }
            } else if (op.kind == io_kind::send) {
                s.after_send = true;
                if (CORIO_UNLIKELY(op.len >= zero_copy_min_)) op.zero_copy = zero_copy_to(s, op.fd);
            } else if (CORIO_UNLIKELY(op.kind == io_kind::accept) && accept_on_listener(op, s)) {
                return;
            }
        }
        op.in_kernel = true;
        ++in_flight_;
        if (CORIO_UNLIKELY(op.lease) && !give_own_buffer(op)) return;
        send(op);
    }

    /// Never throws, never drops the cancel: one that finds no SQE waits for one.
    void cancel(io_op& op) noexcept override {
        if (!op.in_kernel || op.cancel_requested) return;
        op.cancel_requested = true;
        if (op.parked == park_reader) {  // it waits on its socket: what arrives stays queued
            const bool accept = op.kind == io_kind::accept;
            const auto fd = static_cast<std::size_t>(op.fd);
            unlink_reader(op);
            finish(op, -ECANCELED);
            // A listener nobody waits on any more stops accepting: its backlog holds what comes.
            if (accept && fds_[fd].readers == nullptr) stop_accepting(fd);
            return;
        }
        if (op.parked == park_op) {  // it never reached the kernel: it ends here
            unpark(op);
            finish(op, -ECANCELED);
            return;
        }
        io_uring_sqe* sqe = take_sqe();
        if (sqe == nullptr) {
            park(op, park_cancel);
            return;
        }
        fill_cancel(op, *sqe);
    }

    bool wait(std::chrono::nanoseconds timeout) override {
        flush_parked();
        // What could not be handed over yet (the kernel is not taking submissions) must not
        // wait behind a sleep.
        if (parked_head_ != nullptr || wake_arm_parked_ || parked_fd_cancels_ > 0 || woke_early_)
            timeout = std::chrono::nanoseconds(0);
        if (CORIO_UNLIKELY(wake_broken_) && (timeout.count() < 0 || timeout > std::chrono::milliseconds(10)))
            timeout = std::chrono::milliseconds(10);  // no wakeup poll: look at other threads' posts often
        int rc = 0;
        if (timeout.count() == 0) {
            rc = io_uring_submit_and_get_events(&ring_);
        } else if (batch_wait_usec_ != 0 && in_flight_ >= 2 &&
                   (timeout.count() < 0 || timeout >= std::chrono::microseconds(1))) {
            rc = submit_and_wait_batch(timeout);
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

    /// A wait with at least two operations in flight collects up to max_batch completions
    /// for up to `usec` microseconds before it returns with what has come (the kernel's
    /// min-wait, Linux 6.12; elsewhere, and for 0, waits return at the first completion).
    void set_batch_wait(unsigned usec) noexcept {
        has_min_wait_ = (ring_.features & feat_min_timeout) != 0U && uring_min_wait_fault == nullptr;
        batch_wait_usec_ = has_min_wait_ ? usec : 0;
    }
    /// Whether the kernel has min-wait (IORING_FEAT_MIN_TIMEOUT, Linux 6.12), as of the last
    /// set_batch_wait.
    [[nodiscard]] bool has_min_wait() const noexcept { return has_min_wait_; }
    /// Waits that asked the kernel for a batch.
    [[nodiscard]] std::uint64_t batched_waits() const noexcept { return batched_waits_; }

    /// Sockets are counted from here on: their operations in flight, for close_socket.
    void attach(int fd, bool stream) override {
        if (fd < 0) return;
        const auto i = static_cast<std::size_t>(fd);
        if (i >= fds_.size()) fds_.resize(i + 1 > 2 * fds_.size() ? i + 1 : 2 * fds_.size());
        fds_[i] = fd_state{};
        fds_[i].attached = true;
        fds_[i].stream = stream;
        register_file(fd);
    }

    /// The receive pool (see the file comment): `count` buffers (a power of two; 0 turns
    /// multishot receive off) of `size` bytes, set up at the first read that can use it.
    void set_recv_buffers(unsigned count, unsigned size) noexcept {
        if (count == 0 || size == 0 || count > 32768 || (count & (count - 1)) != 0) count = 0;
        pool_.count = count;
        pool_.size = size;
        if (count == 0) pool_state_ = pool_off;
    }
    /// Whether stream reads use multishot receive: "not yet" until the first read tries.
    [[nodiscard]] bool multishot_recv() const noexcept { return pool_state_ == pool_on && !multishot_refused_; }
    /// Buffers of the receive pool the kernel may fill now (the rest are queued on
    /// sockets, waiting to be read).
    [[nodiscard]] unsigned recv_buffers_free() const noexcept { return pool_.free; }
    /// Multishot receives armed so far (one per socket while data keeps coming).
    [[nodiscard]] std::uint64_t multishot_arms() const noexcept { return multishot_arms_; }
    /// Multishot accepts armed so far (one per listener while connections keep coming).
    [[nodiscard]] std::uint64_t multishot_accepts() const noexcept { return multishot_accepts_; }
    /// False once the kernel has refused a multishot accept (before Linux 5.19).
    [[nodiscard]] bool multishot_accept() const noexcept { return !multishot_accept_refused_; }
    /// Receives sent with IORING_RECVSEND_POLL_FIRST (issued right after a send).
    [[nodiscard]] std::uint64_t poll_first_recvs() const noexcept { return poll_first_recvs_; }
    /// Sends that went as zero-copy sends.
    [[nodiscard]] std::uint64_t zero_copy_sends() const noexcept { return zero_copy_sends_; }
    /// Sockets in the ring's table of registered files now.
    [[nodiscard]] std::size_t fixed_files() const noexcept { return fixed_files_; }
    /// Whether the kernel has zero-copy send (IORING_OP_SEND_ZC, Linux 6.0).
    [[nodiscard]] bool has_zero_copy_send() const noexcept { return has_send_zc_; }
    /// Sends of at least min_bytes go as zero-copy sends where the kernel has them; 0: none.
    void set_zero_copy_send(std::size_t min_bytes) noexcept {
        zero_copy_min_ = min_bytes == 0 || !has_send_zc_ ? ~std::size_t{0} : min_bytes;
    }

    /// Ends every operation on the socket first (cancel by fd, or a shutdown on kernels
    /// without it), each with -EBADF; the descriptor is closed when the last one's CQE has
    /// come, so its number is not reused while the kernel still holds one of them.
    void close_socket(int fd) noexcept override {
        if (fd < 0) return;
        const auto i = static_cast<std::size_t>(fd);
        if (i >= fds_.size() || fds_[i].ops == 0) {
            if (i < fds_.size()) {
                unregister_file(fd);
                reset(fds_[i]);
            }
            ::close(fd);
            return;
        }
        fds_[i].closing = true;
        drop_queue(fds_[i]);
        drop_accepted(fds_[i]);
        end_parked_on(fd);             // these never reached the kernel
        end_readers_on(fd);            // nor did these: they wait on the socket's queue
        if (!fds_[i].closing) return;  // that was all of them: closed already
        if (has_cancel_fd_)
            send_cancel_fd(fd);
        else
            shut_down(fd);
    }

private:
    // Connections a listener's multishot accept took that no accept() has asked for yet,
    // oldest first.
    struct accept_queue {
        std::vector<int> fds;
        std::size_t head = 0;
        [[nodiscard]] std::size_t size() const noexcept { return fds.size() - head; }
        int pop() noexcept {
            const int fd = fds[head++];
            if (head == fds.size()) {
                fds.clear();
                head = 0;
            }
            return fd;
        }
    };

    struct fd_state {
        std::uint32_t ops = 0;       // counted operations in flight on this fd (and its multishot)
        bool attached = false;       // one of corio's sockets (attach): its ops are counted
        bool closing = false;        // closed by its owner; released when ops reaches 0
        bool cancel_parked = false;  // its cancel by fd waits for an SQE
        bool shut = false;           // shut down instead (no cancel by fd)
        bool stream = false;         // a byte stream: may read through the receive pool
        bool armed = false;          // its multishot receive is in the kernel
        bool stop_sent = false;      // ... and asked to stop: the socket holds enough unread
        bool delivered = false;      // its multishot has delivered a CQE (so the kernel has it)
        int end = 1;                 // <= 0: how the stream ended (0) or failed, for the next read
        std::int32_t q_head = -1;    // buffers received and not yet read, oldest first
        std::int32_t q_tail = -1;
        std::uint32_t q_off = 0;    // bytes of q_head already read
        std::uint32_t q_bytes = 0;  // bytes queued in all
        io_op* readers = nullptr;   // reads (or a listener's accepts) waiting for the queue, oldest first
        io_op* readers_tail = nullptr;
        bool after_send = false;           // the last op started on it was a send
        std::uint8_t zero_copy = 0;        // large sends: 0 not yet asked, 1 zero-copy, 2 plain
        bool fixed = false;                // in the table of registered files: ops use IOSQE_FIXED_FILE
        bool registering = false;          // its entry is being made (the update's CQE is due)
        bool plain_accepts = false;        // a listener whose multishot accept the kernel ended with EAGAIN
        accept_queue* accepted = nullptr;  // a listener's connections not yet accepted
    };

    // Where leases give buffers back, and the owner of the pool's mapping: outlives the
    // backend while any lease is out.
    struct pool_home : lease_home {
        uring_backend* owner = nullptr;
        std::size_t out = 0;  // buffers leased and not yet given back
        void* mapping = nullptr;
        std::size_t mapped = 0;
    };

    static void give_back_leased(lease_home* h, std::int32_t b) noexcept {
        auto* home = static_cast<pool_home*>(h);
        --home->out;
        if (home->owner != nullptr) {
            home->owner->recycle(b);
        } else if (home->out == 0) {  // the backend is gone: the last lease unmaps the pool
            ::munmap(home->mapping, home->mapped);
            delete home;
        }
    }

    // The receive pool: buffers in one mapping (home_'s) after the ring the kernel takes
    // them from.
    struct recv_pool {
        io_uring_buf_ring* ring = nullptr;
        char* data = nullptr;
        unsigned count = 256;
        unsigned size = 4096;
        unsigned free = 0;                // buffers in the ring, the kernel's to fill
        std::vector<std::int32_t> next;   // per buffer: the next one queued on its socket
        std::vector<std::uint32_t> used;  // per buffer: the bytes the kernel put in it
    };

    static constexpr __u64 wakeup_tag = 1;
    static constexpr __u64 fd_cancel_tag = 5;   // low three bits; the fd above them
    static constexpr __u64 recv_tag = 3;        // a socket's multishot receive; the fd above
    static constexpr __u64 accept_tag = 6;      // a listener's multishot accept; the fd above
    static constexpr __u64 register_tag = 4;    // a socket's entry in the file table; the fd above
    static constexpr __u64 unregister_tag = 7;  // ... and its removal (the answer is ignored)
    // The most sockets in the table of registered files (their numbers are its slots).
    static constexpr unsigned max_fixed_files = 16384;
    // Connections queued on a listener nobody accepts on before its multishot is stopped.
    static constexpr std::size_t accept_queue_stop = 32;
    static constexpr unsigned short recv_group = 0;  // the pool's buffer group id
    static constexpr std::uint8_t pool_untried = 0, pool_on = 1, pool_off = 2;
    // user_data: the op's address, with bit 1 set while the op waits for readiness
    // before retrying (a non-blocking fd answered -EAGAIN).
    static constexpr __u64 poll_tag = 2;
    static constexpr std::uint8_t park_op = 1;      // the op itself waits for an SQE
    static constexpr std::uint8_t park_cancel = 2;  // its cancel does
    static constexpr std::uint8_t park_reader = 3;  // a read waits on its socket's queue
    // Consecutive failures of the wakeup poll tolerated before wait() reports it.
    static constexpr unsigned max_wake_failures = 3;

    static __u64 user_data(const io_op& op) noexcept {
        return reinterpret_cast<__u64>(&op) | (op.waiting_ready ? poll_tag : 0);
    }

    static unsigned cq_entries_for(unsigned queue_depth) noexcept {
        constexpr unsigned max_cq = 2 * max_queue_depth;  // IORING_MAX_CQ_ENTRIES
        return queue_depth >= max_cq / 4 ? max_cq : 4 * queue_depth;
    }

    static bool refused(uring_request r) noexcept {
        return CORIO_UNLIKELY(uring_request_fault != nullptr) && uring_request_fault(r);
    }
    static bool nowait(int fd) noexcept {
        return CORIO_UNLIKELY(uring_nowait_fault != nullptr) && uring_nowait_fault(fd);
    }

    // ---- start-up: what the backend relies on ----

    void check_features() {
        // Without NODROP a burst of completions larger than the CQ would be lost.
        if ((ring_.features & IORING_FEAT_NODROP) == 0U)
            throw std::system_error(EOPNOTSUPP, std::system_category(),
                                    "corio: io_uring backend: the kernel's io_uring lacks IORING_FEAT_NODROP "
                                    "(Linux 5.5), so completions could be lost");
        io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
        if (probe == nullptr)
            throw std::system_error(EOPNOTSUPP, std::system_category(),
                                    "corio: io_uring backend: the kernel cannot list its io_uring operations "
                                    "(IORING_REGISTER_PROBE, Linux 5.6)");
        struct needed {
            unsigned op;
            const char* name;
        };
        static constexpr needed ops[] = {
            {IORING_OP_POLL_ADD, "IORING_OP_POLL_ADD"}, {IORING_OP_ASYNC_CANCEL, "IORING_OP_ASYNC_CANCEL"},
            {IORING_OP_READ, "IORING_OP_READ"},         {IORING_OP_WRITE, "IORING_OP_WRITE"},
            {IORING_OP_RECV, "IORING_OP_RECV"},         {IORING_OP_SEND, "IORING_OP_SEND"},
            {IORING_OP_RECVMSG, "IORING_OP_RECVMSG"},   {IORING_OP_SENDMSG, "IORING_OP_SENDMSG"},
            {IORING_OP_ACCEPT, "IORING_OP_ACCEPT"},     {IORING_OP_CONNECT, "IORING_OP_CONNECT"},
            {IORING_OP_OPENAT, "IORING_OP_OPENAT"},     {IORING_OP_FSYNC, "IORING_OP_FSYNC"},
        };
        const char* missing = nullptr;
        for (const needed& n : ops) {
            const bool faulted = uring_probe_fault != nullptr && uring_probe_fault(n.op);
            if (faulted || io_uring_opcode_supported(probe, static_cast<int>(n.op)) == 0) {
                missing = n.name;
                break;
            }
        }
        // Optional: zero-copy send (Linux 6.0).
        const bool zc_faulted = uring_probe_fault != nullptr && uring_probe_fault(IORING_OP_SEND_ZC);
        has_send_zc_ = !zc_faulted && io_uring_opcode_supported(probe, IORING_OP_SEND_ZC) != 0;
        io_uring_free_probe(probe);
        if (missing != nullptr)
            throw std::system_error(EOPNOTSUPP, std::system_category(),
                                    std::string("corio: io_uring backend: the kernel's io_uring lacks ") + missing);
    }

    // Arms the wakeup poll and sees at once whether the kernel takes it: a kernel without
    // multishot poll (before 5.13) refuses it with -EINVAL as it is submitted, and then
    // gets a one-shot poll, re-armed after each wake. One that refuses that too cannot
    // be woken from other threads: the backend is not usable.
    void start_wakeup() {
        for (int attempt = 0; attempt < 2; ++attempt) {
            io_uring_sqe* sqe = io_uring_get_sqe(&ring_);  // the ring is empty at start-up
            fill_wakeup(*sqe);
            const int rc = io_uring_submit_and_get_events(&ring_);
            if (rc < 0)
                throw std::system_error(-rc, std::system_category(), "corio: io_uring backend: arming the wakeup poll");
            int refusal = 0;
            io_uring_cqe* cqe = nullptr;
            while (io_uring_peek_cqe(&ring_, &cqe) == 0 && cqe != nullptr) {
                const int res = cqe->res;
                const bool more = (cqe->flags & IORING_CQE_F_MORE) != 0U;
                io_uring_cqe_seen(&ring_, cqe);
                if (res < 0) {
                    refusal = res;
                } else {
                    woke_early_ = true;  // another thread posted already
                    if (!more) arm_wakeup();
                }
            }
            if (refusal == 0) return;
            if (refusal != -EINVAL || !multishot_wakeup_)
                throw std::system_error(-refusal, std::system_category(),
                                        "corio: io_uring backend: the kernel refuses to poll the wakeup eventfd");
            multishot_wakeup_ = false;
        }
    }

    // ---- SQEs, and what waits for one ----

    io_uring_sqe* take_sqe() noexcept {
        if (CORIO_UNLIKELY(uring_sqe_fault != nullptr) && uring_sqe_fault()) return nullptr;
        return io_uring_get_sqe(&ring_);
    }

    // The op's SQE now, or a place in the FIFO. Nothing overtakes a parked op, so ops
    // reach the kernel in the order they were started.
    [[gnu::always_inline]] void send(io_op& op) noexcept {
        io_uring_sqe* sqe = parked_head_ == nullptr ? take_sqe() : nullptr;
        if (sqe == nullptr) {
            park(op, park_op);
            return;
        }
        fill(op, *sqe);
    }

    void park(io_op& op, std::uint8_t what) noexcept {
        op.parked = what;
        op.next = nullptr;
        op.prev = parked_tail_;
        if (parked_tail_ != nullptr)
            parked_tail_->next = &op;
        else
            parked_head_ = &op;
        parked_tail_ = &op;
    }

    void unpark(io_op& op) noexcept {
        if (op.prev != nullptr)
            op.prev->next = op.next;
        else
            parked_head_ = op.next;
        if (op.next != nullptr)
            op.next->prev = op.prev;
        else
            parked_tail_ = op.prev;
        op.next = op.prev = nullptr;
        op.parked = 0;
    }

    // Takes an SQE for what is parked, handing the kernel a ring-full when it runs out.
    io_uring_sqe* take_sqe_for_parked() noexcept {
        if (io_uring_sqe* sqe = take_sqe()) return sqe;
        if (io_uring_submit(&ring_) <= 0) return nullptr;
        return take_sqe();
    }

    // At the start of each wait: the wakeup's re-arm first, then cancels by fd, then the
    // parked ops and cancels in order. Stops where the kernel takes no more.
    void flush_parked() noexcept {
        if (wake_arm_parked_) {
            io_uring_sqe* sqe = take_sqe_for_parked();
            if (sqe == nullptr) return;
            wake_arm_parked_ = false;
            fill_wakeup(*sqe);
        }
        for (std::size_t fd = 0; parked_fd_cancels_ > 0 && fd < fds_.size(); ++fd) {
            if (!fds_[fd].cancel_parked) continue;
            io_uring_sqe* sqe = take_sqe_for_parked();
            if (sqe == nullptr) return;
            fds_[fd].cancel_parked = false;
            --parked_fd_cancels_;
            fill_cancel_fd(static_cast<int>(fd), *sqe);
        }
        while (parked_head_ != nullptr) {
            io_uring_sqe* sqe = take_sqe_for_parked();
            if (sqe == nullptr) return;
            io_op& op = *parked_head_;
            const std::uint8_t what = op.parked;
            unpark(op);
            if (what == park_op)
                fill(op, *sqe);
            else
                fill_cancel(op, *sqe);
        }
    }

    // A stream's recv and send, the hot path, prepared inline; every other kind out of line.
    [[gnu::always_inline]] void fill(io_op& op, io_uring_sqe& s) noexcept {
        if (CORIO_LIKELY(!op.waiting_ready && uring_nowait_fault == nullptr)) {
            if (op.kind == io_kind::recv) {
                io_uring_prep_recv(&s, op.fd, op.buf, op.len, op.msg_flags);
                if (op.poll_first) {
                    s.ioprio |= IORING_RECVSEND_POLL_FIRST;
                    ++poll_first_recvs_;
                }
                if (op.fixed_file) s.flags |= IOSQE_FIXED_FILE;
                io_uring_sqe_set_data64(&s, reinterpret_cast<__u64>(&op));
                return;
            }
            if (op.kind == io_kind::send) {
                if (CORIO_UNLIKELY(op.zero_copy)) {
                    io_uring_prep_send_zc(&s, op.fd, op.buf, op.len, op.msg_flags | MSG_NOSIGNAL, 0);
                    ++zero_copy_sends_;
                } else {
                    io_uring_prep_send(&s, op.fd, op.buf, op.len, op.msg_flags | MSG_NOSIGNAL);
                }
                if (op.fixed_file) s.flags |= IOSQE_FIXED_FILE;
                io_uring_sqe_set_data64(&s, reinterpret_cast<__u64>(&op));
                return;
            }
        }
        fill_any(op, s);
    }

    [[gnu::noinline]] void fill_any(io_op& op, io_uring_sqe& s) noexcept {
        io_uring_sqe* sqe = &s;
        if (op.waiting_ready) {
            const bool out = op.kind == io_kind::write || op.kind == io_kind::send || op.kind == io_kind::sendmsg ||
                             op.kind == io_kind::connect;
            io_uring_prep_poll_add(sqe, op.fd, out ? POLLOUT : POLLIN);
            if (op.fixed_file) sqe->flags |= IOSQE_FIXED_FILE;
            io_uring_sqe_set_data64(sqe, user_data(op));
            return;
        }
        switch (op.kind) {
            case io_kind::poll:
                io_uring_prep_poll_add(sqe, op.fd, op.poll_mask);
                break;
            case io_kind::read:
                io_uring_prep_read(sqe, op.fd, op.buf, static_cast<unsigned>(op.len), static_cast<__u64>(op.offset));
                if (nowait(op.fd)) sqe->rw_flags = RWF_NOWAIT;
                break;
            case io_kind::write:
                io_uring_prep_write(sqe, op.fd, op.buf, static_cast<unsigned>(op.len), static_cast<__u64>(op.offset));
                if (nowait(op.fd)) sqe->rw_flags = RWF_NOWAIT;
                break;
            case io_kind::recv:
                io_uring_prep_recv(sqe, op.fd, op.buf, op.len, op.msg_flags | (nowait(op.fd) ? MSG_DONTWAIT : 0));
                break;
            case io_kind::send:
                io_uring_prep_send(sqe, op.fd, op.buf, op.len,
                                   op.msg_flags | MSG_NOSIGNAL | (nowait(op.fd) ? MSG_DONTWAIT : 0));
                break;
            case io_kind::recvmsg:
                io_uring_prep_recvmsg(sqe, op.fd, static_cast<msghdr*>(op.buf),
                                      static_cast<unsigned>(op.msg_flags | (nowait(op.fd) ? MSG_DONTWAIT : 0)));
                break;
            case io_kind::sendmsg:
                io_uring_prep_sendmsg(
                    sqe, op.fd, static_cast<const msghdr*>(op.buf),
                    static_cast<unsigned>(op.msg_flags | MSG_NOSIGNAL | (nowait(op.fd) ? MSG_DONTWAIT : 0)));
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
        if (op.fixed_file) sqe->flags |= IOSQE_FIXED_FILE;
        io_uring_sqe_set_data64(sqe, user_data(op));
    }

    // The op's phase (waiting for readiness or not) no longer changes once a cancel is
    // requested, so the address computed here still matches when the cancel is parked.
    static void fill_cancel(const io_op& op, io_uring_sqe& sqe) noexcept {
        io_uring_prep_cancel64(&sqe, user_data(op), 0);
        io_uring_sqe_set_data64(&sqe, 0);
    }

    void fill_wakeup(io_uring_sqe& sqe) noexcept {
        if (multishot_wakeup_) {
            io_uring_prep_poll_multishot(&sqe, wake_fd_, POLLIN);
            if (refused(uring_request::multishot_poll)) sqe.len |= 1U << 31;
        } else {
            io_uring_prep_poll_add(&sqe, wake_fd_, POLLIN);
            if (refused(uring_request::oneshot_poll)) sqe.len |= 1U << 31;
        }
        io_uring_sqe_set_data64(&sqe, wakeup_tag);
    }

    void arm_wakeup() noexcept {
        io_uring_sqe* sqe = take_sqe();
        if (sqe == nullptr) {
            wake_arm_parked_ = true;
            return;
        }
        fill_wakeup(*sqe);
    }

    // ---- closing sockets ----

    void send_cancel_fd(int fd) noexcept {
        io_uring_sqe* sqe = take_sqe();
        if (sqe == nullptr) {
            fds_[static_cast<std::size_t>(fd)].cancel_parked = true;
            ++parked_fd_cancels_;
            return;
        }
        fill_cancel_fd(fd, *sqe);
    }

    static void fill_cancel_fd(int fd, io_uring_sqe& sqe) noexcept {
        io_uring_prep_cancel_fd(&sqe, fd, IORING_ASYNC_CANCEL_ALL);
        if (refused(uring_request::cancel_fd)) sqe.cancel_flags |= 1U << 31;
        io_uring_sqe_set_data64(&sqe, (static_cast<__u64>(fd) << 3) | fd_cancel_tag);
    }

    // Without cancel by fd: a shutdown wakes every operation waiting on the socket (a
    // listener's accept too); their results are then read as "closed".
    void shut_down(int fd) noexcept {
        fd_state& s = fds_[static_cast<std::size_t>(fd)];
        if (s.shut) return;
        s.shut = true;
        (void)::shutdown(fd, SHUT_RDWR);
    }

    void on_fd_cancel_result(int fd, int res) noexcept {
        if (res != -EINVAL) return;  // how many it cancelled, or -ENOENT: all had ended already
        // A kernel before 5.19: shut sockets down instead, this one and the next ones.
        has_cancel_fd_ = false;
        const auto i = static_cast<std::size_t>(fd);
        if (i < fds_.size() && fds_[i].closing) shut_down(fd);
    }

    // Ops on fd that still wait for an SQE end now; gathered first, since each completion
    // may start another op.
    void end_parked_on(int fd) noexcept {
        io_op* ended = nullptr;
        for (io_op* op = parked_head_; op != nullptr;) {
            io_op* next = op->next;
            if (op->fd == fd && op->parked == park_op) {
                unpark(*op);
                op->next = ended;
                ended = op;
            }
            op = next;
        }
        while (ended != nullptr) {
            io_op* op = ended;
            ended = op->next;
            op->next = nullptr;
            finish(*op, -EBADF);
        }
    }

    // What an op of a socket being closed reports: the task's own cancel still wins, a
    // result that won the race stands, and anything the close caused is EBADF.
    static int closed_result(const io_op& op, int result, const fd_state& s) noexcept {
        if (op.cancel_requested) return result;
        if (result < 0) return -EBADF;
        if (s.shut) {
            // After a shutdown a read sees the end of the stream and a poll sees a hang-up.
            const bool reads = op.kind == io_kind::recv || op.kind == io_kind::recvmsg || op.kind == io_kind::read;
            if ((reads && result == 0) || op.kind == io_kind::poll) return -EBADF;
        }
        return result;
    }

    void release(int fd) noexcept {
        fd_state& s = fds_[static_cast<std::size_t>(fd)];
        if (s.cancel_parked) --parked_fd_cancels_;
        unregister_file(fd);
        reset(s);
        // A cancel by fd still in the ring must reach the kernel while the number is ours.
        if (io_uring_sq_ready(&ring_) > 0) (void)io_uring_submit(&ring_);
        ::close(fd);
    }

    // ---- the receive pool and multishot receive ----

    // Maps and registers the pool at the first read that could use it; false (for good)
    // where the kernel refuses the ring or memory is short: reads stay plain receives.
    bool pool_ready() noexcept {
        if (CORIO_LIKELY(pool_state_ == pool_on)) return true;
        if (pool_state_ == pool_off) return false;
        pool_state_ = pool_off;
        const std::size_t ring_bytes = (pool_.count * sizeof(io_uring_buf) + 4095) & ~std::size_t{4095};
        const std::size_t mapped = ring_bytes + std::size_t{pool_.count} * pool_.size;
        void* m = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return false;
        auto* ring = static_cast<io_uring_buf_ring*>(m);
        io_uring_buf_reg reg{};
        reg.ring_addr = reinterpret_cast<__u64>(ring);
        reg.ring_entries = pool_.count;
        reg.bgid = recv_group;
        const int rc = uring_buf_ring_fault != nullptr ? -uring_buf_ring_fault() : 0;
        if (rc != 0 || io_uring_register_buf_ring(&ring_, &reg, 0) != 0) {
            ::munmap(m, mapped);
            return false;
        }
        try {
            pool_.next.assign(pool_.count, -1);
            pool_.used.assign(pool_.count, 0);
            home_ = new pool_home;
        } catch (...) {
            (void)io_uring_unregister_buf_ring(&ring_, recv_group);
            ::munmap(m, mapped);
            return false;
        }
        home_->give_back = &give_back_leased;
        home_->owner = this;
        home_->mapping = m;
        home_->mapped = mapped;
        pool_.ring = ring;
        pool_.data = static_cast<char*>(m) + ring_bytes;
        io_uring_buf_ring_init(ring);
        const int mask = io_uring_buf_ring_mask(pool_.count);
        for (unsigned b = 0; b < pool_.count; ++b)
            io_uring_buf_ring_add(ring, buffer_at(static_cast<std::int32_t>(b)), pool_.size,
                                  static_cast<unsigned short>(b), mask, static_cast<int>(b));
        io_uring_buf_ring_advance(ring, static_cast<int>(pool_.count));
        pool_.free = pool_.count;
        pool_state_ = pool_on;
        return true;
    }

    [[nodiscard]] char* buffer_at(std::int32_t b) const noexcept {
        return pool_.data + static_cast<std::size_t>(b) * pool_.size;
    }

    // A buffer read to the end goes back to the ring, for the kernel to fill again.
    void recycle(std::int32_t b) noexcept {
        io_uring_buf_ring_add(pool_.ring, buffer_at(b), pool_.size, static_cast<unsigned short>(b),
                              io_uring_buf_ring_mask(pool_.count), 0);
        io_uring_buf_ring_advance(pool_.ring, 1);
        ++pool_.free;
    }

    // The socket's queue: buffers the kernel filled (`used` bytes each), oldest first;
    // q_off bytes of the oldest are read already.
    void enqueue(fd_state& s, std::int32_t b, std::size_t used) noexcept {
        pool_.used[static_cast<std::size_t>(b)] = static_cast<std::uint32_t>(used);
        pool_.next[static_cast<std::size_t>(b)] = -1;
        if (s.q_tail >= 0)
            pool_.next[static_cast<std::size_t>(s.q_tail)] = b;
        else
            s.q_head = b;
        s.q_tail = b;
        s.q_bytes += static_cast<std::uint32_t>(used);
    }

    // Takes the oldest buffer off the queue (its unread bytes leave q_bytes).
    std::int32_t dequeue(fd_state& s) noexcept {
        const std::int32_t b = s.q_head;
        s.q_bytes -= pool_.used[static_cast<std::size_t>(b)] - s.q_off;
        s.q_head = pool_.next[static_cast<std::size_t>(b)];
        if (s.q_head < 0) s.q_tail = -1;
        s.q_off = 0;
        return b;
    }

    void drop_queue(fd_state& s) noexcept {
        while (s.q_head >= 0) recycle(dequeue(s));
    }

    // receive(): the read gets the buffer itself, from `offset` on; its lease gives it back.
    void hand_over(io_op& op, std::int32_t b, std::size_t offset) noexcept {
        op.buf = buffer_at(b) + offset;
        op.offset = b;
        ++home_->out;
    }

    void reset(fd_state& s) noexcept {
        drop_queue(s);
        drop_accepted(s);
        s = fd_state{};
    }

    // A read on a stream socket through the pool: answered now from what is queued, or
    // waiting on the socket for the multishot receive. False: a plain recv instead.
    [[gnu::always_inline]] bool read_pooled(io_op& op, std::size_t fd) noexcept {
        fd_state& s = fds_[fd];
        if (CORIO_LIKELY(s.armed && s.q_head < 0 && s.end > 0)) {  // the common case: wait for data
            wait_on(op, s);
            return true;
        }
        return read_pooled_slow(op, fd);
    }

    [[gnu::noinline]] bool read_pooled_slow(io_op& op, std::size_t fd) noexcept {
        fd_state& s = fds_[fd];
        if (s.q_head >= 0 || s.end <= 0) {
            finish(op, take(s, op));
            return true;
        }
        if (!s.armed) {
            // Keep an eighth of the pool for sockets already armed: below that, plain reads.
            if (multishot_refused_ || !pool_ready() || pool_.free <= pool_.count / 8 || parked_head_ != nullptr)
                return false;
            io_uring_sqe* sqe = take_sqe();
            if (sqe == nullptr) return false;
            fill_multishot(static_cast<int>(fd), *sqe);
            ++multishot_arms_;
            mark_armed(s);
        }
        wait_on(op, s);
        return true;
    }

    // A socket's multishot (receive or accept) is in the kernel: it counts among the
    // socket's operations until its last CQE.
    static void mark_armed(fd_state& s) noexcept {
        s.armed = true;
        s.stop_sent = false;
        ++s.ops;
    }

    static void wait_on(io_op& op, fd_state& s) noexcept {
        op.parked = park_reader;
        op.next = nullptr;
        op.prev = s.readers_tail;
        if (s.readers_tail != nullptr)
            s.readers_tail->next = &op;
        else
            s.readers = &op;
        s.readers_tail = &op;
    }

    void fill_multishot(int fd, io_uring_sqe& sqe) noexcept {
        io_uring_prep_recv_multishot(&sqe, fd, nullptr, 0, 0);
        sqe.flags |= IOSQE_BUFFER_SELECT;
        if (fds_[static_cast<std::size_t>(fd)].fixed) sqe.flags |= IOSQE_FIXED_FILE;
        sqe.buf_group = recv_group;
        if (refused(uring_request::multishot_recv)) sqe.ioprio |= 1U << 15;
        io_uring_sqe_set_data64(&sqe, multishot_data(fd));
    }

    static __u64 multishot_data(std::size_t fd) noexcept { return (static_cast<__u64>(fd) << 3) | recv_tag; }

    void unlink_reader(io_op& op) noexcept {
        fd_state& s = fds_[static_cast<std::size_t>(op.fd)];
        if (op.prev != nullptr)
            op.prev->next = op.next;
        else
            s.readers = op.next;
        if (op.next != nullptr)
            op.next->prev = op.prev;
        else
            s.readers_tail = op.prev;
        op.next = op.prev = nullptr;
        op.parked = 0;
    }

    // Copies what is queued into the read's buffer (across buffers, up to its length);
    // with nothing queued, the stream's end (0, for every read after) or its error (once).
    int take(fd_state& s, io_op& op) noexcept {
        if (op.lease && s.q_head >= 0) {  // receive(): the oldest buffer itself, no copy
            const std::size_t offset = s.q_off;
            const std::int32_t b = dequeue(s);
            hand_over(op, b, offset);
            return static_cast<int>(pool_.used[static_cast<std::size_t>(b)] - offset);
        }
        std::size_t done = 0;
        while (done < op.len && s.q_head >= 0) {
            const std::int32_t b = s.q_head;
            const std::size_t avail = pool_.used[static_cast<std::size_t>(b)] - s.q_off;
            const std::size_t n = avail < op.len - done ? avail : op.len - done;
            std::memcpy(static_cast<char*>(op.buf) + done, buffer_at(b) + s.q_off, n);
            done += n;
            if (n == avail) {
                recycle(dequeue(s));
            } else {
                s.q_off += static_cast<std::uint32_t>(n);
                s.q_bytes -= static_cast<std::uint32_t>(n);
            }
        }
        if (done > 0) return static_cast<int>(done);
        const int end = s.end;
        if (end < 0) s.end = 1;  // an error is reported once; the next read asks again
        return end;
    }

    // A multishot receive's CQE: a filled buffer queued on its socket, or its end.
    void on_received(std::size_t fd, int res, unsigned cflags) noexcept {
        fd_state& s = fds_[fd];
        // The common case: a read waits, nothing is queued, the receive stays armed. The
        // bytes go straight to the read and the buffer straight back to the ring.
        constexpr unsigned direct = IORING_CQE_F_BUFFER | IORING_CQE_F_MORE;
        if ((cflags & direct) == direct && res > 0 && s.readers != nullptr && s.q_head < 0 && !s.closing) {
            io_op& op = *s.readers;
            const auto b = static_cast<std::int32_t>(cflags >> IORING_CQE_BUFFER_SHIFT);
            const auto got = static_cast<std::size_t>(res);
            s.delivered = true;
            --pool_.free;
            unlink_reader(op);
            if (op.lease) {  // receive(): the buffer itself
                hand_over(op, b, 0);
                finish(op, res);
                return;
            }
            const std::size_t n = got < op.len ? got : op.len;
            std::memcpy(op.buf, buffer_at(b), n);
            if (n == got) {
                recycle(b);
            } else {  // the rest waits for the next read
                enqueue(s, b, got);
                s.q_off = static_cast<std::uint32_t>(n);
                s.q_bytes -= static_cast<std::uint32_t>(n);
            }
            finish(op, static_cast<int>(n));  // may start more reads on this socket
            if (fds_[fd].readers != nullptr && fds_[fd].q_head >= 0) serve_readers(fd);
            return;
        }
        if ((cflags & IORING_CQE_F_BUFFER) != 0U) {
            const auto b = static_cast<std::int32_t>(cflags >> IORING_CQE_BUFFER_SHIFT);
            --pool_.free;
            if (res > 0 && !s.closing)
                enqueue(s, b, static_cast<std::size_t>(res));
            else
                recycle(b);
        }
        const bool delivered_before = s.delivered;
        s.delivered = true;
        if ((cflags & IORING_CQE_F_MORE) == 0U) {
            s.armed = false;
            --s.ops;
            if (s.closing) {
                if (s.ops == 0) release(static_cast<int>(fd));
                return;
            }
            if (res == -EINVAL && !delivered_before) {
                multishot_refused_ = true;  // this kernel has no multishot receive (before 6.0)
                replay_readers(fd);
                return;
            }
            if (res == -ENOBUFS || (res == -ECANCELED && s.stop_sent)) {
                replay_readers(fd);  // the pool ran dry, or the socket was told to stop
                return;
            }
            if (res <= 0) s.end = res;
        }
        serve_readers(fd);
    }

    // Reads waiting on the socket take what has come.
    void serve_readers(std::size_t fd) noexcept {
        for (;;) {
            fd_state& s = fds_[fd];
            if (s.readers == nullptr) break;
            if (s.q_head < 0 && s.end > 0) {
                if (!s.armed) replay_readers(fd);  // the multishot ended with data: ask again
                return;
            }
            io_op& op = *s.readers;
            unlink_reader(op);
            finish(op, take(s, op));  // may start more reads on this socket
        }
        // Nobody is reading and the socket holds a lot: let TCP's window hold the rest.
        fd_state& s = fds_[fd];
        if (s.armed && !s.stop_sent && s.q_bytes >= 16 * pool_.size) {
            if (io_uring_sqe* sqe = take_sqe()) {
                io_uring_prep_cancel64(sqe, multishot_data(fd), 0);
                io_uring_sqe_set_data64(sqe, 0);
                s.stop_sent = true;
            }
        }
    }

    // The multishot receive (or accept) ended with ops still waiting: each goes again,
    // through a new multishot if it can have one, else as a plain recv into its own buffer
    // (or a plain accept).
    void replay_readers(std::size_t fd) noexcept {
        while (io_op* op = fds_[fd].readers) {
            unlink_reader(*op);
            const bool pooled = op->kind == io_kind::accept ? accept_pooled(*op, fd) : read_pooled(*op, fd);
            if (!pooled) {
                if (!op->lease || give_own_buffer(*op)) send(*op);
                continue;
            }
            if (op->parked == park_reader) return;  // it waits on a new multishot; so do the rest
        }
    }

    // A receive() that goes as a plain recv reads into a buffer of its own, which its
    // lease then owns (offset -1). No memory: it ends with -ENOMEM, never lost.
    bool give_own_buffer(io_op& op) noexcept {
        if (op.buf != nullptr) return true;
        op.offset = -1;
        op.buf = std::malloc(op.len);
        if (op.buf != nullptr) return true;
        finish(op, -ENOMEM);
        return false;
    }

    // ---- batched waits ----

    // io_uring_submit_and_wait_timeout with a min-wait, which liburing 2.3 cannot ask for:
    // the submission ring's tail is published here (liburing fills its index array once,
    // at setup) and io_uring_enter is given the wait's arguments itself, the min-wait in
    // the field kernels before 6.12 called pad.
    int submit_and_wait_batch(std::chrono::nanoseconds timeout) noexcept {
        io_uring_sq& sq = ring_.sq;
        const unsigned tail = sq.sqe_tail;
        const unsigned to_submit = tail - sq.sqe_head;
        if (to_submit != 0) {
            sq.sqe_head = tail;
            __atomic_store_n(sq.ktail, tail, __ATOMIC_RELEASE);
        }
        __kernel_timespec ts{};
        io_uring_getevents_arg arg{};
        arg.sigmask_sz = _NSIG / 8;
        // min_wait_usec. The kernel waits that long for a batch even past the timeout: never
        // longer than the timeout (the loop's next deadline), so no timer fires late.
        arg.pad = batch_wait_usec_;
        if (timeout.count() > 0) {
            const auto limit = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
            if (std::cmp_less(limit, arg.pad)) arg.pad = static_cast<__u32>(limit);
            ts.tv_sec = timeout.count() / 1'000'000'000;
            ts.tv_nsec = timeout.count() % 1'000'000'000;
            arg.ts = reinterpret_cast<__u64>(&ts);
        }
        const auto want = static_cast<unsigned>(in_flight_ < max_batch ? in_flight_ : max_batch);
        ++batched_waits_;
        const int rc = io_uring_enter2(static_cast<unsigned>(ring_.ring_fd), to_submit, want,
                                       IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, reinterpret_cast<sigset_t*>(&arg),
                                       sizeof arg);
        return rc;  // liburing gives -errno itself
    }

    // ---- registered files ----

    // A socket's entry in the ring's table of registered files, under its own number: the
    // kernel then skips looking the file up (and counting a reference) on each operation.
    // The entry is made by an update in the ring, and the socket's operations use it once
    // that update's CQE has come. The value the update reads lives in slot_fds_, which
    // never moves; the update runs at the next io_uring_enter, when that value is the
    // number's current socket (a number closed and reused meanwhile is the new socket's).
    void register_file(int fd) noexcept {
        if (!files_ready() || static_cast<unsigned>(fd) >= files_size_) return;
        io_uring_sqe* sqe = take_sqe();
        if (sqe == nullptr) return;  // the socket works without an entry
        slot_fds_[static_cast<std::size_t>(fd)] = fd;
        io_uring_prep_files_update(sqe, &slot_fds_[static_cast<std::size_t>(fd)], 1, fd);
        if (refused(uring_request::register_file)) sqe->len = 0;  // refused with -EINVAL
        io_uring_sqe_set_data64(sqe, (static_cast<__u64>(fd) << 3) | register_tag);
        fds_[static_cast<std::size_t>(fd)].registering = true;
    }

    void on_registered(std::size_t fd, int res) noexcept {
        if (fd >= fds_.size() || !fds_[fd].registering) return;  // closed meanwhile
        fds_[fd].registering = false;
        if (res == 1) {
            fds_[fd].fixed = true;
            ++fixed_files_;
        } else if (res == -EINVAL || res == -ENXIO) {
            files_state_ = files_off;  // this kernel will not: plain descriptors from now on
        }
    }

    // Before the number is closed: its entry goes too, or the table would keep the socket
    // open. Queued for the next io_uring_enter (which runs it before any later update of
    // the number), or made at once if the ring is full.
    void unregister_file(int fd) noexcept {
        fd_state& s = fds_[static_cast<std::size_t>(fd)];
        if (!s.fixed && !s.registering) return;
        if (s.fixed) --fixed_files_;
        s.fixed = false;
        s.registering = false;
        slot_fds_[static_cast<std::size_t>(fd)] = -1;
        if (io_uring_sqe* sqe = take_sqe()) {
            io_uring_prep_files_update(sqe, &slot_fds_[static_cast<std::size_t>(fd)], 1, fd);
            io_uring_sqe_set_data64(sqe, (static_cast<__u64>(fd) << 3) | unregister_tag);
            return;
        }
        int none = -1;
        (void)io_uring_register_files_update(&ring_, static_cast<unsigned>(fd), &none, 1);
    }

    // The table, sized by the descriptor limit (at most max_fixed_files), is made at the
    // first socket; false (for good) where the kernel refuses it.
    bool files_ready() noexcept {
        if (CORIO_LIKELY(files_state_ == files_on)) return true;
        if (files_state_ == files_off) return false;
        files_state_ = files_off;
        rlimit lim{};
        unsigned n = max_fixed_files;
        if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < n) n = static_cast<unsigned>(lim.rlim_cur);
        if (n == 0) return false;
        try {
            slot_fds_ = std::make_unique<int[]>(n);
        } catch (...) {
            return false;
        }
        if (io_uring_register_files_sparse(&ring_, n) != 0) {
            slot_fds_.reset();
            return false;
        }
        files_size_ = n;
        files_state_ = files_on;
        return true;
    }

    // ---- zero-copy send ----

    // Whether a socket's large sends go zero-copy: only to a peer on another host. A peer
    // on this one (loopback, or this host's own address) holds the sent pages in its
    // receive queue until it reads them, so the send could not end before it does.
    static bool zero_copy_to(fd_state& s, int fd) noexcept {
        if (s.zero_copy == 0) s.zero_copy = remote_peer(fd) || uring_zero_copy_local ? 1 : 2;
        return s.zero_copy == 1;
    }

    static bool remote_peer(int fd) noexcept {
        sockaddr_storage local{};
        sockaddr_storage peer{};
        socklen_t llen = sizeof local;
        socklen_t plen = sizeof peer;
        if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen) != 0 ||
            ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen) != 0 || peer.ss_family != local.ss_family)
            return false;
        if (peer.ss_family == AF_INET) {
            const auto& p = reinterpret_cast<const sockaddr_in&>(peer).sin_addr;
            const auto& l = reinterpret_cast<const sockaddr_in&>(local).sin_addr;
            return (ntohl(p.s_addr) >> 24) != 127 && p.s_addr != l.s_addr;
        }
        if (peer.ss_family == AF_INET6) {
            const auto& p = reinterpret_cast<const sockaddr_in6&>(peer).sin6_addr;
            const auto& l = reinterpret_cast<const sockaddr_in6&>(local).sin6_addr;
            const bool v4_loopback = IN6_IS_ADDR_V4MAPPED(&p) && p.s6_addr[12] == 127;
            return !IN6_IS_ADDR_LOOPBACK(&p) && !v4_loopback && std::memcmp(&p, &l, sizeof p) != 0;
        }
        return false;  // a Unix socket: the kernel has no zero-copy send for it
    }

    // ---- multishot accept ----

    // An accept through the listener's multishot accept, off the hot path; false: a plain
    // accept instead (an address asked for, flags, a kernel or listener without it).
    [[gnu::noinline]] bool accept_on_listener(io_op& op, const fd_state& s) noexcept {
        if (op.addr != nullptr || op.msg_flags != 0 || s.plain_accepts || multishot_accept_refused_ ||
            uring_nowait_fault != nullptr)
            return false;
        op.in_kernel = true;
        ++in_flight_;
        if (!accept_pooled(op, static_cast<std::size_t>(op.fd))) send(op);
        return true;
    }

    // An accept on a listener: answered now from the queue (or with the error the multishot
    // ended with), or waiting on the listener for its multishot accept. False: a plain
    // accept instead.
    bool accept_pooled(io_op& op, std::size_t fd) noexcept {
        fd_state& s = fds_[fd];
        if (s.accepted != nullptr && s.accepted->size() > 0) {
            finish(op, s.accepted->pop());
            return true;
        }
        if (s.end < 0) {  // reported once, as a plain accept would have; the next one asks again
            const int e = std::exchange(s.end, 1);
            finish(op, e);
            return true;
        }
        if (!s.armed) {
            if (multishot_accept_refused_ || s.plain_accepts || parked_head_ != nullptr) return false;
            if (s.accepted == nullptr) {
                try {
                    auto q = std::make_unique<accept_queue>();
                    q->fds.reserve(2 * accept_queue_stop);
                    s.accepted = q.release();
                } catch (...) {
                    return false;
                }
            }
            io_uring_sqe* sqe = take_sqe();
            if (sqe == nullptr) return false;
            io_uring_prep_multishot_accept(sqe, static_cast<int>(fd), nullptr, nullptr, SOCK_CLOEXEC);
            if (refused(uring_request::multishot_accept)) sqe->ioprio |= 1U << 15;
            if (s.fixed) sqe->flags |= IOSQE_FIXED_FILE;
            io_uring_sqe_set_data64(sqe, accept_data(fd));
            ++multishot_accepts_;
            mark_armed(s);
        }
        wait_on(op, s);
        return true;
    }

    static __u64 accept_data(std::size_t fd) noexcept { return (static_cast<__u64>(fd) << 3) | accept_tag; }

    // A multishot accept's CQE: a connection for the accept waiting, or for the queue; or the
    // multishot's end.
    void on_accepted(std::size_t fd, int res, unsigned cflags) noexcept {
        fd_state& s = fds_[fd];
        const bool delivered_before = s.delivered;
        if (res >= 0) {
            s.delivered = true;
            if (s.closing)
                ::close(res);  // the listener is closing: so is the connection
            else if (s.readers != nullptr)
                finish(*s.readers, res);
            else
                queue_accepted(fd, res);
            if ((cflags & IORING_CQE_F_MORE) != 0U) return;
        }
        fd_state& t = fds_[fd];
        t.armed = false;
        --t.ops;
        if (t.closing) {
            if (t.ops == 0) release(static_cast<int>(fd));
            return;
        }
        if (res == -EINVAL && !delivered_before) {
            multishot_accept_refused_ = true;  // a kernel before 5.19: plain accepts from now on
        } else if (res == -EAGAIN) {
            t.plain_accepts = true;  // a non-blocking listener the kernel will not wait on
        } else if (res < 0 && !(res == -ECANCELED && t.stop_sent)) {
            // EMFILE, ENFILE, ENOMEM...: the oldest accept waiting gets it, as it would from a
            // plain accept; with none waiting, the next accept does.
            if (t.readers != nullptr)
                finish(*t.readers, res);
            else
                t.end = res;
        }
        replay_readers(fd);  // accepts still waiting ask again (a new multishot, or plain)
    }

    void queue_accepted(std::size_t fd, int conn) noexcept {
        fd_state& s = fds_[fd];
        try {
            s.accepted->fds.push_back(conn);
        } catch (...) {
            ::close(conn);  // no memory to hold it: the peer sees the connection end
            return;
        }
        if (s.accepted->size() >= accept_queue_stop) stop_accepting(fd);
    }

    // Nobody is accepting: the kernel's backlog holds the next connections (and its limit
    // applies again).
    void stop_accepting(std::size_t fd) noexcept {
        fd_state& s = fds_[fd];
        if (!s.armed || s.stop_sent) return;
        if (io_uring_sqe* sqe = take_sqe()) {
            io_uring_prep_cancel64(sqe, accept_data(fd), 0);
            io_uring_sqe_set_data64(sqe, 0);
            s.stop_sent = true;
        }
    }

    // The connections queued on a listener being closed (or reset) are closed too.
    static void drop_accepted(fd_state& s) noexcept {
        if (s.accepted == nullptr) return;
        while (s.accepted->size() > 0) ::close(s.accepted->pop());
        delete s.accepted;
        s.accepted = nullptr;
    }

    // Reads waiting on a socket being closed end with -EBADF (unless cancelled).
    void end_readers_on(int fd) noexcept {
        while (io_op* op = fds_[static_cast<std::size_t>(fd)].readers) finish(*op, -EBADF);
    }

    // ---- completions ----

    void finish(io_op& op, int result) noexcept {
        if (op.parked == park_reader)
            unlink_reader(op);
        else if (op.parked != 0)
            unpark(op);  // its cancel was still waiting for an SQE
        op.in_kernel = false;
        --in_flight_;
        int release_fd = -1;
        if (op.counted) {
            op.counted = false;
            fd_state& s = fds_[static_cast<std::size_t>(op.fd)];
            --s.ops;
            if (CORIO_UNLIKELY(s.closing)) {
                result = closed_result(op, result, s);
                if (s.ops == 0) release_fd = op.fd;
            }
        }
        op.result = result;
        op.complete(&op);  // may resubmit op (rejected: its socket is closing) or start others
        if (release_fd >= 0 && fds_[static_cast<std::size_t>(release_fd)].closing &&
            fds_[static_cast<std::size_t>(release_fd)].ops == 0)
            release(release_fd);
    }

    // Returns whether the wakeup fired (or might have: the loop then looks at its queue).
    bool on_wakeup(int res, unsigned cflags) {
        if (res >= 0) {
            wake_failures_ = 0;
            if ((cflags & IORING_CQE_F_MORE) == 0U) arm_wakeup();  // one-shot, or multishot ended (CQ full)
            return true;
        }
        // The poll has ended with an error: never re-arm it blindly, the loop would spin.
        if (res == -EINVAL && multishot_wakeup_) {
            multishot_wakeup_ = false;  // refused only now: one-shot from here on
            arm_wakeup();
            return true;
        }
        if (++wake_failures_ <= max_wake_failures) {
            arm_wakeup();
            return true;
        }
        wake_error_ = -res;
        return true;
    }

    // One completion, told by the low three bits of its user_data: a socket's multishot
    // receive (the hot path), an op's (0, or 2 while it polls before a retry), or one of
    // the backend's own requests.
    void complete_one(__u64 data, int res, unsigned cflags, bool& woke) {
        const __u64 tag = data & 7U;
        if (tag == recv_tag) {
            on_received(static_cast<std::size_t>(data >> 3), res, cflags);
            return;
        }
        if (CORIO_LIKELY((tag == 0 && data != 0) || tag == poll_tag)) {
            complete_op(data, res, cflags);
            return;
        }
        switch (tag) {
            case wakeup_tag:
                if (data == wakeup_tag) woke = on_wakeup(res, cflags) || woke;
                return;
            case accept_tag:
                on_accepted(static_cast<std::size_t>(data >> 3), res, cflags);
                return;
            case fd_cancel_tag:
                on_fd_cancel_result(static_cast<int>(data >> 3), res);
                return;
            case register_tag:
                on_registered(static_cast<std::size_t>(data >> 3), res);
                return;
            default:
                return;  // an async cancel's own answer (0), a table entry's removal
        }
    }

    void complete_op(__u64 data, int res, unsigned cflags) noexcept {
        auto* op = reinterpret_cast<io_op*>(static_cast<std::uintptr_t>(data & ~poll_tag));
        if (CORIO_UNLIKELY((cflags & (IORING_CQE_F_MORE | IORING_CQE_F_NOTIF)) != 0U)) {
            // A zero-copy send: its result comes first, with a notification to follow once
            // the kernel has let go of the buffer; only then does the send end.
            if ((cflags & IORING_CQE_F_NOTIF) == 0U) {
                op->result = res;
                return;
            }
            res = op->result;
        }
        int result = res;
        if (CORIO_UNLIKELY((data & poll_tag) != 0)) {
            // Readiness arrived for a retry; a cancel or a close that came meanwhile wins.
            const bool closing = op->counted && fds_[static_cast<std::size_t>(op->fd)].closing;
            if (result >= 0 && !op->cancel_requested && !closing) {
                op->waiting_ready = false;
                send(*op);
                return;
            }
            if (result >= 0) result = -ECANCELED;
        } else if (CORIO_UNLIKELY(res == -EAGAIN) && op->kind != io_kind::poll) {
            const bool closing = op->counted && fds_[static_cast<std::size_t>(op->fd)].closing;
            if (op->cancel_requested) {
                result = -ECANCELED;  // it was never going to transfer: the cancel wins
            } else if (!closing) {
                // A non-blocking fd said "not now": wait for readiness, then try again.
                op->waiting_ready = true;
                send(*op);
                return;
            }
        }
        finish(*op, result);
    }

    bool reap() {
        bool woke = std::exchange(woke_early_, false);
        // One pass over the completion ring, handed back to the kernel with one advance.
        // A completion may start ops (SQEs) but never reads this ring, so the entries stay
        // valid until the advance; the tail is read anew on each step.
        for (bool fetched_overflow = false;;) {
            unsigned head = 0;
            unsigned seen = 0;
            io_uring_cqe* cqe = nullptr;
            io_uring_for_each_cqe(&ring_, head, cqe) {
                ++seen;
                complete_one(cqe->user_data, cqe->res, cqe->flags, woke);
            }
            if (seen > 0) {
                io_uring_cq_advance(&ring_, seen);
                continue;
            }
            // CQEs that found the completion ring full wait in the kernel (NODROP): fetch
            // them too, once per wait.
            if (fetched_overflow || !io_uring_cq_has_overflow(&ring_)) break;
            fetched_overflow = true;
            (void)io_uring_get_events(&ring_);
        }
        if (CORIO_UNLIKELY(wake_error_ != 0)) {
            const int e = std::exchange(wake_error_, 0);
            wake_broken_ = true;
            throw std::system_error(e, std::system_category(),
                                    "corio: io_uring backend: polling the wakeup eventfd failed " +
                                        std::to_string(max_wake_failures + 1) +
                                        " times in a row; wakes from other threads are now only seen every 10 ms");
        }
        return woke;
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

    io_uring ring_{};
    unsigned flags_ = 0;
    int wake_fd_;
    bool multishot_wakeup_ = true;
    bool wake_arm_parked_ = false;
    bool woke_early_ = false;   // the wakeup fired during start-up
    bool wake_broken_ = false;  // the wakeup poll kept failing and is no longer armed
    bool has_cancel_fd_ = true;
    unsigned wake_failures_ = 0;
    int wake_error_ = 0;
    io_op* parked_head_ = nullptr;
    io_op* parked_tail_ = nullptr;
    std::size_t parked_fd_cancels_ = 0;
    std::vector<fd_state> fds_;  // by fd number, for sockets attached (and any fd below them)
    recv_pool pool_;
    pool_home* home_ = nullptr;  // set up with the pool
    std::uint8_t pool_state_ = pool_untried;
    bool multishot_refused_ = false;  // the kernel answered a multishot receive with -EINVAL
    std::uint64_t multishot_arms_ = 0;
    bool multishot_accept_refused_ = false;  // ... and a multishot accept
    std::uint64_t multishot_accepts_ = 0;
    std::uint64_t poll_first_recvs_ = 0;
    bool has_send_zc_ = false;
    std::size_t zero_copy_min_ = ~std::size_t{0};  // sends this long or longer go zero-copy
    std::uint64_t zero_copy_sends_ = 0;
    unsigned batch_wait_usec_ = 0;  // min-wait of a batched wait; 0: none
    bool has_min_wait_ = false;
    std::uint64_t batched_waits_ = 0;
    static constexpr unsigned feat_min_timeout = 1U << 15;  // IORING_FEAT_MIN_TIMEOUT (Linux 6.12)
    static constexpr std::size_t max_batch = 64;            // completions a batched wait waits for
    std::uint8_t files_state_ = pool_untried;               // the table of registered files: untried, on, off
    static constexpr std::uint8_t files_on = pool_on, files_off = pool_off;
    unsigned files_size_ = 0;
    std::unique_ptr<int[]> slot_fds_;  // what each slot's last update reads (see register_file)
    std::size_t fixed_files_ = 0;
};

}  // namespace corio::detail

#endif  // CORIO_HAS_IO_URING
