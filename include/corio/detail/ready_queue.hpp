#pragma once
// The loop's run queue: a growable ring of small work items. Steady state makes no
// allocation; it doubles when full.

#include <coroutine>
#include <cstddef>
#include <memory>

#include <corio/detail/task_node.hpp>

namespace corio::detail {

/// A callback kept outside the queue (call_soon's larger callables, done callbacks): one
/// function runs it or only drops it, then frees it. No virtual call, no std::function.
struct callback_node {
    void (*invoke)(callback_node* self, bool run) noexcept = nullptr;
    callback_node* next = nullptr;  // in a future's list of done callbacks
};

struct work_item {
    void (*fn)(void* arg) noexcept = nullptr;  // nullptr: arg is a coroutine handle to resume
    void* arg = nullptr;
    task_node* node = nullptr;  // the task this step belongs to (for names and debug)
};

class ready_queue {
public:
    ready_queue() : buf_(std::make_unique<work_item[]>(64)), mask_(63) {}

    [[nodiscard]] bool empty() const noexcept { return head_ == tail_; }
    [[nodiscard]] std::size_t size() const noexcept { return tail_ - head_; }

    void push(const work_item& w) {
        if (tail_ - head_ == mask_ + 1) grow();
        buf_[tail_++ & mask_] = w;
    }

    work_item pop() noexcept { return buf_[head_++ & mask_]; }

private:
    void grow() {
        const std::size_t cap = mask_ + 1;
        auto bigger = std::make_unique<work_item[]>(cap * 2);
        for (std::size_t i = 0; i < cap; ++i) bigger[i] = buf_[(head_ + i) & mask_];
        buf_ = std::move(bigger);
        head_ = 0;
        tail_ = cap;
        mask_ = cap * 2 - 1;
    }

    std::unique_ptr<work_item[]> buf_;
    std::size_t mask_;
    std::size_t head_ = 0;
    std::size_t tail_ = 0;
};

}  // namespace corio::detail
