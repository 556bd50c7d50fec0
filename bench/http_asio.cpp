// The peer of examples/http_server in the HTTP benchmark: Asio coroutines, one thread,
// HTTP/1.1 keep-alive, the same "Hello, world!" answer. It does less than corio's
// server (no header limits, no idle or header timeouts), which only favours it.
//
//     bench_http_asio [port]      (port 0: any free port, printed)

#include <asio.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

asio::awaitable<void> serve(asio::ip::tcp::socket s) {
    std::string buf;
    const std::string body = "Hello, world!\n";
    try {
        for (;;) {
            const std::size_t n =
                co_await asio::async_read_until(s, asio::dynamic_buffer(buf), "\r\n\r\n", asio::use_awaitable);
            const bool close = buf.substr(0, n).find("Connection: close") != std::string::npos;
            buf.erase(0, n);
            const std::string response =
                "HTTP/1.1 200 OK\r\nServer: asio\r\nContent-Length: " + std::to_string(body.size()) +
                "\r\nContent-Type: text/plain\r\nConnection: " + (close ? "close" : "keep-alive") + "\r\n\r\n" + body;
            co_await asio::async_write(s, asio::buffer(response), asio::use_awaitable);
            if (close) co_return;
        }
    } catch (const std::exception&) {
    }
}

asio::awaitable<void> listen(asio::ip::tcp::acceptor& acceptor) {
    for (;;) {
        auto s = co_await acceptor.async_accept(asio::use_awaitable);
        asio::co_spawn(acceptor.get_executor(), serve(std::move(s)), asio::detached);
    }
}

}  // namespace

int main(int argc, char** argv) {
    asio::io_context ctx(1);
    const auto port = static_cast<unsigned short>(argc > 1 ? std::atoi(argv[1]) : 8081);
    asio::ip::tcp::acceptor acceptor(ctx, asio::ip::tcp::endpoint(asio::ip::tcp::v4(), port));
    std::printf("bench_http_asio: listening on port %u\n", acceptor.local_endpoint().port());
    std::fflush(stdout);
    asio::signal_set stop(ctx, SIGINT, SIGTERM);
    stop.async_wait([&](auto, int) { ctx.stop(); });
    asio::co_spawn(ctx, listen(acceptor), asio::detached);
    ctx.run();
}
