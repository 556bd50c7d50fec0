#pragma once
// What every corio awaiter that waits on something does around its wait: find the loop
// and the awaiting task's node, deliver a pending cancel instead of suspending, install
// the cancel hook, and later resume the task through the loop (never inline).

#include <coroutine>
#include <type_traits>

#include <corio/detail/task_node.hpp>
#include <corio/task.hpp>

namespace corio {
class event_loop;
}

namespace corio::detail {

// Declared before event_loop.hpp is included: future.hpp (which event_loop.hpp pulls in
// at its end) embeds a suspension in every future waiter.
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

#include <corio/event_loop.hpp>

namespace corio::detail {

template <class Promise>
bool suspension::begin(std::coroutine_handle<Promise> h) {
    return begin(h, event_loop::current());
}

template <class Promise>
bool suspension::begin(std::coroutine_handle<Promise> h, event_loop& on) noexcept {
    loop = &on;
    if constexpr (std::is_base_of_v<promise_base, Promise>) node = h.promise().node_;
    if (node != nullptr && node->take_pending_cancel()) {
        cancelled = true;
        return false;
    }
    handle = h;
    return true;
}

inline void suspension::wake(const void* ctx) const {
    if (node != nullptr) node->disarm(ctx);
    loop->schedule(handle, node);
}

inline void suspension::wake_cancelled() {
    cancelled = true;
    loop->schedule(handle, node);
}

}  // namespace corio::detail
