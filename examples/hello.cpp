// hello: the smallest corio program. Prints "hello", sleeps a second, prints "world".
#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>

#include "cli.hpp"

using namespace std::chrono_literals;

corio::task<> hello() {
    const auto t0 = std::chrono::steady_clock::now();
    std::puts("hello");
    co_await corio::sleep(1s);
    std::puts("world");
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - t0;
    std::printf("(%.2f s, on the %s backend)\n", took.count(),
                corio::to_string(corio::event_loop::current().backend()).data());
}

int main(int argc, char** argv) {
    cli::command cmd("hello", "The smallest corio program: hello, a sleep of 1 s, world.");
    return cmd.run(argc, argv, [] { corio::run(hello()); });
}
