// chores: what an event loop buys one worker with waiting to do.
//
// Laundry takes an hour of machine time, dinner an hour of your own hands, the
// dishwasher half an hour of machine time, the plants half an hour of hands. Done one
// after another: 3 h. Start the laundry, cook meanwhile, then start the dishwasher and
// water the plants meanwhile: 1.5 h. Machine time is a sleep (the worker is free);
// hands-on time blocks the one worker (nothing else can run on the loop meanwhile).
//
// Usage: chores [--hour-ms N]   (default: one hour lasts 1000 ms)
#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>
#include <thread>

#include "cli.hpp"

using steady = std::chrono::steady_clock;

namespace {

std::chrono::milliseconds hour{1000};

std::chrono::milliseconds hours(double h) {
    return std::chrono::milliseconds(static_cast<long>(h * static_cast<double>(hour.count())));
}

steady::time_point start;

void log(const char* what) {
    const double h =
        std::chrono::duration<double>(steady::now() - start).count() * 1000.0 / static_cast<double>(hour.count());
    std::printf("  [%4.2f h] %s\n", h, what);
}

corio::task<> machine(const char* name, double h) {  // the worker only starts it
    log(name);
    co_await corio::sleep(hours(h));
    log("  ...machine done");
}

corio::task<> hands(const char* name, double h) {  // the worker is busy throughout
    log(name);
    std::this_thread::sleep_for(hours(h));
    log("  ...done by hand");
    co_return;
}

corio::task<> one_after_another() {
    co_await machine("laundry (machine, 1 h)", 1.0);
    co_await hands("make dinner (hands, 1 h)", 1.0);
    co_await machine("dishwasher (machine, 0.5 h)", 0.5);
    co_await hands("water the plants (hands, 0.5 h)", 0.5);
}

corio::task<> overlapped() {
    co_await corio::gather(machine("laundry (machine, 1 h)", 1.0), hands("make dinner (hands, 1 h)", 1.0));
    co_await corio::gather(machine("dishwasher (machine, 0.5 h)", 0.5), hands("water the plants (hands, 0.5 h)", 0.5));
}

double schedule(const char* title, corio::task<> (*plan)()) {
    std::printf("%s\n", title);
    start = steady::now();
    corio::run(plan());
    const double h =
        std::chrono::duration<double>(steady::now() - start).count() * 1000.0 / static_cast<double>(hour.count());
    std::printf("  total: %.2f h\n\n", h);
    return h;
}

}  // namespace

int main(int argc, char** argv) {
    cli::command cmd("chores", "Machine time overlaps hands-on time for one worker: 3 h of chores in 1.5 h.");
    cmd.flag("--hour-ms N", hour, "how long one hour lasts, in ms, up to a real hour", {.max = 3'600'000});
    return cmd.run(argc, argv, [] {
        std::printf("1 h lasts %lld ms\n\n", static_cast<long long>(hour.count()));
        const double seq = schedule("One chore after another:", one_after_another);
        const double ovl = schedule("Machines run while the hands work:", overlapped);
        std::printf("sequential %.2f h, overlapped %.2f h: %.1fx faster\n", seq, ovl, seq / ovl);
        return ovl < seq ? 0 : 1;
    });
}
