#pragma once
// task_group: structured concurrency. with_task_group(body) runs body(group); children
// spawned into the group may not outlive it: leaving the scope waits for all of them.
// The first child to fail cancels its siblings and the body, and is rethrown once
// everything has ended. Cancelling the awaiting task cancels the children too.
//
//     co_await corio::with_task_group([&](corio::task_group& g) -> corio::task<> {
//         g.spawn(download(a));
//         g.spawn(download(b));
//         co_return;
//     });

#include <coroutine>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/spawn.hpp>
#include <corio/task.hpp>

namespace corio {

namespace detail {

struct task_group_core {
    event_loop* loop = nullptr;
    task_node* owner = nullptr;  // the node running the body
    live_task* children = nullptr;
    std::size_t live = 0;
    std::exception_ptr first_error;
    std::coroutine_handle<> joiner{};
    bool body_running = true;
    bool closed = false;
    bool injected_cancel = false;  // we cancelled the body because a child failed

    void link(live_task* t) noexcept {
        t->group_next_ = children;
        if (children != nullptr) children->group_prev_ = t;
        children = t;
        ++live;
    }
    void unlink(live_task* t) noexcept {
        if (t->group_prev_ != nullptr)
            t->group_prev_->group_next_ = t->group_next_;
        else
            children = t->group_next_;
        if (t->group_next_ != nullptr) t->group_next_->group_prev_ = t->group_prev_;
        t->group_prev_ = t->group_next_ = nullptr;
        --live;
    }
    void cancel_children() noexcept {
        for (live_task* t = children; t != nullptr; t = t->group_next_) t->cancel_once();
    }

    static void on_join_cancel(void* self) noexcept { static_cast<task_group_core*>(self)->cancel_children(); }
};

inline std::coroutine_handle<> group_child_done(task_group_core* g, future_state_base& child,
                                                live_task& node) noexcept {
    g->unlink(&node);
    if (child.state() == future_state_base::status::failed && !g->first_error) {
        g->first_error = child.exception();  // retrieved: the group rethrows it
        g->cancel_children();
        if (g->body_running && g->owner != nullptr && !g->owner->cancel_pending_) {
            g->injected_cancel = true;
            g->owner->request_cancel();
        }
    }
    if (g->live == 0 && g->joiner) {
        if (g->owner != nullptr) g->owner->disarm(g);
        return std::exchange(g->joiner, {});
    }
    return std::noop_coroutine();
}

struct current_node_awaiter {
    task_node* node = nullptr;
    static bool await_ready() noexcept { return false; }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
        if constexpr (std::is_base_of_v<promise_base, Promise>) node = h.promise().node_;
        return false;
    }
    [[nodiscard]] task_node* await_resume() const noexcept { return node; }
};

struct join_awaiter {
    task_group_core* g;
    [[nodiscard]] bool await_ready() const noexcept { return g->live == 0; }
    void await_suspend(std::coroutine_handle<> h) noexcept {
        g->joiner = h;
        if (g->owner != nullptr) {
            // An outer cancel, now or later, reaches the children; we still wait for them.
            if (g->owner->cancel_pending_) g->cancel_children();
            g->owner->arm(&task_group_core::on_join_cancel, g);
        }
    }
    static void await_resume() noexcept {}
};

}  // namespace detail

class task_group {
public:
    task_group(const task_group&) = delete;
    task_group& operator=(const task_group&) = delete;

    /// Spawns a child into the group; its future may be awaited in the body.
    template <class Awaitable>
    auto spawn(Awaitable&& a, corio::source_location where = corio::source_location::current()) {
        return spawn(static_cast<Awaitable&&>(a), spawn_options{}, where);
    }
    template <class Awaitable>
    auto spawn(Awaitable&& a, spawn_options options, corio::source_location where = corio::source_location::current()) {
        if (core_.closed) throw usage_error("corio: task_group::spawn after the group has ended");
        auto fut = core_.loop->spawn(static_cast<Awaitable&&>(a), options, where);
        using T = typename decltype(fut)::value_type;
        auto* st = static_cast<detail::spawn_state<T>*>(fut.state_ptr());
        st->group_ = &core_;
        core_.link(st);
        if (core_.first_error) st->cancel_once();  // a failing group starts no new work
        return fut;
    }

    /// Cancels every child still running.
    void cancel() noexcept { core_.cancel_children(); }
    /// Children still running.
    [[nodiscard]] std::size_t size() const noexcept { return core_.live; }

private:
    task_group() = default;
    template <class F>
    friend auto with_task_group(F body) -> task<detail::await_result_t<std::invoke_result_t<F&, task_group&>>>;
    detail::task_group_core core_;
};

template <class F>
auto with_task_group(F body) -> task<detail::await_result_t<std::invoke_result_t<F&, task_group&>>> {
    using R = detail::await_result_t<std::invoke_result_t<F&, task_group&>>;
    task_group g;
    g.core_.loop = &event_loop::current();
    g.core_.owner = co_await detail::current_node_awaiter{};
    std::exception_ptr body_error;
    std::optional<detail::non_void_t<R>> result;
    try {
        if constexpr (std::is_void_v<R>) {
            co_await body(g);
            result.emplace();
        } else {
            result.emplace(co_await body(g));
        }
    } catch (...) {
        body_error = std::current_exception();
        g.core_.cancel_children();
    }
    g.core_.body_running = false;
    co_await detail::join_awaiter{&g.core_};
    g.core_.closed = true;
    detail::task_node* owner = g.core_.owner;
    if (g.core_.first_error) {
        // The cancel we sent the body for this failure must not outlive the group.
        if (g.core_.injected_cancel && owner != nullptr) owner->cancel_pending_ = false;
        std::rethrow_exception(g.core_.first_error);
    }
    if (body_error) std::rethrow_exception(body_error);
    if (owner != nullptr && owner->cancel_pending_) detail::throw_cancelled(owner);
    if constexpr (!std::is_void_v<R>) co_return std::move(*result);
}

}  // namespace corio
