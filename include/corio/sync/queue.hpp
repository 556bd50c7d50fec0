#pragma once
/// @file
/// corio::queue<T> (asyncio.Queue with a maxsize): push waits while the queue is full,
/// pop waits while it is empty, both in FIFO order. close() ends it:
/// - pop() drains what is left, then yields std::nullopt;
/// - push() (and every push waiting) throws std::system_error(io_errc::closed): the value
///   was not taken, nothing is dropped silently.
/// A popper cancelled after an item was handed to it, before it resumed, gives the item on
/// (to the next popper, or the front of the queue) and throws cancelled_error. A pusher
/// whose value was taken keeps its success: the value is in the queue.

#include <coroutine>
#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include <corio/detail/waiter_list.hpp>
#include <corio/errors.hpp>

namespace corio {

/// A FIFO queue between the tasks of one loop (asyncio.Queue), bounded or not.
/// @code
/// corio::queue<int> q(16);  // push waits while 16 items are queued
/// corio::task<> producer() {
///     for (int i = 0; i < 100; ++i) co_await q.push(i);
///     q.close();
/// }
/// corio::task<> consumer() {
///     while (std::optional<int> item = co_await q.pop()) use(*item);  // nullopt: closed and drained
/// }
/// @endcode
template <class T>
class queue {
public:
    /// capacity 0: unbounded (push never waits).
    explicit queue(std::size_t capacity) noexcept : capacity_(capacity) {}
    queue(const queue&) = delete;
    queue& operator=(const queue&) = delete;

    /// What push() returns. Throws std::system_error(io_errc::closed) when the queue is
    /// closed (the value was not taken); a cancellation point.
    class [[nodiscard]] push_awaiter : detail::sync_waiter {
    public:
        /// @cond CORIO_INTERNAL
        push_awaiter(queue& q, T&& v) : q_(&q), value_(std::move(v)) {}
        bool await_ready() {
            if (q_->closed_) return true;  // thrown in await_resume
            if (q_->hand_to_popper(value_) || q_->store(value_)) {
                taken_ = true;
                return true;
            }
            return false;
        }
        template <class Promise>
        bool await_suspend(std::coroutine_handle<Promise> h) {
            return enqueue(q_->pushers_, h);
        }
        void await_resume() const {
            wait.throw_if_cancelled();
            if (!taken_) throw std::system_error(io_errc::closed, "corio: queue::push: the queue is closed");
        }
        /// @endcond

    private:
        friend class queue;
        queue* q_;
        T value_;
        bool taken_ = false;
    };

    /// What pop() returns: the oldest item, or std::nullopt once closed and drained; a
    /// cancellation point (an item handed over before the cancel goes back to the queue).
    class [[nodiscard]] pop_awaiter : detail::sync_waiter {
    public:
        /// @cond CORIO_INTERNAL
        explicit pop_awaiter(queue& q) noexcept : q_(&q) {}
        bool await_ready() {
            slot_ = q_->take();
            return slot_.has_value() || q_->closed_;
        }
        template <class Promise>
        bool await_suspend(std::coroutine_handle<Promise> h) {
            return enqueue(q_->poppers_, h);
        }
        /// The oldest item, or std::nullopt once the queue is closed and empty.
        std::optional<T> await_resume() {
            wait.throw_if_cancelled();
            if (slot_.has_value() && cancelled_after_handoff()) {
                q_->give_back(*slot_);  // to the next popper, or the front of the queue
                throw_cancelled(wait.node);
            }
            return std::move(slot_);
        }
        /// @endcond

    private:
        friend class queue;
        queue* q_;
        std::optional<T> slot_;
    };

    /// Adds v, waiting while the queue is full.
    push_awaiter push(T v) { return push_awaiter(*this, std::move(v)); }
    /// The oldest item, waiting while the queue is empty; std::nullopt once closed and drained.
    pop_awaiter pop() noexcept { return pop_awaiter(*this); }

    /// Adds v if there is room now; false (v untouched) when full or closed.
    bool try_push(T& v) {
        if (closed_) return false;
        return hand_to_popper(v) || store(v);
    }
    /// As try_push(T&): v is moved from only if it was taken.
    bool try_push(T&& v) { return try_push(v); }
    /// The oldest item if there is one now.
    std::optional<T> try_pop() { return take(); }

    /// Ends the queue: waiting pushers throw, waiting poppers get std::nullopt; items
    /// already queued can still be popped.
    void close() noexcept {
        closed_ = true;
        pushers_.wake_all();  // not taken_: they throw
        poppers_.wake_all();  // the queue is empty if they wait: they get nullopt
    }

    /// True once close() was called.
    [[nodiscard]] bool closed() const noexcept { return closed_; }
    /// Items queued now.
    [[nodiscard]] std::size_t size() const noexcept { return items_.size(); }
    /// True when no item is queued.
    [[nodiscard]] bool empty() const noexcept { return items_.empty(); }
    /// True when a push would wait (never for an unbounded queue).
    [[nodiscard]] bool full() const noexcept { return capacity_ != 0 && items_.size() >= capacity_; }
    /// The capacity given at construction; 0 for unbounded.
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

private:
    bool hand_to_popper(T& v) {
        detail::sync_waiter* w = poppers_.pop_front();
        if (w == nullptr) return false;
        auto* p = static_cast<pop_awaiter*>(w);
        p->slot_.emplace(std::move(v));
        p->wake();
        return true;
    }

    // An item handed to a popper that was cancelled before it resumed: it goes to the
    // next popper, or back to the front of the queue (possibly one over capacity for a
    // while: nothing is dropped).
    void give_back(T& v) {
        if (!hand_to_popper(v)) items_.push_front(std::move(v));
    }

    bool store(T& v) {
        if (full()) return false;
        items_.push_back(std::move(v));
        return true;
    }

    // The oldest item; its place goes to the oldest waiting pusher.
    std::optional<T> take() {
        if (items_.empty()) return std::nullopt;
        std::optional<T> out(std::move(items_.front()));
        items_.pop_front();
        if (detail::sync_waiter* w = pushers_.pop_front()) {
            auto* p = static_cast<push_awaiter*>(w);
            items_.push_back(std::move(p->value_));
            p->taken_ = true;
            p->wake();
        }
        return out;
    }

    std::deque<T> items_;
    detail::waiter_list pushers_;
    detail::waiter_list poppers_;
    std::size_t capacity_;
    bool closed_ = false;
};

}  // namespace corio
