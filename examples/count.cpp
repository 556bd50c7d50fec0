// count: three coroutines each print "One", sleep a second, print "Two". Run
// concurrently they take about one second; one after another, three.
#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>

#include "cli.hpp"

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

corio::task<> count() {
    std::puts("One");
    co_await corio::sleep(1s);
    std::puts("Two");
}

corio::task<> concurrently() { co_await corio::gather(count(), count(), count()); }

corio::task<> one_after_another() {
    for (int i = 0; i < 3; ++i) co_await count();
}

template <class F>
double timed(const char* title, F body) {
    std::printf("-- %s\n", title);
    const auto t0 = steady::now();
    corio::run(body());
    const double s = std::chrono::duration<double>(steady::now() - t0).count();
    std::printf("%s: %.2f s\n\n", title, s);
    return s;
}

int main(int argc, char** argv) {
    cli::command cmd("count",
                     "Three coroutines print One, sleep 1 s, print Two: concurrently, then one after another.");
    return cmd.run(argc, argv, [] {
        const double conc = timed("concurrent (gather)", concurrently);
        const double seq = timed("sequential", one_after_another);
        std::printf("speedup: %.1fx\n", seq / conc);
        return conc < seq ? 0 : 1;
    });
}
