#pragma once
// What the benchmarks share: real CPU work of a given length, and a plain blocking
// thread pool for the thread_pool/T execution mode.

#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

namespace bench {

using steady = std::chrono::steady_clock;

/// `rounds` of a 64-bit mixing hash; the result depends on every round.
inline std::uint64_t hash_rounds(std::uint64_t seed, std::uint64_t rounds) noexcept {
    std::uint64_t h = seed ^ 0x9e3779b97f4a7c15ULL;
    for (std::uint64_t i = 0; i < rounds; ++i) {
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 29;
        h += i;
    }
    return h;
}

/// Rounds of hash_rounds per microsecond on this machine, measured once.
inline double rounds_per_us() {
    static const double value = [] {
        std::uint64_t rounds = 1 << 16;
        for (;;) {
            const auto t0 = steady::now();
            benchmark::DoNotOptimize(hash_rounds(1, rounds));
            const double us = std::chrono::duration<double, std::micro>(steady::now() - t0).count();
            if (us > 20'000) return static_cast<double>(rounds) / us;
            rounds *= 2;
        }
    }();
    return value;
}

/// About `us` microseconds of real computation, its result consumed.
inline void cpu_work(double us) {
    const auto rounds = static_cast<std::uint64_t>(us * rounds_per_us());
    benchmark::DoNotOptimize(hash_rounds(rounds, rounds));
}

/// T threads made once; run(n, job) has them take jobs 0..n-1 from a shared counter and
/// returns when all are done. The thread_pool/T mode's blocking executor.
class blocking_pool {
public:
    explicit blocking_pool(unsigned threads) {
        for (unsigned i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
    }
    blocking_pool(const blocking_pool&) = delete;
    blocking_pool& operator=(const blocking_pool&) = delete;
    ~blocking_pool() {
        {
            std::lock_guard lock(m_);
            stop_ = true;
        }
        cv_.notify_all();
        for (auto& t : workers_) t.join();
    }

    void run(long n, const std::function<void(long)>& job) {
        std::unique_lock lock(m_);
        job_ = &job;
        n_ = n;
        next_ = 0;
        busy_ = static_cast<long>(workers_.size());
        ++generation_;
        cv_.notify_all();
        done_.wait(lock, [this] { return busy_ == 0; });
        job_ = nullptr;
    }

private:
    void work() {
        std::uint64_t seen = 0;
        for (;;) {
            const std::function<void(long)>* job = nullptr;
            {
                std::unique_lock lock(m_);
                cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
                if (stop_) return;
                seen = generation_;
                job = job_;
            }
            for (long i; (i = next_.fetch_add(1)) < n_;) (*job)(i);
            std::lock_guard lock(m_);
            if (--busy_ == 0) done_.notify_one();
        }
    }

    std::mutex m_;
    std::condition_variable cv_;
    std::condition_variable done_;
    const std::function<void(long)>* job_ = nullptr;
    std::atomic<long> next_{0};
    long n_ = 0;
    long busy_ = 0;
    std::uint64_t generation_ = 0;
    bool stop_ = false;
    std::vector<std::thread> workers_;
};

inline unsigned hardware_threads() {
    const unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : n;
}

/// Google Benchmark's start, plus `--quick` (sets quick; recorded as the run's "mode").
/// False: unrecognised arguments (reported).
inline bool initialize(int argc, char** argv, bool& quick) {
    std::vector<char*> args;
    for (int i = 0; i < argc; ++i) {
        if (std::string_view(argv[i]) == "--quick")
            quick = true;
        else
            args.push_back(argv[i]);
    }
    int n = static_cast<int>(args.size());
    benchmark::Initialize(&n, args.data());
    if (benchmark::ReportUnrecognizedArguments(n, args.data())) return false;
    benchmark::AddCustomContext("mode", quick ? "quick" : "full");
    return true;
}

}  // namespace bench
