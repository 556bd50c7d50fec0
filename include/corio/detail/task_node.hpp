#pragma once
// A task_node is the unit of cancellation: asyncio's Task. Every coroutine awaited
// inside a task shares its node; spawn, gather, wait_for, shield and task_group
// start their children on nodes of their own.

#include <coroutine>
#include <cstdint>
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

struct task_node {
    cancel_hook hook_{};
    // A cancel request not yet delivered as cancelled_error. It survives a wait that
    // completed before the cancel reached it, and fires at the next suspension point.
    bool cancel_pending_ = false;
    bool finished_ = false;
    bool owner_cancelled_ = false;  // see cancel_once
    // Called by the final awaiter of the node's root coroutine; returns what to resume.
    std::coroutine_handle<> (*on_finish_)(task_node*) noexcept = nullptr;
    // Names are looked up through parents (a gather child reports its parent's name).
    task_node* parent_ = nullptr;
    const std::string* name_ = nullptr;
    std::uint64_t id_ = 0;  // spawned tasks without a name are called "task-<id>"
    bool is_task_ = false;  // a spawned task (a live_task), not a combinator's child

    /// Asks the task to stop at its current (or next) suspension point.
    /// Returns false if the task has already finished.
    bool request_cancel() noexcept {
        if (finished_) return false;
        cancel_pending_ = true;
        if (hook_.fn != nullptr) {
            cancel_hook h = std::exchange(hook_, cancel_hook{});
            h.fn(h.ctx);
        }
        return true;
    }

    /// The cancel a combinator, group or shutting-down loop sends a child it abandons:
    /// once only, so a child that caught it can await during its cleanup undisturbed.
    void cancel_once() noexcept {
        if (owner_cancelled_) return;
        owner_cancelled_ = true;
        request_cancel();
    }

    /// Called by an awaiter about to suspend: true when a cancel is pending, which the
    /// awaiter then delivers instead of suspending (the request is consumed).
    bool take_pending_cancel() noexcept { return std::exchange(cancel_pending_, false); }

    void arm(void (*fn)(void*) noexcept, void* ctx) noexcept { hook_ = cancel_hook{fn, ctx}; }
    void disarm(const void* ctx) noexcept {
        if (hook_.ctx == ctx) hook_ = cancel_hook{};
    }

    [[nodiscard]] std::string describe() const {
        for (const task_node* n = this; n != nullptr; n = n->parent_) {
            if (n->name_ != nullptr && !n->name_->empty()) return *n->name_;
            if (n->is_task_) return "task-" + std::to_string(n->id_);  // made only when asked
        }
        return "<unnamed task>";
    }
};

/// Delivers a cancellation at a suspension point: consumes the node's pending request.
[[noreturn]] inline void throw_cancelled(task_node* node) {
    if (node != nullptr) node->cancel_pending_ = false;
    throw cancelled_error();
}

}  // namespace corio::detail
