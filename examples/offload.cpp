// offload: a heartbeat ticks every 100 ms while a CPU-heavy computation runs; first
// inline on the loop (the beats stall, and debug mode names the slow step), then
// through to_thread (the beats keep time).
#include <corio/corio.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include "cli.hpp"

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

// About `ms` milliseconds of real work: a sieve, counted so it cannot be optimised away.
std::uint64_t heavy(int ms) {
    const auto until = steady::now() + std::chrono::milliseconds(ms);
    std::uint64_t found = 0;
    while (steady::now() < until) {
        std::vector<bool> composite(200'000);
        for (std::size_t i = 2; i < composite.size(); ++i) {
            if (composite[i]) continue;
            ++found;
            for (std::size_t j = i * i; j < composite.size(); j += i) composite[j] = true;
        }
    }
    return found;
}

corio::task<int> heartbeat(const bool& stop) {
    int missed = 0;
    auto next = steady::now() + 100ms;
    while (!stop) {
        co_await corio::sleep_until(next);
        const auto late = steady::now() - next;
        missed += static_cast<int>(late / 100ms);  // beats that should have happened meanwhile
        next += 100ms * (1 + late / 100ms);
    }
    co_return missed;
}

template <class Work>
corio::task<int> with_heartbeat(Work work) {
    bool stop = false;
    auto beats = corio::spawn(heartbeat(stop), {.name = "heartbeat"});
    co_await corio::sleep(10ms);
    co_await work();
    stop = true;
    co_return co_await beats;
}

}  // namespace

int main(int argc, char** argv) {
    cli::command cmd("offload", "A heartbeat against 1 s of CPU work: inline on the loop, then through to_thread.");
    return cmd.run(argc, argv, [] {
        corio::loop_options debug;
        debug.debug = true;
        debug.exception_handler = [](const corio::exception_context& c) {
            if (c.kind == corio::report_kind::slow_step)
                std::printf("  debug: task '%s': %s\n", c.task_name.c_str(), c.message.c_str());
        };

        std::puts("CPU work inline on the loop (1 s):");
        const int missed_inline = corio::run(with_heartbeat([]() -> corio::task<> {
                                                 heavy(1000);
                                                 co_return;
                                             }),
                                             debug);
        std::printf("  missed heartbeats: %d\n\n", missed_inline);

        std::puts("CPU work through to_thread (1 s):");
        const int missed_offloaded =
            corio::run(with_heartbeat([]() -> corio::task<> { co_await corio::to_thread(heavy, 1000); }), debug);
        std::printf("  missed heartbeats: %d\n", missed_offloaded);
        return missed_offloaded < missed_inline ? 0 : 1;
    });
}
