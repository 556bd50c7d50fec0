#pragma once
/// @file
/// spawn: run an awaitable as a task of its own on the current loop (asyncio
/// create_task). The loop holds the task until it ends; the future shares its result.

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/task.hpp>

namespace corio {

namespace detail {

struct task_group_core;  // task_group.hpp
// NOLINTNEXTLINE(bugprone-exception-escape): the child has failed, so child.exception() cannot throw
std::coroutine_handle<> group_child_done(task_group_core* g, future_state_base& child, live_task& node) noexcept;

template <class T>
class spawn_state final : public future_state<T>, public live_task {
public:
    spawn_state(event_loop& loop, task<T> t, std::string_view name, corio::source_location where)
        : future_state<T>(&loop), task_(std::move(t)) {
        id_ = loop.next_task_id();
        is_task_ = true;
        if (!name.empty()) name_ = std::make_unique<const std::string>(name);  // most tasks have none
        where_ = where;
        on_finish_ = &on_finish;
        auto& p = task_.handle().promise();
        p.node_ = this;
        p.continuation_ = {};
        this->add_ref();  // the loop's reference, dropped when the task ends
        loop.link_live(this);
        // The first step runs from the ready queue, like asyncio's create_task.
        loop.schedule(detail::work_item{&start, static_cast<live_task*>(this), this});
    }

    bool cancel() noexcept override { return this->request_cancel(); }

    live_task* as_task() noexcept override { return this; }

    void abandon_task() noexcept override {
        // The loop dies before this task ever ran: drop the frame, end cancelled.
        finished_ = true;
        event_loop* loop = this->loop();
        loop->unlink_live(this);
        task_ = task<T>();
        future_state_base::cancel();
        this->release();
    }

    [[nodiscard]] std::string task_name() const override { return describe(); }

    // Spawned states are made and dropped as often as frames: same cache.
    static void* operator new(std::size_t n) { return allocate_frame(n); }
    static void operator delete(void* p, std::size_t n) noexcept { deallocate_frame(p, n); }
    [[nodiscard]] corio::source_location task_location() const override { return where_; }

    task_group_core* group_ = nullptr;

private:
    static void start(void* self) noexcept {
        auto* me = static_cast<spawn_state*>(static_cast<live_task*>(self));
        me->started_ = true;
        if (me->cancel_pending_) {
            // Cancelled before its first step: the body never runs (asyncio), the task ends
            // cancelled. The frame sits at its initial suspend, so it can go at once.
            me->finished_ = true;
            me->task_ = task<T>();
            me->future_state_base::cancel();
            me->end().resume();  // a group's joiner, if this was its last child (else a no-op)
            return;
        }
        me->task_.handle().resume();
    }

    static std::coroutine_handle<> on_finish(task_node* n) noexcept {
        auto* self = static_cast<spawn_state*>(n);
        self->finished_ = true;
        auto& p = self->task_.handle().promise();
        if (p.exception_) {
            if (p.ended_cancelled())
                self->future_state_base::cancel();  // a task that let cancelled_error out ends cancelled
            else
                self->set_exception(p.exception_);  // a failure is never hidden by a cancel
        } else if (self->cancel_pending_) {
            // It returned with a cancel not yet delivered: it ends cancelled (asyncio's
            // cancel-at-end), its value discarded. Waits that hand a value over (queue pop,
            // semaphore, mutex) give it back instead when the cancel beat the resumption,
            // so what is dropped here is only what the task itself returns.
            self->future_state_base::cancel();
        } else {
            try {
                if constexpr (std::is_void_v<T>)
                    self->set_value();
                else
                    self->set_value(p.take());
            } catch (...) {
                self->set_exception(std::current_exception());
            }
        }
        // The frame is still executing its final suspend: destroy it once the step unwinds.
        self->loop()->defer_destroy(self->task_.release());
        return self->end();
    }

    // The task has ended (its future is complete): leave the loop's list and the group,
    // drop the loop's reference. Returns what to resume (a group's joiner, or nothing).
    std::coroutine_handle<> end() noexcept {
        this->loop()->unlink_live(this);
        std::coroutine_handle<> next = std::noop_coroutine();
        if (group_ != nullptr) next = group_child_done(group_, *this, *this);
        this->release();
        return next;
    }

    task<T> task_;
};

}  // namespace detail

template <class Awaitable>
auto event_loop::spawn(Awaitable&& awaitable, spawn_options options, corio::source_location where)
    -> future<detail::await_result_t<detail::task_for_t<Awaitable>>> {
    using T = detail::await_result_t<detail::task_for_t<Awaitable>>;
    auto t = detail::make_task(static_cast<Awaitable&&>(awaitable));
    if (CORIO_UNLIKELY(t.handle().promise().borrowed_closure_) && (options_.debug || detail::debug_build))
        report({report_kind::borrowed_closure,
                "spawn: the task is a lambda coroutine whose captures live in the lambda object, outside "
                "the task; a temporary lambda dies at the end of the statement while the task still runs. "
                "Pass the lambda itself: spawn([&]() -> task<> { ... }) keeps it alive with the task",
                nullptr, std::string(options.name), where});
    auto* st = new detail::spawn_state<T>(*this, std::move(t), options.name, where);
    return future<T>(st);
}

/// spawn on the loop running on this thread.
///
/// The task starts at the caller's next suspension and runs concurrently with it; the loop
/// keeps it alive until it ends, whether or not the future is kept. The options name it.
/// @code
/// corio::future<int> f = corio::spawn(fetch(3), {.name = "fetch-3"});
/// int c = co_await corio::wait_for(std::move(f), std::chrono::seconds(1));
/// @endcode
template <class Awaitable>
auto spawn(Awaitable&& awaitable, spawn_options options,
           corio::source_location where = corio::source_location::current()) {
    return event_loop::current().spawn(static_cast<Awaitable&&>(awaitable), options, where);
}
/// spawn without options: an unnamed task.
template <class Awaitable>
auto spawn(Awaitable&& awaitable, corio::source_location where = corio::source_location::current()) {
    return event_loop::current().spawn(static_cast<Awaitable&&>(awaitable), spawn_options{}, where);
}

}  // namespace corio

#include <corio/task_group.hpp>
