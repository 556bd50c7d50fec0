#pragma once
// The awaiter every I/O operation is built on: the io_op lives here, in the awaiting
// frame. Cancelling the task asks the backend to cancel the op; the task resumes only
// when the backend reports the op complete (for io_uring: its own CQE has arrived),
// so the kernel no longer holds the op's buffers.

#include <cerrno>
#include <coroutine>
#include <string>
#include <system_error>

#include <corio/backend/backend.hpp>
#include <corio/detail/suspension.hpp>
#include <corio/detail/task_node.hpp>
#include <corio/event_loop.hpp>

namespace corio::detail {

class io_awaiter : protected io_op {
public:
    explicit io_awaiter(const char* what) noexcept : what_(what) { complete = &on_complete; }
    io_awaiter(const io_awaiter& o) noexcept : io_op(static_cast<const io_op&>(o)), what_(o.what_) {
        CORIO_ASSERT(!o.in_kernel);
    }
    io_awaiter& operator=(const io_awaiter&) = delete;

    static bool await_ready() noexcept { return false; }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        if (!wait_.begin(h)) return false;
        wait_.loop->io().submit(*this);
        if (finished_) return false;  // the syscall completed at once (epoll backend)
        suspended_ = true;
        wait_.arm(&on_cancel, this);
        return true;
    }

    /// The op's result (>= 0); throws cancelled_error or std::system_error naming the op.
    int result_or_throw() const {
        wait_.throw_if_cancelled();
        if (result < 0) {
            if (result == -ECANCELED && cancel_sent_) throw_cancelled(wait_.node);
            throw std::system_error(-result, std::system_category(), std::string("corio: ") + what_);
        }
        return result;
    }

private:
    static void on_complete(io_op* op) noexcept {
        auto* me = static_cast<io_awaiter*>(op);
        me->finished_ = true;
        if (me->suspended_) me->wait_.wake(me);
    }

    static void on_cancel(void* self) noexcept {
        auto* me = static_cast<io_awaiter*>(self);
        me->cancel_sent_ = true;
        me->wait_.loop->io().cancel(*me);
    }

    const char* what_;
    suspension wait_;
    bool suspended_ = false;
    bool finished_ = false;
    bool cancel_sent_ = false;
};

}  // namespace corio::detail
