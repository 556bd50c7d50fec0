#pragma once
// A task_node is the unit of cancellation: asyncio's Task. Every coroutine awaited
// inside a task shares its node; spawn, gather, wait_for, shield and task_group
// start their children on nodes of their own.

#include <coroutine>
#include <cstdint>
#include <memory>
#include <stop_token>
#include <string>
#include <utility>

#include <corio/errors.hpp>

namespace corio::detail {

/// What a suspended task waits on, as a function that can abandon the wait.
/// The hook must never resume anything inline: it removes the waiter (or asks the
/// kernel to) and schedules the resumption through the loop.
struct cancel_hook {
    void (*fn)(void* ctx) noexcept = nullptr;
    void* ctx = nullptr;
};

/// Told when its node is cancelled level-triggered (a task group whose body runs on the
/// node: the scope's cancel reaches its children at once, whatever the body awaits).
/// Listeners on one node nest (awaits in a node are sequential): a stack.
struct cancel_listener {
    void (*fn)(cancel_listener*) noexcept = nullptr;
    cancel_listener* next = nullptr;
};

struct task_node {
    cancel_hook hook_{};
    cancel_listener* listeners_ = nullptr;
    // Cancel requests made and not withdrawn (asyncio's Task.cancelling()): a group or
    // scope that swallows a cancel it sent withdraws it, and then sees whether any came
    // from elsewhere.
    std::uint32_t cancel_requests_ = 0;
    // The flags are bits: with the count they take one word of a node, which every task
    // and every combinator's child carries.
    //
    // A cancel request not yet delivered as cancelled_error. It survives a wait that
    // completed before the cancel reached it, and fires at the next suspension point
    // (or, for a spawned task, ends the task cancelled if it returns first).
    bool cancel_pending_ : 1 = false;
    // Level-triggered (a cancel scope's body): once cancelled, every suspension point
    // throws, delivery does not consume the request.
    bool sticky_ : 1 = false;
    bool finished_ : 1 = false;
    bool owner_cancelled_ : 1 = false;  // see cancel_from_owner
    bool is_task_ : 1 = false;          // a spawned task (a live_task), not a combinator's child
    bool started_ : 1 = false;          // a spawned task's first step has run (kept here, where flags pack)
    // Called by the final awaiter of the node's root coroutine; returns what to resume.
    std::coroutine_handle<> (*on_finish_)(task_node*) noexcept = nullptr;
    // Names are looked up through parents (a gather child reports its parent's name);
    // only spawned tasks (live_task) carry one.
    task_node* parent_ = nullptr;
    // Made on demand by current_stop_token(); requested with the first cancel.
    std::unique_ptr<std::stop_source> stop_;

    task_node() = default;
    task_node(const task_node&) = delete;
    task_node& operator=(const task_node&) = delete;

    /// Asks the task to stop at its current (or next) suspension point.
    /// Returns false if the task has already finished.
    bool request_cancel() noexcept {
        if (finished_) return false;
        ++cancel_requests_;
        cancel_pending_ = true;
        if (hook_.fn != nullptr) {
            cancel_hook h = std::exchange(hook_, cancel_hook{});
            h.fn(h.ctx);
        }
        if (sticky_)
            for (cancel_listener* l = listeners_; l != nullptr; l = l->next) l->fn(l);
        if (stop_ != nullptr) stop_->request_stop();
        return true;
    }

    void push_listener(cancel_listener* l) noexcept {
        l->next = listeners_;
        listeners_ = l;
    }
    void pop_listener(cancel_listener* l) noexcept {
        if (listeners_ == l) listeners_ = l->next;
        l->next = nullptr;
    }

    /// Withdraws one request (asyncio's Task.uncancel()); returns the requests left.
    std::uint32_t uncancel() noexcept {
        if (cancel_requests_ > 0) --cancel_requests_;
        return cancel_requests_;
    }

    /// The cancel a combinator, group, scope or shutting-down loop sends a child it
    /// abandons. Edge-triggered: once only, so a child that caught it can await during its
    /// cleanup undisturbed. Level-triggered (`sticky`, a cancelled scope and everything
    /// inside it): every later suspension point throws too.
    void cancel_from_owner(bool sticky = false) noexcept {
        if (sticky) {
            if (sticky_) return;
            sticky_ = true;
            owner_cancelled_ = true;
            request_cancel();
            return;
        }
        if (owner_cancelled_) return;
        owner_cancelled_ = true;
        request_cancel();
    }
    void cancel_once() noexcept { cancel_from_owner(false); }

    /// True when the node is cancelled level-triggered (its children inherit that).
    [[nodiscard]] bool cancelled_sticky() const noexcept { return sticky_ && cancel_pending_; }

    /// Called by an awaiter about to suspend: true when a cancel is pending, which the
    /// awaiter then delivers instead of suspending (the request is consumed, unless the
    /// node is level-triggered).
    bool take_pending_cancel() noexcept {
        if (!cancel_pending_) return false;
        if (!sticky_) cancel_pending_ = false;
        return true;
    }

    /// Drops an undelivered request (a group withdrawing its own); a level-triggered
    /// cancel stays.
    void clear_pending() noexcept {
        if (!sticky_) cancel_pending_ = false;
    }

    void arm(void (*fn)(void*) noexcept, void* ctx) noexcept { hook_ = cancel_hook{fn, ctx}; }
    void disarm(const void* ctx) noexcept {
        if (hook_.ctx == ctx) hook_ = cancel_hook{};
    }

    /// A stop_token that is requested when this task is cancelled.
    std::stop_token stop_token() {
        if (stop_ == nullptr) {
            stop_ = std::make_unique<std::stop_source>();
            if (cancel_requests_ > 0) stop_->request_stop();
        }
        return stop_->get_token();
    }

    /// The name of the spawned task this node runs in (defined with live_task, in
    /// event_loop.hpp).
    [[nodiscard]] std::string describe() const;
};

/// Delivers a cancellation at a suspension point: consumes the node's pending request
/// (unless it is level-triggered).
[[noreturn]] inline void throw_cancelled(task_node* node) {
    if (node != nullptr) node->clear_pending();
    throw cancelled_error();
}

}  // namespace corio::detail
