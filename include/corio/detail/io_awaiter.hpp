#pragma once
// The awaiter every I/O operation is built on: the io_op lives here, in the awaiting
// frame. Cancelling the task asks the backend to cancel the op; the task resumes only
// when the backend reports the op complete (for io_uring: its own CQE has arrived),
// so the kernel no longer holds the op's buffers.
//
// In "exact" mode (read_exact, write_all) a short transfer is continued from the
// completion itself, without resuming the coroutine: the op is resubmitted for the rest
// of the buffer until it is all done, the stream ends (0), or an error or cancel comes.
//
// A deadline (wait_for on an I/O awaitable: io_deadline_awaiter) is a timer entry in the
// same frame: armed when the op goes to the backend, removed when it completes, and when
// it fires the op is cancelled as an outside cancel would, but ends in timeout_error. No
// task, no allocation: the same answers as wait_for over a task (a result that beat the
// timeout is returned; an outside cancel still ends the task cancelled; an expired
// deadline times out before the op starts).

#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>

#include <corio/backend/backend.hpp>
#include <corio/detail/suspension.hpp>
#include <corio/detail/task_node.hpp>
#include <corio/detail/timer_heap.hpp>
#include <corio/errors.hpp>
#include <corio/event_loop.hpp>

namespace corio::detail {

class io_awaiter;

/// An I/O operation's deadline: lives in the awaiting frame beside the op.
struct io_deadline : timer_entry {
    io_awaiter* op = nullptr;
};

class io_awaiter : protected io_op {
public:
    explicit io_awaiter(const char* what) noexcept : what_(what) { complete = &on_complete; }
    io_awaiter(const io_awaiter& o) noexcept : io_op(static_cast<const io_op&>(o)), what_(o.what_), exact_(o.exact_) {
        CORIO_ASSERT(!o.in_kernel);
    }
    io_awaiter& operator=(const io_awaiter&) = delete;

    static bool await_ready() noexcept { return false; }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        if (!wait_.begin(h)) return false;
        if (CORIO_UNLIKELY(deadline_ != nullptr) && deadline_->deadline == clock::time_point::min()) {
            timed_out_ = true;  // expired before the op started: it never does
            result = -ECANCELED;
            return false;
        }
        wait_.loop->submit_io(*this);
        if (finished_) return false;  // the syscall completed at once (epoll backend)
        suspended_ = true;
        wait_.arm(&on_cancel, this);
        if (CORIO_UNLIKELY(deadline_ != nullptr)) wait_.loop->add_timer(*deadline_);
        return true;
    }

    /// Names what the op works on in its error messages (a path); must outlive the op.
    void set_subject(const char* subject) noexcept { subject_ = subject; }

    /// The op's result (>= 0); throws cancelled_error or std::system_error naming the op.
    int result_or_throw() const {
        throw_if_failed();
        return result;
    }

protected:
    /// Gives the op a deadline `timeout` from now (<= 0: expired); before await_suspend.
    void set_deadline(io_deadline& t, std::chrono::nanoseconds timeout) noexcept {
        t.deadline = timeout.count() <= 0 ? clock::time_point::min() : deadline_after(timeout);
        t.fire = &on_deadline;
        t.op = this;
        deadline_ = &t;
    }
    /// The frame goes away with the deadline armed (its loop is tearing down).
    void drop_deadline() noexcept {
        if (deadline_ != nullptr && deadline_->armed()) wait_.loop->remove_timer(*deadline_);
    }
    [[nodiscard]] bool timed_out() const noexcept { return timed_out_; }

    /// Continue short transfers until len bytes are done (see the file comment).
    void set_exact() noexcept { exact_ = true; }
    /// Exact mode: the bytes transferred, over every resubmission.
    [[nodiscard]] std::size_t transferred() const noexcept { return done_; }
    [[nodiscard]] bool exact() const noexcept { return exact_; }
    [[nodiscard]] const char* what() const noexcept { return what_; }
    [[nodiscard]] bool cancel_was_sent() const noexcept { return cancel_sent_; }
    [[noreturn]] void throw_cancelled_now() const { throw_cancelled(wait_.node); }

    void throw_if_failed() const {
        if (CORIO_LIKELY(result >= 0 && !wait_.cancelled)) return;  // the common path, inline
        fail();
    }

    // Cancelled, timed out or failed: out of line, off the common path.
    [[noreturn]] void fail() const {
        wait_.throw_if_cancelled();
        // (A cancelled op that met EAGAIN comes here as ECANCELED: the backend decides.)
        if (result == -ECANCELED && cancel_sent_) throw_cancelled(wait_.node);
        if (result == -ECANCELED && timed_out_) throw timeout_error();
        std::string msg = std::string("corio: ") + what_;
        if (subject_ != nullptr) msg += std::string(" '") + subject_ + "'";
        // A socket op meets EBADF when its socket was closed before or while it ran
        // (the backends end pending ones so), or was never open.
        if (result == -EBADF && on_socket()) msg += fd < 0 ? ": the socket is not open" : ": the socket was closed";
        throw std::system_error(-result, std::system_category(), msg);
    }

    [[nodiscard]] bool on_socket() const noexcept {
        switch (kind) {
            case io_kind::recv:
            case io_kind::send:
            case io_kind::recvmsg:
            case io_kind::sendmsg:
            case io_kind::accept:
            case io_kind::connect:
                return true;
            default:
                return false;
        }
    }

private:
    static void on_complete(io_op* op) noexcept {
        auto* me = static_cast<io_awaiter*>(op);
        if (me->exact_ && me->result > 0) {
            const auto n = static_cast<std::size_t>(me->result);
            me->done_ += n;
            if (n < me->len && !me->cancel_sent_ && !me->timed_out_) {
                me->buf = static_cast<char*>(me->buf) + n;
                me->len -= n;
                if (me->offset >= 0) me->offset += static_cast<std::int64_t>(n);
                // io_uring's submit never throws; epoll's can only run out of memory
                // growing its fd table. Either way the op ends here, never lost.
                try {
                    me->wait_.loop->submit_io(*me);
                    return;
                } catch (const std::system_error& e) {
                    me->result = e.code().value() > 0 ? -e.code().value() : -ENOMEM;
                } catch (...) {
                    me->result = -ENOMEM;
                }
            }
        }
        me->finished_ = true;
        if (CORIO_UNLIKELY(me->deadline_ != nullptr)) me->drop_deadline();
        if (me->suspended_) me->wait_.wake(me);
    }

    static void on_deadline(timer_entry* e) noexcept {
        io_awaiter* me = static_cast<io_deadline*>(e)->op;
        me->timed_out_ = true;
        me->wait_.loop->io().cancel(*me);
    }

    static void on_cancel(void* self) noexcept {
        auto* me = static_cast<io_awaiter*>(self);
        me->cancel_sent_ = true;
        me->wait_.loop->io().cancel(*me);
    }

    const char* what_;
    const char* subject_ = nullptr;
    io_deadline* deadline_ = nullptr;
    suspension wait_;
    bool suspended_ = false;
    bool finished_ = false;
    bool cancel_sent_ = false;
    bool exact_ = false;
    bool timed_out_ = false;
    std::size_t done_ = 0;
};

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
        if (timed_out()) throw timeout_error();        // ... or the deadline
        throw std::system_error(io_errc::end_of_stream, std::string("corio: ") + what() + ": the stream ended after " +
                                                            std::to_string(transferred()) + " of " +
                                                            std::to_string(total_) + " bytes");
    }
};

/// wait_for on an I/O awaitable (see the file comment): the op and its deadline in one
/// awaiter, in the awaiting frame.
template <class A>
class [[nodiscard]] io_deadline_awaiter : public A {
public:
    io_deadline_awaiter(A&& a, std::chrono::nanoseconds timeout) noexcept : A(std::move(a)), timeout_(timeout) {}
    io_deadline_awaiter(io_deadline_awaiter&& o) noexcept : A(std::move(o)), timeout_(o.timeout_) {
        CORIO_ASSERT(!o.timer_.armed());
    }
    io_deadline_awaiter& operator=(io_deadline_awaiter&&) = delete;
    ~io_deadline_awaiter() { this->drop_deadline(); }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        this->set_deadline(timer_, timeout_);
        return A::await_suspend(h);
    }

private:
    io_deadline timer_;
    std::chrono::nanoseconds timeout_;
};

}  // namespace corio::detail
