#pragma once
/// @file
/// corio::event (asyncio.Event): set() wakes every waiter, and wait() on a set event
/// completes at once, until clear().

#include <coroutine>

#include <corio/detail/waiter_list.hpp>

namespace corio {

/// A flag that tasks of one loop can wait for (asyncio.Event).
/// @code
/// corio::event ready;
/// corio::task<> consumer() {
///     co_await ready.wait();  // suspends until some task calls ready.set()
/// }
/// @endcode
class event {
public:
    event() = default;
    event(const event&) = delete;
    event& operator=(const event&) = delete;

    /// What wait() returns. A cancellation point: cancelled while waiting, it throws
    /// cancelled_error.
    class [[nodiscard]] awaiter : detail::sync_waiter {
    public:
        /// @cond CORIO_INTERNAL
        explicit awaiter(event& e) noexcept : event_(&e) {}
        [[nodiscard]] bool await_ready() const noexcept { return event_->set_; }
        template <class Promise>
        bool await_suspend(std::coroutine_handle<Promise> h) {
            return enqueue(event_->waiters_, h);
        }
        void await_resume() const { wait.throw_if_cancelled(); }
        /// @endcond

    private:
        event* event_;
    };

    /// Completes once the event is set (at once if it is).
    awaiter wait() noexcept { return awaiter(*this); }

    /// Sets the event and wakes every waiter, in the order they came.
    void set() noexcept {
        set_ = true;
        waiters_.wake_all();
    }
    /// Resets the event: later wait()s suspend until the next set().
    void clear() noexcept { set_ = false; }
    /// True between set() and clear().
    [[nodiscard]] bool is_set() const noexcept { return set_; }

private:
    detail::waiter_list waiters_;
    bool set_ = false;
};

}  // namespace corio
