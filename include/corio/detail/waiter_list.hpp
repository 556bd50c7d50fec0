#pragma once
// The waiters of a future or a coordination primitive: an intrusive FIFO of awaiters
// living in the waiting frames. A cancelled waiter unlinks itself; the primitive wakes waiters
// front first, so every primitive is fair.

#include <coroutine>

#include <corio/detail/intrusive_fifo.hpp>
#include <corio/detail/suspension_type.hpp>

namespace corio::detail {

class waiter_list;

struct sync_waiter {
    sync_waiter* prev = nullptr;
    sync_waiter* next = nullptr;
    waiter_list* list = nullptr;  // set while queued
    suspension wait;

    sync_waiter() = default;
    // Awaiters are movable until awaited; a queued waiter never moves.
    sync_waiter(const sync_waiter&) noexcept {}
    sync_waiter& operator=(const sync_waiter&) = delete;

    /// Queues on list and suspends; false: a pending cancel is to be delivered now.
    template <class Promise>
    bool enqueue(waiter_list& on, std::coroutine_handle<Promise> h);

    /// The default cancel: leave the queue and resume with cancelled_error.
    static void on_cancel(void* self) noexcept;

    /// Resumes the waiter; it has already been unlinked.
    void wake() noexcept { wait.wake(this); }

    /// In await_resume of a wait that was handed something (a unit, an item, the mutex):
    /// true when a cancel reached the task after the hand-off, before it resumed. The
    /// awaiter then gives what it was handed to the next in line and throws, so that a
    /// task ending cancelled never takes a value with it (asyncio hands it on too).
    [[nodiscard]] bool cancelled_after_handoff() const noexcept {
        return wait.node != nullptr && wait.node->cancel_pending_;
    }
};

class waiter_list {
public:
    waiter_list() = default;
    waiter_list(const waiter_list&) = delete;
    waiter_list& operator=(const waiter_list&) = delete;
    // A primitive destroyed while tasks still wait on it: they stay suspended until they
    // are cancelled (the loop cancels everything left when run() ends), and must not
    // touch the list on their way out.
    ~waiter_list() {
        for (sync_waiter* w = fifo_.front(); w != nullptr; w = w->next) w->list = nullptr;
    }

    [[nodiscard]] bool empty() const noexcept { return fifo_.empty(); }

    void push_back(sync_waiter* w) noexcept {
        w->list = this;
        fifo_.push_back(w);
    }

    void remove(sync_waiter* w) noexcept {
        fifo_.remove(w);
        w->list = nullptr;
    }

    sync_waiter* pop_front() noexcept {
        sync_waiter* w = fifo_.pop_front();
        if (w != nullptr) w->list = nullptr;
        return w;
    }

    /// Wakes every waiter, oldest first.
    void wake_all() noexcept {
        while (sync_waiter* w = pop_front()) w->wake();
    }

private:
    intrusive_fifo<sync_waiter> fifo_;
};

template <class Promise>
bool sync_waiter::enqueue(waiter_list& on, std::coroutine_handle<Promise> h) {
    if (!wait.begin(h)) return false;
    on.push_back(this);
    wait.arm(&on_cancel, this);
    return true;
}

inline void sync_waiter::on_cancel(void* self) noexcept {
    auto* me = static_cast<sync_waiter*>(self);
    if (me->list != nullptr) me->list->remove(me);
    me->wait.wake_cancelled();
}

}  // namespace corio::detail

// The definitions the inline functions above call (they need the whole event_loop, whose
// future.hpp needs the types above: hence last).
#include <corio/detail/suspension.hpp>
