// The echo server's load client: N connections each send M messages of S bytes, one at
// a time, and wait for each echo. Prints throughput and round-trip latency percentiles.
//
//     echo_client [host:port] [connections] [messages] [size]

#include <corio/corio.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "cli.hpp"

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
    auto ep = net::endpoint::loopback(7000);
    int connections = 50;
    int messages = 1000;
    std::size_t size = 128;
    cli::command cmd("echo_client", "The echo server's load client: throughput and round-trip latency.");
    cmd.arg("host:port", ep, "the echo server");
    cmd.arg("connections", connections, "connections at once", {.min = 1});
    cmd.arg("messages", messages, "messages per connection, one at a time", {.min = 1});
    cmd.arg("size", size, "bytes per message", {.min = 1});
    return cmd.run(argc, argv, [&] { return run(main_task(ep, connections, messages, size)); });
}
