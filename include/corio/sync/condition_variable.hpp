#pragma once
/// @file
/// corio::condition_variable (asyncio.Condition), used with corio::mutex:
///
///     auto g = co_await m.lock();
///     co_await cv.wait(g, [&] { return ready; });
///
/// wait() unlocks, sleeps until notified, and locks again before it returns, also when
/// it ends by cancellation (the guard always owns the mutex afterwards). A waiter that is
/// cancelled after it was notified passes the notification on to the next waiter.

#include <coroutine>

#include <corio/detail/waiter_list.hpp>
#include <corio/sync/mutex.hpp>
#include <corio/task.hpp>

namespace corio {

/// Waits for a condition on state guarded by a corio::mutex (asyncio.Condition); see
/// the file comment for how wait() relocks.
class condition_variable {
public:
    condition_variable() = default;
    condition_variable(const condition_variable&) = delete;
    condition_variable& operator=(const condition_variable&) = delete;

    /// What wait(g) returns. A cancellation point: the guard owns the mutex again
    /// when it throws cancelled_error.
    class [[nodiscard]] wait_awaiter : detail::sync_waiter {
    public:
        /// @cond CORIO_INTERNAL
        wait_awaiter(condition_variable& cv, mutex::guard& g) noexcept : cv_(&cv), g_(&g) {}

        static bool await_ready() noexcept { return false; }

        template <class Promise>
        bool await_suspend(std::coroutine_handle<Promise> h) {
            if (!g_->owns_lock()) throw usage_error("corio: condition_variable::wait: the guard does not own a mutex");
            if (!wait.begin(h)) return false;
            m_ = g_->get();
            cv_->waiters_.push_back(this);
            wait.arm(&on_cancel, this);
            m_->unlock();
            return true;
        }

        void await_resume() const {
            wait.throw_if_cancelled();
            if (notified_ && cancelled_after_handoff()) {
                cv_->notify_one();  // the notification goes on to the next waiter (asyncio 3.13)
                throw_cancelled(wait.node);
            }
        }
        /// @endcond

    private:
        friend class condition_variable;

        // Notified, or cancelled while waiting for the notification: take the mutex back
        // (at once if free, else in its queue) before the task resumes.
        void relock() noexcept {
            if (!m_->locked_) {
                m_->locked_ = true;
                wait.loop->schedule(wait.handle, wait.node);
            } else {
                m_->waiters_.push_back(this);  // woken by unlock() as its new owner
            }
        }

        static void on_cancel(void* self) noexcept {
            auto* me = static_cast<wait_awaiter*>(self);
            if (me->list != nullptr) me->list->remove(me);
            me->wait.cancelled = true;  // thrown once the mutex is ours again
            me->relock();
        }

        condition_variable* cv_;
        mutex::guard* g_;
        mutex* m_ = nullptr;
        bool notified_ = false;
    };

    /// Unlocks g's mutex, waits for a notification, locks it again.
    wait_awaiter wait(mutex::guard& g) noexcept { return {*this, g}; }

    /// Waits until pred() holds (checked with the mutex held).
    template <class Pred>
    // NOLINTNEXTLINE(cppcoreguidelines-avoid-reference-coroutine-parameters): the caller's guard, awaited at once
    task<> wait(mutex::guard& g, Pred pred) {
        while (!pred()) co_await wait(g);
    }

    /// Wakes the oldest waiter.
    void notify_one() noexcept {
        if (detail::sync_waiter* w = waiters_.pop_front()) notified(w);
    }
    /// Wakes every waiter.
    void notify_all() noexcept {
        while (detail::sync_waiter* w = waiters_.pop_front()) notified(w);
    }

private:
    static void notified(detail::sync_waiter* w) noexcept {
        auto* me = static_cast<wait_awaiter*>(w);
        me->notified_ = true;
        // Waiting for the mutex is not cancellable: a cancel from now on is delivered at
        // the task's next suspension point, once the guard owns the mutex again.
        if (me->wait.node != nullptr) me->wait.node->disarm(me);
        me->relock();
    }

    detail::waiter_list waiters_;
};

}  // namespace corio
