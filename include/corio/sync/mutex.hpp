#pragma once
/// @file
/// corio::mutex (asyncio.Lock): `auto guard = co_await m.lock();`. Unlocking hands the
/// mutex straight to the oldest waiter, so nobody can barge in ahead of it.

#include <coroutine>
#include <utility>

#include <corio/detail/waiter_list.hpp>
#include <corio/errors.hpp>

namespace corio {

/// A mutex for the tasks of one loop (asyncio.Lock). Not for threads: it never blocks a
/// thread, and waiting tasks get the mutex in the order they asked for it.
/// @code
/// corio::mutex m;
/// corio::task<> update() {
///     auto guard = co_await m.lock();  // suspends while another task holds m
///     co_await write_record();         // still held across the await
/// }                                    // unlocked here, handed to the oldest waiter
/// @endcode
class mutex {
public:
    mutex() = default;
    mutex(const mutex&) = delete;
    mutex& operator=(const mutex&) = delete;

    /// Owns a locked mutex; unlocks when destroyed (or at unlock()).
    class [[nodiscard]] guard {
    public:
        guard() = default;
        /// Adopts m, which the caller has locked (as try_lock() does).
        explicit guard(mutex& m) noexcept : m_(&m) {}
        /// Takes over o's ownership; o owns nothing afterwards.
        guard(guard&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
        /// Unlocks what this guard owns, then takes over o's ownership.
        guard& operator=(guard&& o) noexcept {
            if (this != &o) {
                unlock();
                m_ = std::exchange(o.m_, nullptr);
            }
            return *this;
        }
        ~guard() { unlock(); }
        /// Unlocks now, if this guard owns the mutex; afterwards it owns nothing.
        void unlock() noexcept {
            if (m_ != nullptr) std::exchange(m_, nullptr)->unlock();
        }
        /// True while this guard holds the mutex.
        [[nodiscard]] bool owns_lock() const noexcept { return m_ != nullptr; }
        /// The mutex held, or nullptr.
        [[nodiscard]] mutex* get() const noexcept { return m_; }

    private:
        mutex* m_ = nullptr;
    };

    /// What lock() returns: `co_await` it for a guard. A cancellation point: cancelled while
    /// waiting, it throws cancelled_error and does not take the mutex.
    class [[nodiscard]] lock_awaiter : detail::sync_waiter {
    public:
        /// @cond CORIO_INTERNAL
        explicit lock_awaiter(mutex& m) noexcept : m_(&m) {}
        bool await_ready() const noexcept {
            if (m_->locked_) return false;
            m_->locked_ = true;
            return true;
        }
        template <class Promise>
        bool await_suspend(std::coroutine_handle<Promise> h) {
            return enqueue(m_->waiters_, h);
        }
        /// Ownership was handed to us by unlock() if we were woken.
        guard await_resume() const {
            wait.throw_if_cancelled();
            if (cancelled_after_handoff()) {
                m_->unlock();  // ownership goes on to the next waiter
                throw_cancelled(wait.node);
            }
            return guard(*m_);
        }
        /// @endcond

    private:
        mutex* m_;
    };

    /// Completes when the mutex is ours; the guard unlocks it.
    lock_awaiter lock() noexcept { return lock_awaiter(*this); }

    /// Locks if free (and nobody waits); never suspends.
    [[nodiscard]] bool try_lock() noexcept {
        if (locked_) return false;
        locked_ = true;
        return true;
    }

    /// Unlocks; the oldest waiter, if any, becomes the owner.
    void unlock() noexcept {
        if (detail::sync_waiter* w = waiters_.pop_front())
            w->wake();  // locked_ stays true: ownership passes directly
        else
            locked_ = false;
    }

    /// True while some task holds the mutex.
    [[nodiscard]] bool locked() const noexcept { return locked_; }

private:
    friend class condition_variable;
    detail::waiter_list waiters_;
    bool locked_ = false;
};

}  // namespace corio
