#pragma once
// What every corio awaiter that waits on something does around its wait: find the loop
// and the awaiting task's node, deliver a pending cancel instead of suspending, install
// the cancel hook, and later resume the task through the loop (never inline).

#include <coroutine>
#include <type_traits>

#include <corio/detail/suspension_type.hpp>
#include <corio/detail/task_node.hpp>
#include <corio/task.hpp>

#include <corio/event_loop.hpp>

namespace corio::detail {

template <class Promise>
bool suspension::begin(std::coroutine_handle<Promise> h) {
    return begin(h, event_loop::current());
}

template <class Promise>
void suspension::bind(std::coroutine_handle<Promise> h, event_loop& on) noexcept {
    loop = &on;
    if constexpr (std::is_base_of_v<promise_base, Promise>) node = h.promise().node_;
    handle = h;
}

template <class Promise>
bool suspension::begin(std::coroutine_handle<Promise> h, event_loop& on) noexcept {
    bind(h, on);
    if (node != nullptr && node->take_pending_cancel()) {
        cancelled = true;
        handle = {};  // not suspended
        return false;
    }
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
