#pragma once
// Min-heap of timers keyed by (deadline, sequence): equal deadlines fire in the order
// they were set. Entries live in the awaiting coroutine frame; each knows its slot so
// a cancelled timer leaves the heap in O(log n).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace corio::detail {

using clock = std::chrono::steady_clock;

struct timer_entry {
    static constexpr std::size_t npos = ~std::size_t{0};
    clock::time_point deadline{};
    std::uint64_t seq = 0;
    std::size_t slot = npos;
    void (*fire)(timer_entry*) noexcept = nullptr;

    [[nodiscard]] bool armed() const noexcept { return slot != npos; }
};

class timer_heap {
public:
    [[nodiscard]] bool empty() const noexcept { return heap_.empty(); }
    [[nodiscard]] std::size_t size() const noexcept { return heap_.size(); }
    [[nodiscard]] timer_entry* top() const noexcept { return heap_.front().entry; }
    [[nodiscard]] clock::time_point next_deadline() const noexcept { return heap_.front().deadline; }

    void push(timer_entry* e) {
        e->seq = next_seq_++;
        heap_.push_back(node{e->deadline, e->seq, e});
        e->slot = heap_.size() - 1;
        sift_up(e->slot);
    }

    void erase(timer_entry* e) noexcept {
        const std::size_t i = e->slot;
        e->slot = timer_entry::npos;
        const std::size_t last = heap_.size() - 1;
        if (i != last) {
            heap_[i] = heap_[last];
            heap_[i].entry->slot = i;
            heap_.pop_back();
            if (i > 0 && less(heap_[i], heap_[(i - 1) / 2]))
                sift_up(i);
            else
                sift_down(i);
        } else {
            heap_.pop_back();
        }
    }

    timer_entry* pop() noexcept {
        timer_entry* e = heap_.front().entry;
        erase(e);
        return e;
    }

private:
    // The key is copied into the heap so comparisons do not touch the frames.
    struct node {
        clock::time_point deadline;
        std::uint64_t seq;
        timer_entry* entry;
    };

    static bool less(const node& a, const node& b) noexcept {
        return a.deadline < b.deadline || (a.deadline == b.deadline && a.seq < b.seq);
    }

    void sift_up(std::size_t i) noexcept {
        node n = heap_[i];
        while (i > 0) {
            const std::size_t parent = (i - 1) / 2;
            if (!less(n, heap_[parent])) break;
            heap_[i] = heap_[parent];
            heap_[i].entry->slot = i;
            i = parent;
        }
        heap_[i] = n;
        n.entry->slot = i;
    }

    void sift_down(std::size_t i) noexcept {
        const std::size_t n = heap_.size();
        node x = heap_[i];
        for (;;) {
            std::size_t child = 2 * i + 1;
            if (child >= n) break;
            if (child + 1 < n && less(heap_[child + 1], heap_[child])) ++child;
            if (!less(heap_[child], x)) break;
            heap_[i] = heap_[child];
            heap_[i].entry->slot = i;
            i = child;
        }
        heap_[i] = x;
        x.entry->slot = i;
    }

    std::vector<node> heap_;
    std::uint64_t next_seq_ = 0;
};

}  // namespace corio::detail
