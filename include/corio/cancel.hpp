#pragma once
/// @file
/// Cancellation tools:
///
/// - shield(aw): protect a section from the awaiting task's cancellation. The inner work
///   runs on a node of its own and always runs to its end; a cancel that arrives meanwhile
///   is kept and delivered at the awaiting task's next suspension point (nothing is lost).
///
/// - Cancel scopes, trio-style and level-triggered, around a block of awaits:
///       std::optional<int> r = co_await corio::move_on_after(1s, [&]() -> task<int> { ... });
///       int v = co_await corio::fail_after(1s, [&]() -> task<int> { ... });  // timeout_error
///   Once the scope is cancelled (its deadline passed, or scope.cancel()), every suspension
///   point inside it throws cancelled_error until the block ends, including the awaits in
///   its cleanup, unless they are shielded; combinators and task groups inside it are
///   cancelled the same way. A scope catches only its own cancel: a cancel of the awaiting
///   task (or of an enclosing scope) goes on out of it. The innermost deadline is the
///   first to fire; each scope ends only the block it encloses. The block may take the
///   scope (`[&](corio::cancel_scope& s) -> task<> {...}`) to cancel it or move its deadline.
///   wait_for(aw, d) stays asyncio's edge-triggered wait_for: one cancel, then the inner
///   work may await freely during its cleanup.
///
/// - std::stop_token interop: cancel_on(token, aw) cancels aw when a std::stop_source is
///   requested (from any thread); co_await current_stop_token() gives a token that is
///   requested when the awaiting task is cancelled, for code (a thread pool job, a
///   third-party library) that polls one.

#include <chrono>
#include <coroutine>
#include <memory>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

#include <corio/detail/child_group.hpp>
#include <corio/detail/timer_wheel.hpp>
#include <corio/errors.hpp>
#include <corio/event_loop.hpp>
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

template <class T>
class scope_awaiter;

}  // namespace detail

/// Runs `a` to its end even if the awaiting task is cancelled meanwhile; the cancel is
/// kept and fires at the task's next suspension point after the shield. For cleanup that
/// must finish (a final write, a commit).
/// @code
/// co_await corio::shield(db.commit());  // not cut short by a cancel of this task
/// @endcode
template <class Awaitable>
auto shield(Awaitable&& a) {
    using T = detail::await_result_t<detail::task_for_t<Awaitable>>;
    return detail::shield_awaiter<T>(detail::make_task(static_cast<Awaitable&&>(a)));
}

/// The scope of move_on_after / fail_after, as its block sees it. Valid while the block runs.
class cancel_scope {
public:
    /// The clock of deadlines.
    using clock = std::chrono::steady_clock;

    cancel_scope(const cancel_scope&) = delete;
    cancel_scope& operator=(const cancel_scope&) = delete;

    /// Cancels the block, level-triggered: its current and every later suspension point
    /// throws cancelled_error. The scope catches it (move_on_*: nullopt; fail_*: timeout_error).
    void cancel() noexcept {
        if (cancel_called_) return;
        cancel_called_ = true;
        if (loop_ != nullptr) loop_->remove_timer(timer_);
        if (body_ != nullptr) body_->cancel_from_owner(true);
    }
    /// True once the block was cancelled, by cancel() or by its deadline.
    [[nodiscard]] bool cancel_called() const noexcept { return cancel_called_; }
    /// True when the deadline (rather than cancel()) cancelled the block.
    [[nodiscard]] bool deadline_reached() const noexcept { return deadline_reached_; }

    /// The deadline (time_point::max() for none).
    [[nodiscard]] clock::time_point deadline() const noexcept { return timer_.deadline; }
    /// Moves the deadline (earlier or later); one in the past cancels the block now.
    void set_deadline(clock::time_point tp) {
        if (cancel_called_) return;
        timer_.deadline = tp;
        if (loop_ == nullptr) return;  // not started: armed by the awaiter
        loop_->remove_timer(timer_);
        if (tp <= clock::now()) {
            deadline_reached_ = true;
            cancel();
        } else if (tp != clock::time_point::max()) {
            loop_->add_timer(timer_);
        }
    }

private:
    template <class>
    friend class detail::scope_awaiter;

    explicit cancel_scope(clock::time_point deadline) noexcept {
        timer_.deadline = deadline;
        timer_.self = this;
        timer_.fire = &on_deadline;
    }
    static void on_deadline(detail::timer_entry* e) noexcept {
        auto* me = static_cast<scope_timer*>(e)->self;
        me->deadline_reached_ = true;
        me->cancel();
    }

    struct scope_timer : detail::timer_entry {
        cancel_scope* self = nullptr;
    };
    scope_timer timer_;
    detail::task_node* body_ = nullptr;
    event_loop* loop_ = nullptr;
    bool cancel_called_ = false;
    bool deadline_reached_ = false;
};

namespace detail {

// The block of a scope, called with the scope when it takes one.
template <class F>
task<await_result_t<std::invoke_result_t<F&, cancel_scope&>>> invoke_with_scope(F f, cancel_scope* s) {
    co_return co_await f(*s);
}

template <class F>
concept scope_block = std::is_invocable_v<F&, cancel_scope&> && awaitable<std::invoke_result_t<F&, cancel_scope&>>;

template <class T>
class [[nodiscard]] scope_awaiter {
public:
    template <class Make>
    scope_awaiter(cancel_scope::clock::time_point deadline, bool fail, Make&& make)
        : scope_(new cancel_scope(deadline)), children_(make(scope_.get()), group_policy::settle), fail_(fail) {}

    static bool await_ready() noexcept { return false; }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        auto& g = children_.group;
        event_loop& loop = event_loop::current();
        cancel_scope& s = *scope_;
        s.body_ = &children_.slots[0];
        const bool timed = s.timer_.deadline != cancel_scope::clock::time_point::max();
        if (timed && s.timer_.deadline <= cancel_scope::clock::now()) {
            // Expired already: the block starts cancelled, the same answer every time.
            s.deadline_reached_ = true;
            s.cancel();
            s.loop_ = &loop;
            g.timer = &s.timer_;  // a set_deadline() in the block is a no-op, nothing to remove
            return g.start(h, true);
        }
        s.loop_ = &loop;
        if (timed) {
            // Armed before the block starts, so that a set_deadline() in its first step
            // moves this very entry; it cannot fire before we are back in the loop, and
            // the group removes it when the block ends (also if it ends at once).
            loop.add_timer(s.timer_);
            g.timer = &s.timer_;
        }
        return g.start(h, true);
    }

    /// The block's value; nullopt (move_on) or timeout_error (fail) when the scope's own
    /// cancel ended it.
    auto await_resume() -> std::conditional_t<std::is_void_v<T>, bool, std::optional<T>> {
        auto& g = children_.group;
        auto& p = children_.template promise<0>();
        scope_->loop_ = nullptr;
        scope_->body_ = nullptr;
        if (p.exception_) {
            if (scope_->cancel_called_ && !g.parent_cancelled && p.ended_cancelled()) {
                if (fail_) throw timeout_error();
                if constexpr (std::is_void_v<T>)
                    return false;
                else
                    return std::nullopt;
            }
            g.rethrow(p);
        }
        if constexpr (std::is_void_v<T>) {
            p.take();
            return true;
        } else {
            return std::optional<T>(p.take());
        }
    }

    T take_value() {  // fail_*: the value itself
        if constexpr (std::is_void_v<T>)
            (void)await_resume();
        else
            return *await_resume();
    }

private:
    std::unique_ptr<cancel_scope> scope_;  // the block holds its address
    fixed_children<T> children_;
    bool fail_;
};

// fail_*: the same scope, but the value itself (a timeout is an exception).
template <class T>
class [[nodiscard]] fail_scope_awaiter : public scope_awaiter<T> {
public:
    using scope_awaiter<T>::scope_awaiter;
    T await_resume() { return this->take_value(); }
};

template <class A>
auto make_scope_task(A&& a, cancel_scope* s) {
    if constexpr (scope_block<std::remove_cvref_t<A>>) {
        return invoke_with_scope<std::remove_cvref_t<A>>(static_cast<A&&>(a), s);
    } else {
        (void)s;
        return make_task(static_cast<A&&>(a));
    }
}

template <class A>
using scope_result_t = await_result_t<decltype(make_scope_task(std::declval<A>(), nullptr))>;

template <class A>
auto move_on_at(cancel_scope::clock::time_point tp, A&& a) {
    using T = scope_result_t<A>;
    return scope_awaiter<T>(tp, false, [&](cancel_scope* s) { return make_scope_task(static_cast<A&&>(a), s); });
}

template <class A>
auto fail_at(cancel_scope::clock::time_point tp, A&& a) {
    using T = scope_result_t<A>;
    return fail_scope_awaiter<T>(tp, true, [&](cancel_scope* s) { return make_scope_task(static_cast<A&&>(a), s); });
}

}  // namespace detail

/// Runs the block; if `d` passes first, cancels it (level-triggered) and yields nullopt
/// (false for a void block). trio's move_on_after.
template <class Awaitable, class Rep, class Period>
auto move_on_after(std::chrono::duration<Rep, Period> d, Awaitable&& a) {
    return detail::move_on_at(detail::deadline_after(detail::saturating_ceil(d)), static_cast<Awaitable&&>(a));
}
/// move_on_after with a deadline instead of a duration.
template <class Awaitable>
auto move_on_at(std::chrono::steady_clock::time_point tp, Awaitable&& a) {
    return detail::move_on_at(tp, static_cast<Awaitable&&>(a));
}

/// Runs the block; if `d` passes first, cancels it (level-triggered) and throws
/// timeout_error once it has ended. trio's fail_after, asyncio's timeout().
template <class Awaitable, class Rep, class Period>
auto fail_after(std::chrono::duration<Rep, Period> d, Awaitable&& a) {
    return detail::fail_at(detail::deadline_after(detail::saturating_ceil(d)), static_cast<Awaitable&&>(a));
}
/// fail_after with a deadline instead of a duration.
template <class Awaitable>
auto fail_at(std::chrono::steady_clock::time_point tp, Awaitable&& a) {
    return detail::fail_at(tp, static_cast<Awaitable&&>(a));
}

/// A scope without a deadline: the block may cancel itself with scope.cancel() (or be
/// given one later with set_deadline); nullopt when it did.
template <class Awaitable>
auto open_cancel_scope(Awaitable&& a) {
    return detail::move_on_at(std::chrono::steady_clock::time_point::max(), static_cast<Awaitable&&>(a));
}

// ---- std::stop_token interop ----

namespace detail {

// Trivially destructible on purpose: GCC 12 may destroy a temporary inside a co_await
// expression twice, so the token is made in await_resume, not held here.
struct current_stop_token_awaiter {
    task_node* node = nullptr;
    static bool await_ready() noexcept { return false; }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
        if constexpr (std::is_base_of_v<promise_base, Promise>) node = h.promise().node_;
        return false;
    }
    [[nodiscard]] std::stop_token await_resume() const {
        return node != nullptr ? node->stop_token() : std::stop_token();
    }
};

// What a stop callback may touch from another thread: only the loop's door. The rest is
// read on the loop's thread, where `slot` is cleared when the work ends.
struct stop_link {
    child_slot* slot = nullptr;
};

template <class T>
class [[nodiscard]] cancel_on_awaiter {
public:
    cancel_on_awaiter(std::stop_token token, task<T> t)
        : token_(std::move(token)), children_(std::move(t), group_policy::settle) {}
    cancel_on_awaiter(cancel_on_awaiter&& o) noexcept
        : token_(std::move(o.token_)), children_(std::move(o.children_)) {}
    cancel_on_awaiter& operator=(cancel_on_awaiter&&) = delete;
    ~cancel_on_awaiter() {
        callback_.reset();  // waits for a callback running on another thread
        if (link_ != nullptr) link_->slot = nullptr;
    }

    static bool await_ready() noexcept { return false; }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        auto& g = children_.group;
        if (token_.stop_requested()) {
            children_.slots[0].cancel_once();
            return g.start(h, true);
        }
        event_loop& loop = event_loop::current();
        link_ = std::make_shared<stop_link>();
        link_->slot = &children_.slots[0];
        if (!g.start(h, true)) return false;
        callback_.emplace(token_, on_stop{loop.handle(), link_});  // may run at once, here
        return true;
    }

    T await_resume() {
        callback_.reset();
        if (link_ != nullptr) link_->slot = nullptr;
        auto& p = children_.template promise<0>();
        if (p.exception_) children_.group.rethrow(p);
        return p.take();
    }

private:
    // Runs on the thread that requests the stop, which may outlive the loop: it holds a
    // loop_handle, which refuses the work once the loop has gone.
    struct on_stop {
        loop_handle loop;
        std::shared_ptr<stop_link> link;
        void operator()() noexcept {
            try {
                loop.call_soon_threadsafe([l = link] {
                    if (l->slot != nullptr) l->slot->cancel_once();
                });
            } catch (...) {
                // The loop is closed: the work it ran has ended with it.
            }
        }
    };

    std::stop_token token_;
    fixed_children<T> children_;
    std::shared_ptr<stop_link> link_;
    std::optional<std::stop_callback<on_stop>> callback_;
};

}  // namespace detail

/// Awaits `a`, cancelling it when `token` is stopped (from any thread). Its value, or
/// cancelled_error if the cancel ended it.
template <class Awaitable>
auto cancel_on(std::stop_token token, Awaitable&& a) {
    using T = detail::await_result_t<detail::task_for_t<Awaitable>>;
    return detail::cancel_on_awaiter<T>(std::move(token), detail::make_task(static_cast<Awaitable&&>(a)));
}

/// `co_await current_stop_token()`: a token requested when the awaiting task is cancelled
/// (at once if a cancel is already pending). Outside a corio task: a token never requested.
inline detail::current_stop_token_awaiter current_stop_token() noexcept { return {}; }

}  // namespace corio
