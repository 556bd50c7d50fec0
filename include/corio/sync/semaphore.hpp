#pragma once
/// @file
/// corio::semaphore (asyncio.Semaphore): `auto permit = co_await sem.acquire();` takes one
/// unit, given back when the permit is destroyed. A release hands the unit straight to
/// the oldest waiter; a waiter cancelled after it was handed a unit gives it on.

#include <coroutine>
#include <cstddef>
#include <utility>

#include <corio/detail/waiter_list.hpp>

namespace corio {

/// A counting semaphore for the tasks of one loop (asyncio.Semaphore): at most `initial`
/// permits out at once, and waiters served in FIFO order.
/// @code
/// corio::semaphore slots(4);              // at most four downloads at a time
/// corio::task<> download(std::string url) {
///     auto permit = co_await slots.acquire();
///     co_await fetch(url);
/// }                                       // the permit gives its unit back here
/// @endcode
class semaphore {
public:
    /// A semaphore with `initial` units free.
    explicit semaphore(std::size_t initial) noexcept : count_(initial) {}
    semaphore(const semaphore&) = delete;
    semaphore& operator=(const semaphore&) = delete;

    /// One unit of the semaphore; released when destroyed (or at release()).
    class [[nodiscard]] permit {
    public:
        permit() = default;
        /// Adopts one unit already taken from s.
        explicit permit(semaphore& s) noexcept : s_(&s) {}
        /// Takes over o's unit; o holds nothing afterwards.
        permit(permit&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
        /// Releases the unit this permit holds, then takes over o's.
        permit& operator=(permit&& o) noexcept {
            if (this != &o) {
                release();
                s_ = std::exchange(o.s_, nullptr);
            }
            return *this;
        }
        ~permit() { release(); }
        /// Gives the unit back now, if this permit holds one.
        void release() noexcept {
            if (s_ != nullptr) std::exchange(s_, nullptr)->release();
        }
        /// Keeps the unit: the semaphore will not get it back.
        void forget() noexcept { s_ = nullptr; }
        /// True while this permit holds a unit.
        [[nodiscard]] bool owns() const noexcept { return s_ != nullptr; }

    private:
        semaphore* s_ = nullptr;
    };

    /// What acquire() returns: `co_await` it for a permit. A cancellation point: cancelled
    /// while waiting, it throws cancelled_error and takes no unit.
    class [[nodiscard]] acquire_awaiter : detail::sync_waiter {
    public:
        /// @cond CORIO_INTERNAL
        explicit acquire_awaiter(semaphore& s) noexcept : s_(&s) {}
        bool await_ready() const noexcept { return s_->try_take(); }
        template <class Promise>
        bool await_suspend(std::coroutine_handle<Promise> h) {
            return enqueue(s_->waiters_, h);
        }
        permit await_resume() const {
            wait.throw_if_cancelled();
            if (cancelled_after_handoff()) {
                s_->release();  // the unit goes on to the next waiter
                throw_cancelled(wait.node);
            }
            return permit(*s_);
        }
        /// @endcond

    private:
        semaphore* s_;
    };

    /// Completes with a permit once a unit is free.
    acquire_awaiter acquire() noexcept { return acquire_awaiter(*this); }

    /// A permit if a unit is free now (and nobody waits ahead), else an empty one.
    permit try_acquire() noexcept { return try_take() ? permit(*this) : permit(); }

    /// Gives a unit back (permits do this themselves).
    void release() noexcept {
        if (detail::sync_waiter* w = waiters_.pop_front())
            w->wake();  // the unit goes straight to the waiter
        else
            ++count_;
    }

    /// Units free now.
    [[nodiscard]] std::size_t available() const noexcept { return count_; }
    /// True while some task waits in acquire().
    [[nodiscard]] bool has_waiters() const noexcept { return !waiters_.empty(); }

private:
    bool try_take() noexcept {
        if (count_ == 0) return false;
        --count_;
        return true;
    }

    detail::waiter_list waiters_;
    std::size_t count_;
};

}  // namespace corio
