#pragma once
// The machinery under gather, gather_settled, when_any, wait_for and shield: children
// started on nodes of their own, a count that resumes the parent when the last one
// ends (by symmetric transfer from that child's final suspend), a parent hook that
// cancels the children, and a policy for what one child's end does to the others.

#include <array>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

#include <corio/detail/task_node.hpp>
#include <corio/detail/timer_wheel.hpp>
#include <corio/event_loop.hpp>
#include <corio/task.hpp>

namespace corio::detail {

struct child_group;

struct child_slot : task_node {
    child_group* group = nullptr;
    promise_base* promise = nullptr;
    std::coroutine_handle<> handle{};
    std::size_t index = 0;

    [[nodiscard]] bool failed() const noexcept { return promise->exception_ != nullptr; }
};

enum class group_policy : std::uint8_t {
    settle,     // every child runs to its end
    fail_fast,  // the first failure cancels the others
    first,      // the first to end cancels the others
};

struct child_group {
    static constexpr std::size_t npos = ~std::size_t{0};

    child_slot* slots = nullptr;
    std::size_t count = 0;
    group_policy policy = group_policy::settle;
    task_node* parent_node = nullptr;
    std::coroutine_handle<> parent{};
    std::size_t remaining = 0;
    std::size_t first_failed = npos;
    std::size_t first_done = npos;
    bool parent_cancelled = false;
    timer_entry* timer = nullptr;  // wait_for's deadline, removed when the children end
    event_loop* loop = nullptr;

    template <class Promise>
    void bind(child_slot& slot, std::coroutine_handle<Promise> h, std::size_t index) noexcept {
        slot.group = this;
        slot.promise = &h.promise();
        slot.handle = h;
        slot.index = index;
        slot.on_finish_ = &child_finished;
        h.promise().node_ = &slot;
        h.promise().continuation_ = {};
    }

    /// Starts every child. Returns true when the parent must stay suspended.
    /// `cancellable`: the parent's cancel reaches the children (false for shield).
    ///
    /// A cancel already pending on the parent does not stop the children from starting:
    /// they start cancelled, so each one's first suspension point throws, and a child
    /// that awaits existing work (a future) cancels that work and waits for it. Nothing
    /// the combinator was given is left running behind the caller's back.
    template <class Promise>
    bool start(std::coroutine_handle<Promise> h, bool cancellable) {
        loop = &event_loop::current();
        parent = h;
        if constexpr (std::is_base_of_v<promise_base, Promise>) parent_node = h.promise().node_;
        for (std::size_t i = 0; i < count; ++i) slots[i].parent_ = parent_node;
        remaining = count + 1;  // +1: no child may resume the parent while we are starting them
        if (cancellable && parent_node != nullptr) {
            if (parent_node->cancel_pending_) {
                parent_cancelled = true;
                cancel_others(npos, parent_node->cancelled_sticky());
            }
            parent_node->arm(&on_parent_cancel, this);
        }
        for (std::size_t i = 0; i < count; ++i) slots[i].handle.resume();
        if (--remaining == 0) {
            finished();
            return false;
        }
        return true;
    }

    void cancel_others(std::size_t except, bool sticky = false) noexcept {
        for (std::size_t i = 0; i < count; ++i)
            if (i != except) slots[i].cancel_from_owner(sticky);
    }

    /// Rethrows a child's failure; a cancellation caused by the parent's own cancel is
    /// delivered as the parent's (its pending request is consumed).
    [[noreturn]] void rethrow(const promise_base& child) const {
        if (parent_cancelled && child.ended_cancelled()) throw_cancelled(parent_node);
        std::rethrow_exception(child.exception_);
    }

    /// Reports every real failure but child `which`'s, then rethrows that one's if it failed.
    void rethrow_reporting_others(std::size_t which, const char* what) const {
        report_other_failures(which, what);
        if (slots[which].failed()) rethrow(*slots[which].promise);
    }

    /// The parent was cancelled and the outcomes are not returned: their real failures
    /// are reported, and the parent's cancel is delivered.
    [[noreturn]] void throw_parent_cancel_reporting(const char* what) const {
        report_other_failures(npos, what);
        throw_cancelled(parent_node);
    }

    /// Failures other than the one rethrown (and other than cancellations) are never
    /// dropped: each goes to the loop's exception handler.
    void report_other_failures(std::size_t rethrown, const char* what) const noexcept {
        for (std::size_t i = 0; i < count; ++i) {
            if (i == rethrown || !slots[i].failed() || slots[i].promise->ended_cancelled()) continue;
            loop->report(exception_context{report_kind::unretrieved_exception,
                                           what,
                                           slots[i].promise->exception_,
                                           parent_node != nullptr ? parent_node->describe() : std::string(),
                                           {}});
        }
    }

private:
    void finished() noexcept {
        if (parent_node != nullptr) parent_node->disarm(this);
        if (timer != nullptr) loop->remove_timer(*timer);
    }

    static void on_parent_cancel(void* self) noexcept {
        auto* g = static_cast<child_group*>(self);
        g->parent_cancelled = true;
        // A level-triggered parent (a cancelled scope) cancels its children the same way.
        g->cancel_others(npos, g->parent_node->cancelled_sticky());
        // Armed again: a cancel scope around us that fires later still reaches them.
        g->parent_node->arm(&on_parent_cancel, g);
    }

    static std::coroutine_handle<> child_finished(task_node* n) noexcept {
        auto* slot = static_cast<child_slot*>(n);
        slot->finished_ = true;
        child_group* g = slot->group;
        if (g->first_done == npos) {
            g->first_done = slot->index;
            if (g->policy == group_policy::first) g->cancel_others(slot->index);
        }
        if (slot->failed() && g->first_failed == npos) {
            g->first_failed = slot->index;
            if (g->policy == group_policy::fail_fast) g->cancel_others(slot->index);
        }
        if (--g->remaining == 0) {
            g->finished();
            return g->parent;
        }
        return std::noop_coroutine();
    }
};

/// Children of fixed, possibly different, types.
template <class... Ts>
struct fixed_children {
    std::tuple<task<Ts>...> tasks;
    std::array<child_slot, sizeof...(Ts)> slots{};
    child_group group;

    explicit fixed_children(task<Ts>... ts, group_policy policy) : tasks(std::move(ts)...) { bind(policy); }
    // Movable until started (spawn(gather(...)) moves the awaiter into a frame): the
    // slots point into the object, so a move binds them anew.
    fixed_children(fixed_children&& o) noexcept : tasks(std::move(o.tasks)) {
        CORIO_ASSERT(o.group.parent == nullptr);
        bind(o.group.policy);
    }
    fixed_children& operator=(fixed_children&&) = delete;

    void bind(group_policy policy) noexcept {
        group.slots = slots.data();
        group.count = sizeof...(Ts);
        group.policy = policy;
        bind_all(std::index_sequence_for<Ts...>{});
    }

    template <std::size_t... I>
    void bind_all(std::index_sequence<I...>) noexcept {
        (group.bind(slots[I], std::get<I>(tasks).handle(), I), ...);
    }

    template <std::size_t I>
    auto& promise() noexcept {
        return std::get<I>(tasks).handle().promise();
    }
};

/// Children of one type, from a range.
template <class T>
struct range_children {
    std::vector<task<T>> tasks;
    std::unique_ptr<child_slot[]> slots;
    child_group group;

    range_children(std::vector<task<T>> ts, group_policy policy)
        : tasks(std::move(ts)), slots(std::make_unique<child_slot[]>(tasks.size())) {
        bind(policy);
    }
    range_children(range_children&& o) noexcept : tasks(std::move(o.tasks)), slots(std::move(o.slots)) {
        CORIO_ASSERT(o.group.parent == nullptr);
        bind(o.group.policy);
    }
    range_children& operator=(range_children&&) = delete;

    void bind(group_policy policy) noexcept {
        group.slots = slots.get();
        group.count = tasks.size();
        group.policy = policy;
        for (std::size_t i = 0; i < tasks.size(); ++i) group.bind(slots[i], tasks[i].handle(), i);
    }

    auto& promise(std::size_t i) noexcept { return tasks[i].handle().promise(); }
};

template <class T>
std::vector<task<T>> tasks_from_range(std::vector<task<T>>&& tasks) noexcept {
    return std::move(tasks);  // already tasks: adopt the vector as it is
}

template <class Range>
auto tasks_from_range(Range&& range) {
    using A = decltype(*std::begin(range));
    using T =
        await_result_t<task_for_t<std::conditional_t<std::is_lvalue_reference_v<A>, std::remove_reference_t<A>&&, A>>>;
    std::vector<task<T>> out;
    if constexpr (requires { std::size(range); }) out.reserve(std::size(range));
    for (auto&& a : range) out.push_back(make_task(std::move(a)));
    return out;
}

/// A child's result as a value (void becomes std::monostate); rethrows its failure.
template <class T, class Promise>
non_void_t<T> take_result(Promise& p) {
    if constexpr (std::is_void_v<T>) {
        p.take();
        return std::monostate{};
    } else {
        return p.take();
    }
}

}  // namespace corio::detail
