// The web-scraping story: fetch N pages from a server that takes 100 ms to answer each,
// first one by one, then all at once with gather, at most `limit` in flight (a semaphore).
// The server runs on the same loop, on a free loopback port.
//
//     fetch_many [pages=100] [limit=20]

#include <corio/corio.hpp>

#include <array>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "cli.hpp"

using namespace corio;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

// A slow page server: reads one request, sleeps 100 ms, answers, closes.
task<> slow_page(net::tcp_stream s) {
    std::array<char, 1024> buf;
    std::string req;
    while (req.find("\r\n\r\n") == std::string::npos) {
        const std::size_t n = co_await s.read_some(buf);
        if (n == 0) co_return;
        req.append(buf.data(), n);
    }
    const auto path_end = req.find(' ', 4);
    const std::string body = "page " + req.substr(4, path_end - 4) + "\n";
    co_await sleep(100ms);
    co_await s.write_all("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                         "\r\nConnection: close\r\n\r\n" + body);
}

task<> page_server(net::tcp_listener& listener) {
    co_await with_task_group([&](task_group& g) -> task<> {
        for (;;) g.spawn(slow_page(co_await listener.accept()));
    });
}

// GET path: the response body.
task<std::string> fetch(net::endpoint server, std::string path) {
    auto s = co_await net::tcp_stream::connect(server);
    co_await s.write_all("GET " + path + " HTTP/1.1\r\nHost: " + server.to_string() + "\r\nConnection: close\r\n\r\n");
    std::string response;
    std::array<char, 4096> buf;
    for (std::size_t n; (n = co_await s.read_some(buf)) > 0;) response.append(buf.data(), n);
    if (!response.starts_with("HTTP/1.1 200"))
        throw std::runtime_error("fetch " + path + ": " + response.substr(0, 20));
    co_return response.substr(response.find("\r\n\r\n") + 4);
}

task<> main_task(int pages, int limit) {
    auto listener = net::tcp_listener::bind(net::endpoint::loopback(0));
    auto server = spawn(page_server(listener));
    const auto ep = listener.local_endpoint();

    auto t0 = clock_type::now();
    std::size_t bytes = 0;
    for (int i = 0; i < pages; ++i) bytes += (co_await fetch(ep, "/page/" + std::to_string(i))).size();
    const double one_by_one = std::chrono::duration<double>(clock_type::now() - t0).count();
    std::printf("one by one:  %d pages (%zu B) in %.2f s\n", pages, bytes, one_by_one);

    t0 = clock_type::now();
    semaphore in_flight(static_cast<std::size_t>(limit));
    std::vector<task<std::string>> all;
    for (int i = 0; i < pages; ++i) {
        all.push_back([](semaphore& sem, net::endpoint e, int i) -> task<std::string> {
            auto permit = co_await sem.acquire();
            co_return co_await fetch(e, "/page/" + std::to_string(i));
        }(in_flight, ep, i));
    }
    const std::vector<std::string> bodies = co_await gather(std::move(all));
    const double together = std::chrono::duration<double>(clock_type::now() - t0).count();
    bytes = 0;
    for (auto& b : bodies) bytes += b.size();
    std::printf("concurrent:  %d pages (%zu B) in %.2f s, at most %d at a time\n", pages, bytes, together, limit);
    std::printf("speedup: %.1fx\n", one_by_one / together);
    server.cancel();
}

}  // namespace

int main(int argc, char** argv) {
    int pages = 100;
    int limit = 20;
    cli::command cmd("fetch_many", "Pages from a server that takes 100 ms each: one by one, then with gather.");
    cmd.arg("pages", pages, "how many pages", {.min = 1});
    cmd.arg("limit", limit, "at most this many in flight", {.min = 1});
    return cmd.run(argc, argv, [&] { run(main_task(pages, limit)); });
}
