// The echo server's load client: N connections each send M messages of S bytes, one at
// a time, and wait for each echo. Prints throughput and round-trip latency percentiles.
//
//     echo_client [host:port] [connections] [messages] [size]

#include <corio/corio.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace corio;
using clock_type = std::chrono::steady_clock;

namespace {

task<std::vector<double>> client(net::endpoint ep, int messages, std::size_t size) {
    auto s = co_await net::tcp_stream::connect(ep);
    s.set_nodelay();
    std::string out(size, 'e');
    std::string in(size, '\0');
    std::vector<double> latencies_us;
    latencies_us.reserve(static_cast<std::size_t>(messages));
    for (int i = 0; i < messages; ++i) {
        const auto t0 = clock_type::now();
        co_await s.write_all(out);
        co_await s.read_exact(in);
        latencies_us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
    }
    if (in != out) throw std::runtime_error("echo_client: the echo differs from what was sent");
    co_return latencies_us;
}

task<int> main_task(net::endpoint ep, int connections, int messages, std::size_t size) {
    std::vector<task<std::vector<double>>> clients;
    for (int i = 0; i < connections; ++i) clients.push_back(client(ep, messages, size));
    const auto t0 = clock_type::now();
    auto results = co_await gather(std::move(clients));
    const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    std::vector<double> all;
    for (auto& r : results) all.insert(all.end(), r.begin(), r.end());
    std::sort(all.begin(), all.end());
    auto pct = [&](double p) { return all[std::min(all.size() - 1, static_cast<std::size_t>(p * all.size()))]; };
    const double msgs = static_cast<double>(all.size());
    std::printf("echo_client: %d connections x %d messages of %zu B in %.3f s\n", connections, messages, size, secs);
    std::printf("echo_client: %.0f messages/s, %.1f MiB/s each way\n", msgs / secs,
                msgs * static_cast<double>(size) / secs / (1 << 20));
    std::printf("echo_client: latency p50 %.1f us, p99 %.1f us, max %.1f us\n", pct(0.50), pct(0.99), all.back());
    co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const auto ep = net::endpoint::parse(argc > 1 ? argv[1] : "127.0.0.1:7000");
        const int connections = argc > 2 ? std::atoi(argv[2]) : 50;
        const int messages = argc > 3 ? std::atoi(argv[3]) : 1000;
        const auto size = static_cast<std::size_t>(argc > 4 ? std::atoi(argv[4]) : 128);
        if (connections <= 0 || messages <= 0 || size == 0) {
            std::fprintf(stderr, "usage: echo_client [host:port] [connections] [messages] [size]\n");
            return 2;
        }
        return run(main_task(ep, connections, messages, size));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "echo_client: %s\n", e.what());
        return 1;
    }
}
