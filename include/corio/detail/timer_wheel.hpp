#pragma once
// The loop's timers: a hierarchical timing wheel of intrusive entries that live in the
// awaiting coroutine frames (no allocation, no array beside them). Arming and cancelling
// are O(1) however many timers there are; the wheel's slots only sort entries coarsely,
// the exact deadline decides: nothing fires early, equal deadlines fire in the order they
// were set, a deadline of time_point::max() never fires, one already passed fires at the
// next turn.
//
// Also the deadline arithmetic every timed wait shares: a duration of any unit turned
// into nanoseconds, and now + d, both saturating instead of overflowing (undefined
// behaviour, and a deadline in the past for hours::max()).

#include <algorithm>
#include <chrono>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <ratio>
#include <type_traits>
#include <utility>

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

/// One timer: the deadline and what firing does; the rest is the wheel's.
struct timer_entry {
    clock::time_point deadline{};
    void (*fire)(timer_entry*) noexcept = nullptr;

    [[nodiscard]] bool armed() const noexcept { return pprev_ != nullptr; }

private:
    friend class timer_wheel;
    timer_entry* next_ = nullptr;
    timer_entry** pprev_ = nullptr;  // the pointer that points at this entry; null: not armed
    std::uint64_t seq_ = 0;          // the order it was set in, among equal deadlines
};

/// Levels of 64 slots. A level-0 slot spans one tick of 2^20 ns (about a millisecond), a
/// level-k slot 64^k ticks; eight levels span every deadline the clock can express. An
/// entry goes to the level where its tick first differs from the wheel's current tick,
/// and moves down a level (cascades) when the wheel reaches its slot. Occupancy bitmaps
/// find the next slot in a few instructions.
class timer_wheel {
public:
    static constexpr int tick_shift = 20;
    static constexpr int level_bits = 6;
    static constexpr int levels = 8;  // 20 + 8 * 6 bits > the 63 of a deadline
    static constexpr std::size_t slots = std::size_t{1} << level_bits;

    timer_wheel() = default;
    timer_wheel(const timer_wheel&) = delete;
    timer_wheel& operator=(const timer_wheel&) = delete;

    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }

    void push(timer_entry* e) noexcept {
        e->seq_ = next_seq_++;
        ++size_;
        if (e->deadline == clock::time_point::max()) {
            link(&never_, e);  // never fires; kept only so that it can be cancelled
            return;
        }
        place(e);
    }

    void erase(timer_entry* e) noexcept {
        unlink(e);
        --size_;
    }

    /// The earliest deadline of an armed timer (time_point::max() when only "never" ones
    /// are): exact within the current millisecond, where the loop could otherwise spin;
    /// further on, a higher level's slot gives its start, the loop wakes there once and
    /// the slot moves down.
    [[nodiscard]] clock::time_point next_deadline() const noexcept {
        if (due_ != nullptr || expired_ != nullptr) return clock::time_point{};
        for (int k = 0; k < levels; ++k) {
            if (occupied_[k] == 0) continue;
            const auto s = static_cast<std::size_t>(std::countr_zero(occupied_[k]));
            if (k == 0) {
                clock::time_point best = clock::time_point::max();
                for (const timer_entry* e = slot_[0][s]; e != nullptr; e = e->next_) best = std::min(best, e->deadline);
                // Never before the epoch (time_point::min() for an expired timeout): the
                // loop's `deadline - now` must not overflow.
                return std::max(best, clock::time_point{});
            }
            return from_tick(slot_start(k, s));
        }
        return clock::time_point::max();
    }

    /// Moves every timer due at `now` to the due list, in (deadline, order set) order; the
    /// loop then fires them with pop_due(). Timers armed while they fire wait for the
    /// next collect: a callback that re-arms itself at once cannot starve the loop.
    void collect_due(clock::time_point now) noexcept {
        const std::uint64_t target = to_tick(now);
        timer_entry* due = nullptr;  // a chain through next_, sorted below
        take_due(&expired_, now, due);
        for (;;) {
            int k = 0;
            while (k < levels && occupied_[k] == 0) ++k;
            if (k == levels) break;
            const auto s = static_cast<std::size_t>(std::countr_zero(occupied_[k]));
            const std::uint64_t start = slot_start(k, s);
            if (start > target) break;
            elapsed_ = start;
            if (k == 0) {
                take_due(&slot_[0][s], now, due);  // leaves the entries of this tick not yet due
                if (start == target) break;
                continue;
            }
            // The wheel reaches this slot: its entries move to lower levels.
            timer_entry* e = slot_[k][s];
            slot_[k][s] = nullptr;
            occupied_[k] &= ~(std::uint64_t{1} << s);
            while (e != nullptr) {
                timer_entry* next = e->next_;
                place(e);
                e = next;
            }
        }
        elapsed_ = std::max(elapsed_, target);
        // Appended after any still due from an earlier collect (none, when the loop fires
        // them all before collecting again).
        timer_entry** tail = &due_;
        while (*tail != nullptr) tail = &(*tail)->next_;
        for (timer_entry* e = sort(due); e != nullptr; e = e->next_) {
            e->pprev_ = tail;
            *tail = e;
            tail = &e->next_;
        }
    }

    /// The next due timer, unlinked (nullptr when none is left): firing one may cancel
    /// another, which then simply leaves the due list.
    timer_entry* pop_due() noexcept {
        timer_entry* e = due_;
        if (e != nullptr) erase(e);
        return e;
    }

    /// Any armed timer, unlinked (nullptr when none is left): for discarding them all.
    timer_entry* pop_any() noexcept {
        timer_entry* lists[] = {due_, expired_, never_};
        for (timer_entry* e : lists)
            if (e != nullptr) {
                erase(e);
                return e;
            }
        for (int k = 0; k < levels; ++k)
            if (occupied_[k] != 0) {
                timer_entry* e = slot_[k][std::countr_zero(occupied_[k])];
                erase(e);
                return e;
            }
        return nullptr;
    }

private:
    static std::uint64_t to_tick(clock::time_point t) noexcept {
        const auto ns = t.time_since_epoch().count();
        // Before the clock's epoch (time_point::min() for an expired timeout): passed
        // already. (The steady clock counts from boot: now is never below its epoch.)
        return ns <= 0 ? 0 : static_cast<std::uint64_t>(ns) >> tick_shift;
    }
    static clock::time_point from_tick(std::uint64_t tick) noexcept {
        return clock::time_point(clock::duration(static_cast<clock::rep>(tick << tick_shift)));
    }
    // The first tick of slot s of level k, in the wheel's current turn of that level.
    [[nodiscard]] std::uint64_t slot_start(int k, std::size_t s) const noexcept {
        const int shift = level_bits * k;
        const int above = shift + level_bits;
        const std::uint64_t high = above >= 64 ? 0 : (elapsed_ >> above) << above;
        return high | (static_cast<std::uint64_t>(s) << shift);
    }

    // Files an entry by its tick, relative to the wheel's current tick.
    void place(timer_entry* e) noexcept {
        const std::uint64_t t = to_tick(e->deadline);
        if (t < elapsed_) {
            link(&expired_, e);  // passed already: due at the next collect
            return;
        }
        const std::uint64_t differing = (t ^ elapsed_) | (slots - 1);
        const int k = (63 - std::countl_zero(differing)) / level_bits;
        const auto s = static_cast<std::size_t>((t >> (level_bits * k)) & (slots - 1));
        link(&slot_[k][s], e);
        occupied_[k] |= std::uint64_t{1} << s;
    }

    static void link(timer_entry** head, timer_entry* e) noexcept {
        e->next_ = *head;
        if (*head != nullptr) (*head)->pprev_ = &e->next_;
        e->pprev_ = head;
        *head = e;
    }

    void unlink(timer_entry* e) noexcept {
        *e->pprev_ = e->next_;
        if (e->next_ != nullptr) e->next_->pprev_ = e->pprev_;
        // The last entry of a slot gone: the slot is empty. A slot's head lies in slot_, so
        // the pointer that pointed at the entry says which slot it was.
        const auto at = reinterpret_cast<std::uintptr_t>(e->pprev_);
        const auto first = reinterpret_cast<std::uintptr_t>(&slot_[0][0]);
        if (e->next_ == nullptr && at >= first && at < first + sizeof(slot_)) {
            const std::size_t i = (at - first) / sizeof(timer_entry*);
            if (slot_[i / slots][i % slots] == nullptr) occupied_[i / slots] &= ~(std::uint64_t{1} << (i % slots));
        }
        e->next_ = nullptr;
        e->pprev_ = nullptr;
    }

    // Moves the entries of a list that are due at `now` to the chain `due` (still counted
    // as armed: collect_due links them into the due list).
    void take_due(timer_entry** head, clock::time_point now, timer_entry*& due) noexcept {
        timer_entry* e = *head;
        while (e != nullptr) {
            timer_entry* next = e->next_;
            if (e->deadline <= now) {
                unlink(e);
                e->pprev_ = &due;  // armed still; set again once sorted
                e->next_ = due;
                due = e;
            }
            e = next;
        }
    }

    static bool before(const timer_entry* a, const timer_entry* b) noexcept {
        return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq_ < b->seq_);
    }
    static timer_entry* merge(timer_entry* a, timer_entry* b) noexcept {
        timer_entry* head = nullptr;
        timer_entry** tail = &head;
        while (a != nullptr && b != nullptr) {
            timer_entry*& first = before(b, a) ? b : a;
            *tail = first;
            tail = &first->next_;
            first = first->next_;
        }
        *tail = a != nullptr ? a : b;
        return head;
    }
    // A merge sort of a chain, bottom-up: bins[i] holds a sorted run of 2^i entries. No
    // allocation, so firing timers cannot fail.
    static timer_entry* sort(timer_entry* chain) noexcept {
        // Often in order already (sleeps armed one after another): one pass tells.
        bool sorted = true;
        for (const timer_entry* e = chain; sorted && e != nullptr && e->next_ != nullptr; e = e->next_)
            sorted = !before(e->next_, e);
        if (sorted) return chain;
        timer_entry* bins[64] = {};
        while (chain != nullptr) {
            timer_entry* run = chain;
            chain = chain->next_;
            run->next_ = nullptr;
            int i = 0;
            for (; bins[i] != nullptr; ++i) {
                run = merge(bins[i], run);
                bins[i] = nullptr;
            }
            bins[i] = run;
        }
        timer_entry* out = nullptr;
        for (timer_entry* b : bins) out = merge(b, out);
        return out;
    }

    timer_entry* slot_[levels][slots]{};
    std::uint64_t occupied_[levels]{};
    std::uint64_t elapsed_ = 0;  // the wheel's current tick
    timer_entry* expired_ = nullptr;
    timer_entry* due_ = nullptr;
    timer_entry* never_ = nullptr;
    std::size_t size_ = 0;
    std::uint64_t next_seq_ = 0;
};

}  // namespace corio::detail
