#pragma once
/// @file
/// task_group: structured concurrency. with_task_group(body) runs body(group); children
/// spawned into the group may not outlive it: leaving the scope waits for all of them.
/// The first child to fail cancels its siblings and the body, and is rethrown once
/// everything has ended; a later failure (of a sibling, or of the body) is never dropped:
/// it goes to the loop's exception handler, or with group_errors::all every failure is
/// thrown together as a corio::exception_group (asyncio's and trio's ExceptionGroup).
/// Cancelling the awaiting task cancels the children too, and a cancel that came from
/// outside is never swallowed by the group: it still fires at the task's next suspension
/// point after the group has rethrown a child's failure.
///
///     co_await corio::with_task_group([&](corio::task_group& g) -> corio::task<> {
///         g.spawn(download(a));
///         g.spawn(download(b));
///         co_return;
///     });

#include <coroutine>
#include <exception>
#include <optional>
#include <type_traits>
#include <string>
#include <utility>
#include <vector>

#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/spawn.hpp>
#include <corio/task.hpp>

namespace corio {

/// What a task group throws when several of its tasks failed.
enum class group_errors : std::uint8_t {
    first,  ///< the first failure, as itself; the others go to the loop's exception handler
    all,    ///< every failure, in order, as one corio::exception_group
};

class task_group;

namespace detail {

template <class F>
auto run_task_group(F body, group_errors mode) -> task<await_result_t<std::invoke_result_t<F&, task_group&>>>;

struct task_group_core : cancel_listener {
    event_loop* loop = nullptr;
    task_node* owner = nullptr;  // the node running the body
    live_task* children = nullptr;
    std::size_t live = 0;
    struct failure {
        std::exception_ptr error;
        std::string task;  // whose (a child's name, or the body's task)
        corio::source_location where{};
    };
    std::vector<failure> errors;  // children's and the body's, in order
    std::coroutine_handle<> joiner{};
    bool body_running = true;
    bool closed = false;
    bool injected_cancel = false;  // we cancelled the body because a child failed
    bool join_suspended = false;   // the join was a suspension point
    bool had_children = false;     // its end is a checkpoint then (trio's nursery exit)

    void link(live_task* t) noexcept {
        t->group_next_ = children;
        if (children != nullptr) children->group_prev_ = t;
        children = t;
        ++live;
        had_children = true;
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
        // Inside a cancelled scope the children are cancelled level-triggered too.
        const bool sticky = owner != nullptr && owner->cancelled_sticky();
        for (live_task* t = children; t != nullptr; t = t->group_next_) t->cancel_from_owner(sticky);
    }

    // The owner was cancelled level-triggered (a cancel scope around the group): the
    // children are cancelled at once, even while the body waits in a shield.
    static void on_owner_cancelled(cancel_listener* self) noexcept {
        static_cast<task_group_core*>(self)->cancel_children();
    }

    static void on_join_cancel(void* self) noexcept {
        auto* g = static_cast<task_group_core*>(self);
        g->cancel_children();
        g->owner->arm(&on_join_cancel, g);  // a later (level-triggered) cancel reaches them too
    }
};

// NOLINTNEXTLINE(bugprone-exception-escape): the child has failed, so child.exception() cannot throw
inline std::coroutine_handle<> group_child_done(task_group_core* g, future_state_base& child,
                                                live_task& node) noexcept {
    g->unlink(&node);
    if (child.state() == future_state_base::status::failed) {
        const bool first = g->errors.empty();
        std::exception_ptr e = child.exception();  // retrieved: the group rethrows or reports it
        try {
            g->errors.push_back({e, child.task_name(), child.task_location()});
        } catch (...) {
            // Out of memory keeping a second error: report it rather than lose it.
            g->loop->report(exception_context{report_kind::unretrieved_exception, "task group: a further failure", e,
                                              child.task_name(), child.task_location()});
        }
        if (first) {
            g->cancel_children();
            if (g->body_running && g->owner != nullptr) {
                g->injected_cancel = true;
                g->owner->request_cancel();  // withdrawn (uncancel) when the group ends
            }
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
        g->join_suspended = true;
        if (g->owner != nullptr) {
            // An outer cancel, now or later, reaches the children; we still wait for them.
            if (g->owner->cancel_pending_) g->cancel_children();
            g->owner->arm(&task_group_core::on_join_cancel, g);
        }
    }
    static void await_resume() noexcept {}
};

}  // namespace detail

/// The group that with_task_group() hands its body: children spawned into it are
/// cancelled together and awaited before with_task_group returns.
/// @code
/// co_await corio::with_task_group([&](corio::task_group& g) -> corio::task<> {
///     for (auto& url : urls) g.spawn([&, url]() -> corio::task<> { co_await download(url); });
///     co_return;  // with_task_group waits here for every download
/// });
/// @endcode
class task_group {
public:
    task_group(const task_group&) = delete;
    task_group& operator=(const task_group&) = delete;

    /// Spawns a child into the group; its future may be awaited in the body.
    template <class Awaitable>
    auto spawn(Awaitable&& a, corio::source_location where = corio::source_location::current()) {
        return spawn(static_cast<Awaitable&&>(a), spawn_options{}, where);
    }
    /// As spawn(a), with options (the child's name). Throws usage_error once the group has
    /// ended.
    template <class Awaitable>
    auto spawn(Awaitable&& a, spawn_options options, corio::source_location where = corio::source_location::current()) {
        if (core_.closed) throw usage_error("corio: task_group::spawn after the group has ended");
        auto fut = core_.loop->spawn(static_cast<Awaitable&&>(a), options, where);
        using T = typename decltype(fut)::value_type;
        auto* st = static_cast<detail::spawn_state<T>*>(fut.state_ptr());
        st->group_ = &core_;
        core_.link(st);
        if (!core_.errors.empty()) st->cancel_once();  // a failing group starts no new work: it never runs
        return fut;
    }

    /// Cancels every child still running.
    void cancel() noexcept { core_.cancel_children(); }
    /// Children still running.
    [[nodiscard]] std::size_t size() const noexcept { return core_.live; }

private:
    task_group() = default;
    template <class F>
    friend auto detail::run_task_group(F body, group_errors mode)
        -> task<detail::await_result_t<std::invoke_result_t<F&, task_group&>>>;
    detail::task_group_core core_;
};

namespace detail {

template <class F>
auto run_task_group(F body, group_errors mode) -> task<await_result_t<std::invoke_result_t<F&, task_group&>>> {
    using R = await_result_t<std::invoke_result_t<F&, task_group&>>;
    task_group g;
    task_group_core& core = g.core_;
    core.loop = &event_loop::current();
    core.owner = co_await current_node_awaiter{};
    task_node* owner = core.owner;
    const std::uint32_t requests_at_start = owner != nullptr ? owner->cancel_requests_ : 0;
    core.fn = &task_group_core::on_owner_cancelled;
    if (owner != nullptr) owner->push_listener(&core);
    std::exception_ptr body_cancel;  // the body ended by a cancellation
    std::optional<non_void_t<R>> result;
    try {
        if constexpr (std::is_void_v<R>) {
            co_await body(g);
            result.emplace();
        } else {
            result.emplace(co_await body(g));
        }
    } catch (const cancelled_error&) {
        body_cancel = std::current_exception();
        core.cancel_children();
    } catch (...) {
        // An error of the body is an error of the group, unless it is a child's failure
        // the body awaited and let through (the group has it already).
        std::exception_ptr e = std::current_exception();
        bool known = false;
        for (const auto& f : core.errors) known = known || f.error == e;
        if (!known) core.errors.push_back({e, owner != nullptr ? owner->describe() : std::string(), {}});
        core.cancel_children();
    }
    core.body_running = false;
    co_await join_awaiter{&core};
    core.closed = true;
    if (owner != nullptr) owner->pop_listener(&core);
    // Withdraw the cancel we sent the body for a child's failure; any other request
    // (from outside, while the group ran) is kept.
    if (core.injected_cancel && owner != nullptr) owner->uncancel();
    const bool outside_cancel = owner != nullptr && owner->cancel_requests_ > requests_at_start;
    if (!core.errors.empty()) {
        if (outside_cancel)
            owner->cancel_pending_ = true;  // asyncio's uncancel + cancel: it fires at the next suspension point
        else if (owner != nullptr && core.injected_cancel)
            owner->clear_pending();  // ours, undelivered: it must not outlive the group
        if (mode == group_errors::all) {
            std::vector<std::exception_ptr> all;
            all.reserve(core.errors.size());
            for (auto& f : core.errors) all.push_back(f.error);
            throw exception_group(std::move(all));
        }
        for (std::size_t i = 1; i < core.errors.size(); ++i)
            core.loop->report(exception_context{report_kind::unretrieved_exception,
                                                "task group: a further failure (the first was rethrown)",
                                                core.errors[i].error, core.errors[i].task, core.errors[i].where});
        std::rethrow_exception(core.errors.front().error);
    }
    if (body_cancel) std::rethrow_exception(body_cancel);
    // A group that had children ends at a cancellation point (trio's nursery exit): a
    // cancel pending now is delivered here. An empty group is not one: the cancel stays
    // pending for the next suspension point.
    if ((core.join_suspended || core.had_children) && owner != nullptr && owner->cancel_pending_)
        throw_cancelled(owner);
    if constexpr (!std::is_void_v<R>) co_return std::move(*result);
}

}  // namespace detail

/// Runs body(group) and waits for every child spawned into the group. The first failure
/// is rethrown as itself; later ones go to the loop's exception handler.
template <class F>
auto with_task_group(F body) -> task<detail::await_result_t<std::invoke_result_t<F&, task_group&>>> {
    return detail::run_task_group(std::move(body), group_errors::first);
}

/// The same; with group_errors::all every failure is thrown together as an exception_group.
template <class F>
auto with_task_group(F body, group_errors mode) -> task<detail::await_result_t<std::invoke_result_t<F&, task_group&>>> {
    return detail::run_task_group(std::move(body), mode);
}

}  // namespace corio
