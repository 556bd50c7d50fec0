#include <corio/corio.hpp>
#include <cstdio>
#include "cli.hpp"  // --help, and a message rather than an abort if the loop cannot start
using namespace std::chrono_literals;

corio::task<int> fetch(int id) {
    co_await corio::sleep(100ms);  // stands for a network round trip
    co_return id * 2;
}

corio::task<int> amain() {
    auto [a, b] = co_await corio::gather(fetch(1), fetch(2));  // ~100 ms, not 200
    corio::future<int> bg = corio::spawn(fetch(3));            // runs concurrently
    int c = co_await corio::wait_for(std::move(bg), 1s);       // timeout_error after 1 s
    int d = co_await corio::to_thread([] { return 6 * 7; });   // CPU work off the loop
    co_return a + b + c + d;
}

int main(int argc, char** argv) {
    cli::command cmd("quickstart", "gather, spawn, wait_for and to_thread: prints 54.");
    return cmd.run(argc, argv, [] { std::printf("%d\n", corio::run(amain())); });
}
