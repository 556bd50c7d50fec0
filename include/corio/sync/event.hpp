#pragma once
// corio::event (asyncio.Event): set() wakes every waiter, and wait() on a set event
// completes at once, until clear().

#include <coroutine>

#include <corio/detail/waiter_list.hpp>

namespace corio {

class event {
public:
    event() = default;
    event(const event&) = delete;
    event& operator=(const event&) = delete;

    class [[nodiscard]] awaiter : detail::sync_waiter {
    public:
        explicit awaiter(event& e) noexcept : event_(&e) {}
        [[nodiscard]] bool await_ready() const noexcept { return event_->set_; }
        template <class Promise>
        bool await_suspend(std::coroutine_handle<Promise> h) {
            return enqueue(event_->waiters_, h);
        }
        void await_resume() const { wait.throw_if_cancelled(); }

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
    void clear() noexcept { set_ = false; }
    [[nodiscard]] bool is_set() const noexcept { return set_; }

private:
    detail::waiter_list waiters_;
    bool set_ = false;
};

}  // namespace corio
