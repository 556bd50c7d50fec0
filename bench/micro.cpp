// Micro-benchmarks: each corio operation next to its floor (the least the machine can do)
// and a peer (standalone Asio 1.22 coroutines), measured in the same run.
//
// Names: <operation>/<implementation>; the report pairs corio with floor and peer.

#include <benchmark/benchmark.h>
#include <malloc.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <cstring>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <corio/corio.hpp>

#if CORIO_BENCH_ASIO
#include <asio.hpp>
#endif

#include "common.hpp"

using namespace std::chrono_literals;

namespace {

// ---- the floor: a minimal lazy task with symmetric transfer, no cancellation, no loop

struct floor_task {
    struct promise_type {
        int value = 0;
        std::coroutine_handle<> next;
        floor_task get_return_object() { return floor_task{std::coroutine_handle<promise_type>::from_promise(*this)}; }
        std::suspend_always initial_suspend() noexcept { return {}; }
        struct final_awaiter {
            bool await_ready() noexcept { return false; }
            std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept {
                return h.promise().next ? h.promise().next : std::noop_coroutine();
            }
            void await_resume() noexcept {}
        };
        final_awaiter final_suspend() noexcept { return {}; }
        void return_value(int v) { value = v; }
        void unhandled_exception() { std::terminate(); }
    };
    std::coroutine_handle<promise_type> h;
    explicit floor_task(std::coroutine_handle<promise_type> handle) : h(handle) {}
    floor_task(floor_task&& o) noexcept : h(std::exchange(o.h, {})) {}
    ~floor_task() {
        if (h) h.destroy();
    }
    bool await_ready() { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> c) {
        h.promise().next = c;
        return h;
    }
    int await_resume() { return h.promise().value; }
};

[[gnu::noinline]] int plain_function(int x) {
    benchmark::DoNotOptimize(x);
    return x + 1;
}

// ---- task create + await + destroy

void task_await_function(benchmark::State& state) {
    int x = 0;
    for (auto _ : state) x = plain_function(x);
    benchmark::DoNotOptimize(x);
}

floor_task floor_leaf(int x) { co_return x + 1; }
floor_task floor_driver(benchmark::State& state) {
    int x = 0;
    for (auto _ : state) x = co_await floor_leaf(x);
    benchmark::DoNotOptimize(x);
    co_return x;
}
void task_await_floor(benchmark::State& state) {
    auto t = floor_driver(state);
    t.h.resume();
}

corio::task<int> corio_leaf(int x) { co_return x + 1; }
void task_await_corio(benchmark::State& state) {
    corio::event_loop loop;
    loop.run([&]() -> corio::task<> {
        int x = 0;
        for (auto _ : state) x = co_await corio_leaf(x);
        benchmark::DoNotOptimize(x);
    });
}

#if CORIO_BENCH_ASIO
asio::awaitable<int> asio_leaf(int x) { co_return x + 1; }
void task_await_asio(benchmark::State& state) {
    asio::io_context io;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            int x = 0;
            for (auto _ : state) x = co_await asio_leaf(x);
            benchmark::DoNotOptimize(x);
        },
        asio::detached);
    io.run();
}
#endif

// ---- yield ping-pong between two tasks (per switch)

void yield_floor(benchmark::State& state) {
    // Two coroutines handing control to each other by symmetric transfer.
    struct pingpong {
        std::coroutine_handle<> other;
        bool await_ready() { return false; }
        std::coroutine_handle<> await_suspend(std::coroutine_handle<>) { return other; }
        void await_resume() {}
    };
    struct co {
        struct promise_type {
            co get_return_object() { return co{std::coroutine_handle<promise_type>::from_promise(*this)}; }
            std::suspend_always initial_suspend() noexcept { return {}; }
            std::suspend_always final_suspend() noexcept { return {}; }
            void return_void() {}
            void unhandled_exception() { std::terminate(); }
        };
        std::coroutine_handle<promise_type> h;
    };
    std::coroutine_handle<> a_h, b_h;
    bool stop = false;
    // Named: the coroutines use the closures' captures.
    auto a_body = [&]() -> co {
        for (auto _ : state) co_await pingpong{b_h};
        stop = true;
        co_await pingpong{b_h};
    };
    auto b_body = [&]() -> co {
        while (!stop) co_await pingpong{a_h};
    };
    auto a = a_body();
    auto b = b_body();
    a_h = a.h;
    b_h = b.h;
    a.h.resume();
    a.h.destroy();
    b.h.destroy();
    state.SetItemsProcessed(static_cast<long>(state.iterations()) * 2);
}

void yield_corio(benchmark::State& state) {
    corio::event_loop loop;
    loop.run([&]() -> corio::task<> {
        bool stop = false;
        auto partner = corio::spawn([&]() -> corio::task<> {
            while (!stop) co_await corio::yield();
        });
        for (auto _ : state) co_await corio::yield();
        stop = true;
        co_await partner;
    });
    state.SetItemsProcessed(static_cast<long>(state.iterations()) * 2);
}

#if CORIO_BENCH_ASIO
void yield_asio(benchmark::State& state) {
    asio::io_context io;
    bool stop = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            while (!stop) co_await asio::post(io, asio::use_awaitable);
        },
        asio::detached);
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            for (auto _ : state) co_await asio::post(io, asio::use_awaitable);
            stop = true;
        },
        asio::detached);
    io.run();
    state.SetItemsProcessed(static_cast<long>(state.iterations()) * 2);
}
#endif

// ---- gather fan-out, per child

void gather_corio(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    corio::event_loop loop;
    loop.run([&]() -> corio::task<> {
        for (auto _ : state) {
            std::vector<corio::task<int>> children;
            children.reserve(n);
            for (std::size_t i = 0; i < n; ++i) children.push_back(corio_leaf(static_cast<int>(i)));
            auto results = co_await corio::gather(std::move(children));
            benchmark::DoNotOptimize(results.data());
        }
    });
    state.SetItemsProcessed(static_cast<long>(state.iterations()) * state.range(0));
}

// ---- spawn + await

void spawn_corio(benchmark::State& state) {
    corio::event_loop loop;
    loop.run([&]() -> corio::task<> {
        int x = 0;
        for (auto _ : state) x = co_await corio::spawn(corio_leaf(x));
        benchmark::DoNotOptimize(x);
    });
}

#if CORIO_BENCH_ASIO
void spawn_asio(benchmark::State& state) {
    asio::io_context io;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            int x = 0;
            for (auto _ : state) x = co_await asio::co_spawn(io, asio_leaf(x), asio::use_awaitable);
            benchmark::DoNotOptimize(x);
        },
        asio::detached);
    io.run();
}
#endif

// ---- timers

void timer_fire_corio(benchmark::State& state) {  // arm a timer that is already due, let it fire
    corio::event_loop loop;
    loop.run([&]() -> corio::task<> {
        for (auto _ : state) co_await corio::sleep(0ns);
    });
}

void timer_cancel_corio(benchmark::State& state) {  // arm a far timer, cancel it
    corio::event_loop loop;
    loop.run([&]() -> corio::task<> {
        for (auto _ : state) {
            auto h = corio::event_loop::current().call_later(1h, [] {});
            h.cancel();
        }
        co_return;
    });
}

// ---- timer structures: the wheel the loop uses against the binary heap it used before

// The loop's timers before the wheel: a binary heap of (deadline, seq, entry) nodes in a
// vector, each entry knowing its slot. Kept here to measure the wheel against.
namespace heap_baseline {
using corio::detail::clock;
struct heap_entry {
    static constexpr std::size_t npos = ~std::size_t{0};
    clock::time_point deadline{};
    std::uint64_t seq = 0;
    std::size_t slot = npos;
    void (*fire)(heap_entry*) noexcept = nullptr;

    [[nodiscard]] bool armed() const noexcept { return slot != npos; }
};

class timer_heap {
public:
    [[nodiscard]] bool empty() const noexcept { return heap_.empty(); }
    [[nodiscard]] std::size_t size() const noexcept { return heap_.size(); }
    [[nodiscard]] heap_entry* top() const noexcept { return heap_.front().entry; }
    [[nodiscard]] clock::time_point next_deadline() const noexcept { return heap_.front().deadline; }

    void push(heap_entry* e) {
        e->seq = next_seq_++;
        // Deadlines before the clock's epoch (time_point::min() for an expired timeout)
        // have all passed: keyed at the epoch, so that the loop's `deadline - now` cannot
        // overflow. (The steady clock counts from boot: now is never below its epoch.)
        const clock::time_point key = e->deadline < clock::time_point{} ? clock::time_point{} : e->deadline;
        heap_.push_back(node{key, e->seq, e});
        e->slot = heap_.size() - 1;
        sift_up(e->slot);
    }

    void erase(heap_entry* e) noexcept {
        const std::size_t i = e->slot;
        e->slot = heap_entry::npos;
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

    heap_entry* pop() noexcept {
        heap_entry* e = heap_.front().entry;
        erase(e);
        return e;
    }

private:
    // The key is copied into the heap so comparisons do not touch the frames.
    struct node {
        clock::time_point deadline;
        std::uint64_t seq;
        heap_entry* entry;
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

}  // namespace heap_baseline

// The two structures behind one face, for the benchmarks below.
struct heap_timers {
    using entry = heap_baseline::heap_entry;
    heap_baseline::timer_heap timers;
    static void no_fire(entry* /*e*/) noexcept {}
    void start(corio::detail::clock::time_point /*now*/) noexcept {}
    void push(entry* e) { timers.push(e); }
    void erase(entry* e) noexcept { timers.erase(e); }
    [[nodiscard]] bool empty() const noexcept { return timers.empty(); }
    void fire_due(corio::detail::clock::time_point now) noexcept {
        while (!timers.empty() && timers.next_deadline() <= now) {
            entry* t = timers.pop();
            t->fire(t);
        }
    }
};
struct wheel_timers {
    using entry = corio::detail::timer_entry;
    corio::detail::timer_wheel timers;
    static void no_fire(entry* /*e*/) noexcept {}
    void start(corio::detail::clock::time_point now) noexcept { timers.collect_due(now); }
    void push(entry* e) noexcept { timers.push(e); }
    void erase(entry* e) noexcept { timers.erase(e); }
    [[nodiscard]] bool empty() const noexcept { return timers.empty(); }
    void fire_due(corio::detail::clock::time_point now) noexcept {
        timers.collect_due(now);
        while (entry* t = timers.pop_due()) t->fire(t);
    }
};

// A fake clock far from zero, and deadlines spread over `spread` from it.
constexpr auto timer_t0 = corio::detail::clock::time_point(std::chrono::hours(1));

template <class Entry>
std::vector<Entry> spread_entries(std::size_t n, std::chrono::nanoseconds spread, void (*fire)(Entry*) noexcept) {
    std::vector<Entry> v(n);
    std::uint64_t x = 88172645463325252ULL;
    for (auto& e : v) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        e.deadline = timer_t0 + std::chrono::nanoseconds(
                                    static_cast<std::int64_t>(x % static_cast<std::uint64_t>(spread.count())));
        e.fire = fire;
    }
    return v;
}

// Arm one timer and cancel it, with N others armed (deadlines over 100 s).
template <class Timers>
void timers_arm_cancel(benchmark::State& state) {
    auto others =
        spread_entries<typename Timers::entry>(static_cast<std::size_t>(state.range(0)), 100s, &Timers::no_fire);
    Timers t;
    for (auto& e : others) t.push(&e);
    t.start(timer_t0);
    typename Timers::entry e;
    e.fire = &Timers::no_fire;
    std::int64_t i = 0;
    for (auto _ : state) {
        e.deadline = timer_t0 + std::chrono::milliseconds(++i % 100000);
        t.push(&e);
        t.erase(&e);
    }
}

// Arm a timer due at the next turn and fire it, the clock moving 1 µs a turn, with N
// others armed further on.
template <class Timers>
void timers_arm_fire(benchmark::State& state) {
    auto others =
        spread_entries<typename Timers::entry>(static_cast<std::size_t>(state.range(0)), 100s, &Timers::no_fire);
    Timers t;
    auto now = timer_t0 - 1h;
    for (auto& e : others) t.push(&e);
    t.start(now);
    typename Timers::entry e;
    e.fire = &Timers::no_fire;
    for (auto _ : state) {
        now += 1us;
        e.deadline = now;
        t.push(&e);
        t.fire_due(now);
    }
}

// N timers over one second armed, then fired as the clock moves on in 1 ms turns: per timer.
template <class Timers>
void timers_concurrent(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    auto entries = spread_entries<typename Timers::entry>(n, 1s, &Timers::no_fire);
    for (auto _ : state) {
        Timers t;
        t.start(timer_t0);
        for (auto& e : entries) t.push(&e);
        for (auto now = timer_t0; !t.empty(); now += 1ms) t.fire_due(now);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

// Bytes the allocator has handed out and not taken back (glibc): unlike RSS, not fooled by
// memory an earlier benchmark freed and this one reuses.
long heap_in_use() {
    const struct mallinfo2 m = mallinfo2();
    return static_cast<long>(m.uordblks + m.hblkhd);
}

// Resident set size in bytes (/proc/self/statm): what the kernel has had to fault in,
// allocator overhead and page-fault cost included.
long resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    long pages = 0;
    long resident = 0;
    statm >> pages >> resident;
    return resident * sysconf(_SC_PAGESIZE);
}

// Heap and RSS measured at the same two points: the start, and the moment every task is
// asleep. The allocator first gives back what earlier benchmarks freed, so that RSS growth
// is not hidden by reused pages.
struct footprint {
    long heap0 = 0;
    long rss0 = 0;
    long heap = 0;
    long rss = 0;
    void start() {
        malloc_trim(0);
        heap0 = heap = heap_in_use();
        rss0 = rss = resident_bytes();
    }
    void peak() {
        heap = heap_in_use();
        rss = resident_bytes();
    }
    void report(benchmark::State& state, long n) const {
        state.counters["bytes_per_task"] = static_cast<double>(heap - heap0) / static_cast<double>(n);
        state.counters["rss_per_task"] = static_cast<double>(rss - rss0) / static_cast<double>(n);
    }
};

// A million concurrent sleep(100 ms): overhead per task beyond the 100 ms, bytes per task.
void sleeps_corio(benchmark::State& state) {
    const long n = state.range(0);
    corio::event_loop loop;
    footprint mem;
    for (auto _ : state) {
        mem.start();
        const auto t0 = bench::steady::now();
        loop.run([&]() -> corio::task<> {
            std::vector<corio::task<>> sleeps;
            sleeps.reserve(static_cast<std::size_t>(n));
            for (long i = 0; i < n - 1; ++i)
                sleeps.push_back([]() -> corio::task<> { co_await corio::sleep(100ms); }());
            // The last to start: every other one is asleep and none has woken yet
            // (gather starts its children before the loop takes another turn).
            sleeps.push_back([](footprint& out) -> corio::task<> {
                out.peak();
                co_await corio::sleep(100ms);
            }(mem));
            co_await corio::gather(std::move(sleeps));
        });
        const double s = std::chrono::duration<double>(bench::steady::now() - t0).count();
        state.SetIterationTime(std::max(0.0, s - 0.1));  // the overhead beyond the sleep
    }
    mem.report(state, n);
    state.SetItemsProcessed(static_cast<long>(state.iterations()) * n);
}

// A second, not 100 ms: spawned tasks start from the ready queue, a million of them in
// more than 100 ms on a slow machine, and none may wake before the last has started.
corio::task<> sleeper() { co_await corio::sleep(1s); }
corio::task<> last_sleeper(footprint& mem) {
    mem.peak();
    co_await corio::sleep(1s);
}

// The same million sleeps as spawned tasks (each with its future's state, its place in the
// loop's list of tasks and in a task group): the figure the 128 B target is checked against.
// The futures are dropped at once (the group keeps the tasks), so the benchmark itself
// holds nothing per task.
void sleeps_spawned_corio(benchmark::State& state) {
    const long n = state.range(0);
    corio::event_loop loop;
    footprint mem;
    for (auto _ : state) {
        mem.start();
        const auto t0 = bench::steady::now();
        loop.run(corio::with_task_group([&](corio::task_group& g) -> corio::task<> {
            for (long i = 0; i < n - 1; ++i) g.spawn(sleeper());
            g.spawn(last_sleeper(mem));  // runs last: every other one is asleep by then
            co_return;
        }));
        const double s = std::chrono::duration<double>(bench::steady::now() - t0).count();
        state.SetIterationTime(std::max(0.0, s - 1.0));
    }
    mem.report(state, n);
    state.SetItemsProcessed(static_cast<long>(state.iterations()) * n);
}

#if CORIO_BENCH_ASIO
void sleeps_asio(benchmark::State& state) {
    const long n = state.range(0);
    footprint mem;
    for (auto _ : state) {
        asio::io_context io;
        mem.start();
        const auto t0 = bench::steady::now();
        for (long i = 0; i < n - 1; ++i) {
            asio::co_spawn(
                io,
                [&]() -> asio::awaitable<void> {
                    asio::steady_timer t(io, 100ms);
                    co_await t.async_wait(asio::use_awaitable);
                },
                asio::detached);
        }
        // The last to start. Asio takes longer than 100 ms to start a million coroutines,
        // so the first have finished by then: its figure is a lower bound.
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                mem.peak();
                asio::steady_timer t(io, 100ms);
                co_await t.async_wait(asio::use_awaitable);
            },
            asio::detached);
        io.run();
        const double s = std::chrono::duration<double>(bench::steady::now() - t0).count();
        state.SetIterationTime(std::max(0.0, s - 0.1));
    }
    mem.report(state, n);
    state.SetItemsProcessed(static_cast<long>(state.iterations()) * n);
}
#endif

// ---- cross-thread round trips

// Floor: two threads bouncing a token through two eventfds.
void cross_thread_eventfd(benchmark::State& state) {
    const int to_partner = eventfd(0, EFD_CLOEXEC);
    const int to_main = eventfd(0, EFD_CLOEXEC);
    std::atomic<bool> stop{false};
    std::thread partner([&] {
        std::uint64_t v = 0;
        while (read(to_partner, &v, sizeof v) == sizeof v && !stop.load()) {
            v = 1;
            if (write(to_main, &v, sizeof v) != sizeof v) break;
        }
    });
    std::uint64_t v = 1;
    for (auto _ : state) {
        v = 1;
        benchmark::DoNotOptimize(write(to_partner, &v, sizeof v));
        benchmark::DoNotOptimize(read(to_main, &v, sizeof v));
    }
    stop = true;
    v = 1;
    benchmark::DoNotOptimize(write(to_partner, &v, sizeof v));
    partner.join();
    close(to_partner);
    close(to_main);
}

// corio: the loop wakes a partner thread through an eventfd; the partner completes a
// corio::promise, which wakes the loop (its MPSC queue and eventfd).
void cross_thread_corio_promise(benchmark::State& state) {
    const int to_partner = eventfd(0, EFD_CLOEXEC);
    std::atomic<corio::promise<int>*> slot{nullptr};
    std::thread partner([&] {
        std::uint64_t v = 0;
        while (read(to_partner, &v, sizeof v) == sizeof v) {
            corio::promise<int>* p = slot.exchange(nullptr);
            if (p == nullptr) break;
            p->set_value(1);
        }
    });
    corio::event_loop loop;
    loop.run([&]() -> corio::task<> {
        for (auto _ : state) {
            corio::promise<int> p;
            auto f = p.get_future();
            slot.store(&p);
            std::uint64_t v = 1;
            benchmark::DoNotOptimize(write(to_partner, &v, sizeof v));
            benchmark::DoNotOptimize(co_await f);
        }
    });
    std::uint64_t v = 1;
    benchmark::DoNotOptimize(write(to_partner, &v, sizeof v));
    partner.join();
    close(to_partner);
}

// to_thread round trip on a one-thread pool, against a plain std::thread pool + std::future.
void to_thread_corio(benchmark::State& state) {
    corio::thread_pool pool(1);
    corio::event_loop loop;
    loop.run([&]() -> corio::task<> {
        int x = 0;
        for (auto _ : state) x = co_await corio::run_in(pool, [x] { return x + 1; });
        benchmark::DoNotOptimize(x);
    });
}

void to_thread_std_future(benchmark::State& state) {
    std::mutex m;
    std::condition_variable cv;
    std::vector<std::packaged_task<int()>> queue;
    bool stop = false;
    std::thread worker([&] {
        for (;;) {
            std::unique_lock lock(m);
            cv.wait(lock, [&] { return stop || !queue.empty(); });
            if (queue.empty()) return;
            auto job = std::move(queue.back());
            queue.pop_back();
            lock.unlock();
            job();
        }
    });
    int x = 0;
    for (auto _ : state) {
        std::packaged_task<int()> job([x] { return x + 1; });
        auto f = job.get_future();
        {
            std::lock_guard lock(m);
            queue.push_back(std::move(job));
        }
        cv.notify_one();
        x = f.get();
    }
    {
        std::lock_guard lock(m);
        stop = true;
    }
    cv.notify_one();
    worker.join();
    benchmark::DoNotOptimize(x);
}

}  // namespace

BENCHMARK(task_await_function)->Name("task_await/function_call");
BENCHMARK(task_await_floor)->Name("task_await/floor");
BENCHMARK(task_await_corio)->Name("task_await/corio");
#if CORIO_BENCH_ASIO
BENCHMARK(task_await_asio)->Name("task_await/asio");
#endif
BENCHMARK(yield_floor)->Name("yield/floor");
BENCHMARK(yield_corio)->Name("yield/corio");
#if CORIO_BENCH_ASIO
BENCHMARK(yield_asio)->Name("yield/asio");
#endif
BENCHMARK(gather_corio)->Name("gather/corio")->Arg(10)->Arg(1000)->Arg(100000);
BENCHMARK(spawn_corio)->Name("spawn/corio");
#if CORIO_BENCH_ASIO
BENCHMARK(spawn_asio)->Name("spawn/asio");
#endif
BENCHMARK(timer_fire_corio)->Name("timer_fire/corio");
BENCHMARK(timer_cancel_corio)->Name("timer_cancel/corio");
BENCHMARK_TEMPLATE(timers_arm_cancel, heap_timers)->Name("timers_arm_cancel/heap")->Arg(1000)->Arg(1'000'000);
BENCHMARK_TEMPLATE(timers_arm_cancel, wheel_timers)->Name("timers_arm_cancel/wheel")->Arg(1000)->Arg(1'000'000);
BENCHMARK_TEMPLATE(timers_arm_fire, heap_timers)->Name("timers_arm_fire/heap")->Arg(1000)->Arg(1'000'000);
BENCHMARK_TEMPLATE(timers_arm_fire, wheel_timers)->Name("timers_arm_fire/wheel")->Arg(1000)->Arg(1'000'000);
BENCHMARK_TEMPLATE(timers_concurrent, heap_timers)
    ->Name("timers_concurrent/heap")
    ->Arg(1'000'000)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(timers_concurrent, wheel_timers)
    ->Name("timers_concurrent/wheel")
    ->Arg(1'000'000)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(sleeps_corio)
    ->Name("sleeps_100ms/corio")
    ->Arg(1'000'000)
    ->UseManualTime()
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(sleeps_spawned_corio)
    ->Name("sleeps_1s_spawned/corio")
    ->Arg(1'000'000)
    ->UseManualTime()
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
#if CORIO_BENCH_ASIO
BENCHMARK(sleeps_asio)
    ->Name("sleeps_100ms/asio")
    ->Arg(1'000'000)
    ->UseManualTime()
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
#endif
BENCHMARK(cross_thread_eventfd)->Name("cross_thread/floor_eventfd")->UseRealTime();
BENCHMARK(cross_thread_corio_promise)->Name("cross_thread/corio")->UseRealTime();
BENCHMARK(to_thread_std_future)->Name("to_thread/std_future")->UseRealTime();
BENCHMARK(to_thread_corio)->Name("to_thread/corio")->UseRealTime();

BENCHMARK_MAIN();
