#pragma once
/// @file
/// sleep, sleep_until, yield and wait_for.

#include <chrono>
#include <concepts>
#include <coroutine>
#include <type_traits>
#include <utility>

#include <corio/detail/child_group.hpp>
#include <corio/detail/io_awaiter.hpp>
#include <corio/detail/suspension.hpp>
#include <corio/detail/timer_wheel.hpp>
#include <corio/event_loop.hpp>
#include <corio/task.hpp>

namespace corio {

namespace detail {

class [[nodiscard]] sleep_awaiter : timer_entry {
public:
    explicit sleep_awaiter(clock::time_point deadline) noexcept {
        this->deadline = deadline;
        this->fire = &on_fire;
    }
    // Movable until awaited (wrapping it in a task moves it into the frame).
    sleep_awaiter(sleep_awaiter&& o) noexcept : sleep_awaiter(o.deadline) { CORIO_ASSERT(!o.armed()); }
    sleep_awaiter& operator=(sleep_awaiter&&) = delete;
    ~sleep_awaiter() {
        // The frame is destroyed while asleep (its loop is going away): leave the heap.
        if (armed()) wait_.loop->remove_timer(*this);
    }

    static bool await_ready() noexcept { return false; }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        if (!wait_.begin(h)) return false;
        wait_.loop->add_timer(*this);
        wait_.arm(&on_cancel, this);
        return true;
    }

    void await_resume() const { wait_.throw_if_cancelled(); }

private:
    static void on_fire(timer_entry* e) noexcept {
        auto* me = static_cast<sleep_awaiter*>(e);
        me->wait_.wake(me);
    }
    static void on_cancel(void* self) noexcept {
        auto* me = static_cast<sleep_awaiter*>(self);
        me->wait_.loop->remove_timer(*me);
        me->wait_.wake_cancelled();
    }

    suspension wait_;
};

class [[nodiscard]] yield_awaiter {
public:
    static bool await_ready() noexcept { return false; }

    template <class Promise>
    void await_suspend(std::coroutine_handle<Promise> h) {
        if constexpr (std::is_base_of_v<promise_base, Promise>) node_ = h.promise().node_;
        event_loop::current().schedule(h, node_);
    }

    void await_resume() const {
        // A cancel requested while we stood in the ready queue is delivered here.
        if (node_ != nullptr && node_->cancel_pending_) throw_cancelled(node_);
    }

private:
    task_node* node_ = nullptr;
};

template <class T>
class [[nodiscard]] wait_for_awaiter {
public:
    wait_for_awaiter(task<T> t, std::chrono::nanoseconds timeout)
        : children_(std::move(t), group_policy::settle), timeout_(timeout) {}

    static bool await_ready() noexcept { return false; }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        auto& g = children_.group;
        if (timeout_.count() <= 0) {
            // An expired deadline gives the same answer every time: the inner work starts
            // cancelled, so it times out at its first suspension point (asyncio raises
            // TimeoutError too), and returns its value only if it never suspends.
            timed_out_ = true;
            children_.slots[0].cancel_once();
            return g.start(h, true);
        }
        timer_.deadline = deadline_after(timeout_);  // the time runs from the start; max: never
        timer_.fire = &on_timeout;
        timer_.self = this;
        g.timer = &timer_;                    // removed by the group when the children end
        if (!g.start(h, true)) return false;  // ended at once: no deadline to arm
        // Armed once the children wait: none of them can end before we return to the loop.
        g.loop->add_timer(timer_);
        return true;
    }

    T await_resume() {
        auto& g = children_.group;
        auto& p = children_.template promise<0>();
        if (p.exception_) {
            if (timed_out_ && !g.parent_cancelled && p.ended_cancelled()) throw timeout_error();
            g.rethrow(p);
        }
        return p.take();  // the inner work finished first (or won the race): its value
    }

private:
    struct deadline_timer : timer_entry {
        wait_for_awaiter* self = nullptr;
    };
    static void on_timeout(timer_entry* e) noexcept {
        auto* me = static_cast<deadline_timer*>(e)->self;
        me->timed_out_ = true;
        me->children_.slots[0].cancel_once();
    }

    fixed_children<T> children_;
    deadline_timer timer_;
    std::chrono::nanoseconds timeout_;
    bool timed_out_ = false;
};

}  // namespace detail

/// Suspends for at least `d` (never less). A d past the clock's range sleeps until
/// cancelled; d <= 0 has passed already: the task resumes at the loop's next turn.
/// @code
/// co_await corio::sleep(std::chrono::milliseconds(100));
/// @endcode
template <class Rep, class Period>
detail::sleep_awaiter sleep(std::chrono::duration<Rep, Period> d) {
    return detail::sleep_awaiter(detail::deadline_after(detail::saturating_ceil(d)));
}

/// Suspends until `tp` (steady clock), rounded up to the clock's nanoseconds and
/// saturated at its range.
template <class Duration>
detail::sleep_awaiter sleep_until(std::chrono::time_point<detail::clock, Duration> tp) {
    return detail::sleep_awaiter(detail::clock::time_point(detail::saturating_ceil(tp.time_since_epoch())));
}

/// Lets every other ready task run once (asyncio.sleep(0)); a cancellation point.
inline detail::yield_awaiter yield() noexcept { return {}; }

/// Awaits `a` for at most `timeout`. When the time runs out the inner work is cancelled,
/// and once it has ended, timeout_error is thrown (its value is returned if it finished
/// anyway). Cancelling the awaiting task cancels the inner work too.
/// @code
/// try {
///     int v = co_await corio::wait_for(fetch(1), std::chrono::seconds(1));
/// } catch (const corio::timeout_error&) {
///     // fetch(1) took longer, and has been cancelled
/// }
/// @endcode
template <class Awaitable, class Rep, class Period>
auto wait_for(Awaitable&& a, std::chrono::duration<Rep, Period> timeout) {
    using T = detail::await_result_t<detail::task_for_t<Awaitable>>;
    return detail::wait_for_awaiter<T>(detail::make_task(static_cast<Awaitable&&>(a)),
                                       detail::saturating_ceil(timeout));
}

/// The same for one I/O operation (`wait_for(s.read_some(buf), 30s)`), with the same
/// answers, at the cost of a timer entry in the awaiting frame: no task, no allocation.
template <class Awaitable, class Rep, class Period>
requires(!std::is_lvalue_reference_v<Awaitable> &&
         std::derived_from<std::remove_cvref_t<Awaitable>,
                           detail::io_awaiter>) auto wait_for(Awaitable&& a,
                                                              std::chrono::duration<Rep, Period> timeout) {
    using A = std::remove_cvref_t<Awaitable>;
    return detail::io_deadline_awaiter<A>(static_cast<A&&>(a), detail::saturating_ceil(timeout));
}

}  // namespace corio
