#include <corio/corio.hpp>
#include <cstdio>
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

int main() { std::printf("%d\n", corio::run(amain())); }
