#pragma once
// Min-heap of timers keyed by (deadline, sequence): equal deadlines fire in the order
// they were set. Entries live in the awaiting coroutine frame; each knows its slot so
// a cancelled timer leaves the heap in O(log n).
//
// Also the deadline arithmetic every timed wait shares: a duration of any unit turned
// into nanoseconds, and now + d, both saturating instead of overflowing (undefined
// behaviour, and a deadline in the past for hours::max()).

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <ratio>
#include <type_traits>
#include <utility>
#include <vector>

namespace corio::detail {

using clock = std::chrono::steady_clock;

/// d in nanoseconds, rounded up (a wait never ends early), saturated at
/// nanoseconds::min() and max() where it does not fit: std::chrono::ceil would overflow
/// for hours::max() or duration<double>(1e300). +inf and NaN give max(), -inf min().
template <class Rep, class Period>
std::chrono::nanoseconds saturating_ceil(std::chrono::duration<Rep, Period> d) noexcept {
    using ns = std::chrono::nanoseconds;
    using per_tick = std::ratio_divide<Period, std::nano>;  // nanoseconds per tick
    constexpr ns::rep top = std::numeric_limits<ns::rep>::max();
    if constexpr (std::is_floating_point_v<Rep> || (per_tick::num != 1 && per_tick::den != 1)) {
        // Floating ticks, or odd ones (a third of a second): in long double, whose range
        // holds any of them (and whose 64-bit mantissa on x86 holds any nanosecond count).
        const long double x = static_cast<long double>(d.count()) * per_tick::num / per_tick::den;
        if (!(x < static_cast<long double>(top))) return ns::max();
        if (x <= static_cast<long double>(ns::min().count())) return ns::min();
        return ns(static_cast<ns::rep>(std::ceil(x)));
    } else if constexpr (per_tick::den == 1) {
        // Whole nanoseconds per tick (ns up to years): exact, unless it overflows.
        constexpr ns::rep most = top / per_tick::num;  // the most ticks that fit
        if (std::cmp_greater(d.count(), most)) return ns::max();
        if (std::cmp_less(d.count(), -most)) return ns::min();
        return ns(static_cast<ns::rep>(d.count()) * per_tick::num);
    } else {
        // Ticks finer than a nanosecond: a division, rounded up.
        const Rep whole = d.count() / per_tick::den;
        const bool part = d.count() % per_tick::den > 0;
        if (std::cmp_greater_equal(whole, top)) return ns::max();
        if (std::cmp_less(whole, ns::min().count())) return ns::min();
        return ns(static_cast<ns::rep>(whole) + (part ? 1 : 0));
    }
}

/// The deadline d from now: time_point::max() ("never") where now + d would overflow,
/// and time_point::min() for d <= 0, a deadline passed already.
inline clock::time_point deadline_after(std::chrono::nanoseconds d) noexcept {
    if (d.count() <= 0) return clock::time_point::min();
    const auto now = clock::now();
    if (d > clock::time_point::max() - now) return clock::time_point::max();
    return now + d;
}

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
        // Deadlines before the clock's epoch (time_point::min() for an expired timeout)
        // have all passed: keyed at the epoch, so that the loop's `deadline - now` cannot
        // overflow. (The steady clock counts from boot: now is never below its epoch.)
        const clock::time_point key = e->deadline < clock::time_point{} ? clock::time_point{} : e->deadline;
        heap_.push_back(node{key, e->seq, e});
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
