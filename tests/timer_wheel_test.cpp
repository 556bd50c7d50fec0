// The loop's timing wheel on its own, driven by hand with time points of our choosing:
// exact deadlines across its levels, cascades, cancels, ordering, a million timers.

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include <corio/detail/timer_wheel.hpp>

namespace {

using corio::detail::clock;
using corio::detail::timer_entry;
using corio::detail::timer_wheel;
using ns = std::chrono::nanoseconds;

constexpr std::int64_t tick = std::int64_t{1} << timer_wheel::tick_shift;

struct probe : timer_entry {
    int id = 0;
    std::vector<int>* log = nullptr;
    static void on_fire(timer_entry* e) noexcept {
        auto* p = static_cast<probe*>(e);
        p->log->push_back(p->id);
    }
};

struct rig {
    timer_wheel wheel;
    std::vector<int> log;
    std::vector<std::unique_ptr<probe>> probes;
    clock::time_point now = clock::time_point(ns(std::int64_t{1} << 40));  // about 18 minutes after boot

    probe& arm(clock::time_point deadline) {
        probes.push_back(std::make_unique<probe>());
        probe& p = *probes.back();
        p.id = static_cast<int>(probes.size()) - 1;
        p.log = &log;
        p.deadline = deadline;
        p.fire = &probe::on_fire;
        wheel.push(&p);
        return p;
    }
    probe& arm_in(std::int64_t d) { return arm(now + ns(d)); }

    // One turn of the loop at `t`: what fires, in order.
    std::vector<int> turn(clock::time_point t) {
        now = t;
        log.clear();
        wheel.collect_due(now);
        while (timer_entry* e = wheel.pop_due()) e->fire(e);
        return log;
    }
};

}  // namespace

TEST_CASE("timer wheel: a timer fires at its exact deadline, never a nanosecond before") {
    rig r;
    const auto t0 = r.now;
    // Within the current tick, the next, a level up, and several levels up.
    const std::int64_t offsets[] = {1,
                                    tick / 2,
                                    tick + 3,
                                    63 * tick + 1,
                                    64 * tick + 5,
                                    4096 * tick + 7,
                                    262144 * tick + 11,
                                    std::int64_t{1} << 50};
    for (auto d : offsets) r.arm(t0 + ns(d));
    for (std::size_t i = 0; i < std::size(offsets); ++i) {
        const auto deadline = t0 + ns(offsets[i]);
        CHECK(r.turn(deadline - ns(1)).empty());
        CHECK(r.wheel.next_deadline() <= deadline);  // the loop would wake by then
        CHECK(r.turn(deadline) == std::vector<int>{static_cast<int>(i)});
    }
    CHECK(r.wheel.empty());
    CHECK(r.wheel.next_deadline() == clock::time_point::max());
}

TEST_CASE("timer wheel: next_deadline is exact within the current tick, so the loop does not spin") {
    rig r;
    const auto d = r.now + ns(tick / 3);
    r.arm(d);
    CHECK(r.turn(r.now).empty());
    CHECK(r.wheel.next_deadline() == d);
}

TEST_CASE("timer wheel: entries cascade from every level down and fire in deadline order") {
    rig r;
    std::mt19937_64 rng(7);
    std::vector<std::pair<clock::time_point, int>> expected;
    for (int level = 0; level < 7; ++level) {
        const std::int64_t span = tick << (timer_wheel::level_bits * level);
        for (int j = 0; j < 20; ++j) {
            const auto d = r.now + ns(span + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(span)));
            expected.emplace_back(d, r.arm(d).id);
        }
    }
    std::sort(expected.begin(), expected.end());
    std::vector<int> fired;
    // Jump from deadline to deadline (and just before each): the cascades happen on the way.
    for (auto& [d, id] : expected) {
        auto early = r.turn(d - ns(1));
        fired.insert(fired.end(), early.begin(), early.end());
        CHECK(std::find(fired.begin(), fired.end(), id) == fired.end());
        auto now = r.turn(d);
        fired.insert(fired.end(), now.begin(), now.end());
    }
    std::vector<int> order;
    for (auto& e : expected) order.push_back(e.second);
    CHECK(fired == order);
}

TEST_CASE("timer wheel: a cancel in any level removes the timer and frees its slot") {
    rig r;
    std::vector<probe*> armed;
    for (int level = 0; level < timer_wheel::levels; ++level) {
        const int shift = timer_wheel::level_bits * level;
        const std::int64_t d = shift + timer_wheel::tick_shift >= 62 ? std::int64_t{1} << 61 : tick << shift;
        armed.push_back(&r.arm_in(d + 1));
    }
    armed.push_back(&r.arm(r.now - ns(5)));             // passed already
    armed.push_back(&r.arm(clock::time_point::max()));  // never
    armed.push_back(&r.arm(clock::time_point::min()));  // an expired timeout
    CHECK(r.wheel.size() == armed.size());
    for (probe* p : armed) {
        CHECK(p->armed());
        r.wheel.erase(p);
        CHECK_FALSE(p->armed());
    }
    CHECK(r.wheel.empty());
    CHECK(r.wheel.next_deadline() == clock::time_point::max());
    CHECK(r.turn(clock::time_point::max() - ns(1)).empty());
}

TEST_CASE("timer wheel: equal deadlines fire in the order set, across a cascade") {
    rig r;
    const auto d = r.now + ns(5000 * tick + 17);
    const int far = r.arm(d).id;  // filed high up
    const int near_before = r.arm(d - ns(1)).id;
    CHECK(r.turn(d - ns(2 * tick)).empty());
    const int later = r.arm(d).id;  // filed in level 0, before the first has cascaded down
    const int last = r.arm(d).id;
    CHECK(r.turn(d) == std::vector<int>{near_before, far, later, last});
}

TEST_CASE("timer wheel: an expired timeout on a fresh wheel is due now, never before the epoch") {
    // The loop sleeps for next_deadline() - now: time_point::min() there would overflow.
    timer_wheel w;
    timer_entry e;
    e.deadline = clock::time_point::min();
    w.push(&e);
    CHECK(w.next_deadline() == clock::time_point{});
    w.erase(&e);
}

TEST_CASE("timer wheel: a deadline already passed fires at the next collect, max() never") {
    rig r;
    r.turn(r.now);
    const int passed = r.arm(r.now - ns(10 * tick)).id;
    const int expired = r.arm(clock::time_point::min()).id;
    r.arm(clock::time_point::max());
    CHECK(r.wheel.next_deadline() <= r.now);
    CHECK(r.turn(r.now) == std::vector<int>{expired, passed});
    CHECK(r.turn(clock::time_point::max() - ns(1)).empty());
    CHECK(r.wheel.size() == 1);
}

TEST_CASE("timer wheel: a million timers, a third cancelled, each of the rest fires once, on time, in order") {
    rig r;
    std::mt19937_64 rng(42);
    constexpr int n = 1'000'000;
    r.probes.reserve(n);
    std::vector<std::pair<clock::time_point, int>> expected;
    std::vector<char> cancelled(n, 0);
    const std::int64_t spread = 200'000 * tick;  // about three and a half minutes
    for (int i = 0; i < n; ++i) {
        const auto d = r.now + ns(static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(spread)));
        r.arm(d);
    }
    for (int i = 0; i < n; ++i) {
        if (rng() % 3 == 0) {
            r.wheel.erase(r.probes[static_cast<std::size_t>(i)].get());
            cancelled[static_cast<std::size_t>(i)] = 1;
        } else {
            expected.emplace_back(r.probes[static_cast<std::size_t>(i)]->deadline, i);
        }
    }
    CHECK(r.wheel.size() == expected.size());
    std::sort(expected.begin(), expected.end());  // (deadline, id): ids are the order set
    std::vector<int> fired;
    fired.reserve(expected.size());
    bool early = false;
    auto t = r.now;
    while (!r.wheel.empty()) {
        t += ns(static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(3 * tick)));
        for (int id : r.turn(t)) {
            early = early || r.probes[static_cast<std::size_t>(id)]->deadline > t;
            fired.push_back(id);
        }
    }
    CHECK_FALSE(early);
    REQUIRE(fired.size() == expected.size());
    bool in_order = true;
    for (std::size_t i = 0; i < fired.size(); ++i) in_order = in_order && fired[i] == expected[i].second;
    CHECK(in_order);
}
