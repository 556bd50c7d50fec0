#pragma once
// corio::mutex (asyncio.Lock): `auto guard = co_await m.lock();`. Unlocking hands the
// mutex straight to the oldest waiter, so nobody can barge in ahead of it.

#include <coroutine>
#include <utility>

#include <corio/detail/waiter_list.hpp>
#include <corio/errors.hpp>

namespace corio {

class mutex {
public:
    mutex() = default;
    mutex(const mutex&) = delete;
    mutex& operator=(const mutex&) = delete;

    /// Owns a locked mutex; unlocks when destroyed (or at unlock()).
    class [[nodiscard]] guard {
    public:
        guard() = default;
        explicit guard(mutex& m) noexcept : m_(&m) {}
        guard(guard&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
        guard& operator=(guard&& o) noexcept {
            if (this != &o) {
                unlock();
                m_ = std::exchange(o.m_, nullptr);
            }
            return *this;
        }
        ~guard() { unlock(); }
        void unlock() noexcept {
            if (m_ != nullptr) std::exchange(m_, nullptr)->unlock();
        }
        [[nodiscard]] bool owns_lock() const noexcept { return m_ != nullptr; }
        [[nodiscard]] mutex* get() const noexcept { return m_; }

    private:
        mutex* m_ = nullptr;
    };

    class [[nodiscard]] lock_awaiter : detail::sync_waiter {
    public:
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

    [[nodiscard]] bool locked() const noexcept { return locked_; }

private:
    friend class condition_variable;
    detail::waiter_list waiters_;
    bool locked_ = false;
};

}  // namespace corio
