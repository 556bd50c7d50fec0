#pragma once
// The state every waiting awaiter keeps (see suspension.hpp for what it does). Declared
// apart from its definitions, which need the whole event_loop: future.hpp (pulled in at
// the end of event_loop.hpp) embeds waiters that hold one.

#include <coroutine>
#include <type_traits>

#include <corio/detail/task_node.hpp>
#include <corio/task.hpp>

namespace corio {
class event_loop;
}

namespace corio::detail {

struct suspension {
    event_loop* loop = nullptr;
    task_node* node = nullptr;  // null when awaited from a coroutine that is not corio's
    std::coroutine_handle<> handle{};
    bool cancelled = false;  // the wait ended by cancellation

    /// The start of await_suspend. False: a pending cancel is delivered now (don't suspend).
    template <class Promise>
    bool begin(std::coroutine_handle<Promise> h);
    /// The same, on a loop the caller has already looked up.
    template <class Promise>
    bool begin(std::coroutine_handle<Promise> h, event_loop& on) noexcept;
    /// Records the loop, the task's node and the handle, leaving a pending cancel pending
    /// (for an awaiter that hands it on to the work it awaits).
    template <class Promise>
    void bind(std::coroutine_handle<Promise> h, event_loop& on) noexcept;

    /// Once the wait is registered: a cancel of the task now calls fn(ctx).
    void arm(void (*fn)(void*) noexcept, void* ctx) const noexcept {
        if (node != nullptr) node->arm(fn, ctx);
    }

    /// The wait is over: resume the task on the loop.
    void wake(const void* ctx) const;

    /// The hook ended the wait (the node has already dropped the hook).
    void wake_cancelled();

    /// In await_resume: delivers the cancellation that ended the wait.
    void throw_if_cancelled() const {
        if (cancelled) throw_cancelled(node);
    }
};

}  // namespace corio::detail
