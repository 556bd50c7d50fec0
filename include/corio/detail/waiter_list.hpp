#pragma once
// The waiters of a coordination primitive: an intrusive FIFO of awaiters living in
// the waiting frames. A cancelled waiter unlinks itself; the primitive wakes waiters
// front first, so every primitive is fair.

#include <coroutine>

#include <corio/detail/suspension.hpp>

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
        for (sync_waiter* w = head_; w != nullptr; w = w->next) w->list = nullptr;
    }

    [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }
    [[nodiscard]] sync_waiter* front() const noexcept { return head_; }

    void push_back(sync_waiter* w) noexcept {
        w->list = this;
        w->next = nullptr;
        w->prev = tail_;
        if (tail_ != nullptr)
            tail_->next = w;
        else
            head_ = w;
        tail_ = w;
    }

    void remove(sync_waiter* w) noexcept {
        if (w->prev != nullptr)
            w->prev->next = w->next;
        else
            head_ = w->next;
        if (w->next != nullptr)
            w->next->prev = w->prev;
        else
            tail_ = w->prev;
        w->prev = w->next = nullptr;
        w->list = nullptr;
    }

    sync_waiter* pop_front() noexcept {
        sync_waiter* w = head_;
        if (w != nullptr) remove(w);
        return w;
    }

    /// Wakes every waiter, oldest first.
    void wake_all() noexcept {
        while (sync_waiter* w = pop_front()) w->wake();
    }

private:
    sync_waiter* head_ = nullptr;
    sync_waiter* tail_ = nullptr;
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
