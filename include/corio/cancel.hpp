#pragma once
// shield: protect a section from the awaiting task's cancellation. The inner work runs
// as a task of its own and always runs to its end; a cancel that arrives meanwhile is
// kept and delivered at the awaiting task's next suspension point (nothing is lost).

#include <utility>

#include <corio/detail/child_group.hpp>
#include <corio/errors.hpp>
#include <corio/task.hpp>

namespace corio {

namespace detail {

template <class T>
struct [[nodiscard]] shield_awaiter {
    fixed_children<T> children;

    explicit shield_awaiter(task<T> t) : children(std::move(t), group_policy::settle) {}

    static bool await_ready() noexcept { return false; }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        return children.group.start(h, false);
    }
    T await_resume() { return children.template promise<0>().take(); }
};

}  // namespace detail

template <class Awaitable>
auto shield(Awaitable&& a) {
    using T = detail::await_result_t<detail::task_for_t<Awaitable>>;
    return detail::shield_awaiter<T>(detail::make_task(static_cast<Awaitable&&>(a)));
}

}  // namespace corio
