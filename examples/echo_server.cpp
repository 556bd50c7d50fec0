// An echo server: every byte a client sends comes back. Thousands of connections, one
// thread. Ends cleanly on SIGINT/SIGTERM.
//
//     echo_server [port] [io_uring|epoll]      (port 0: any free port, printed)

#include <corio/corio.hpp>

#include <array>
#include <csignal>
#include <cstdio>
#include <string>

#include "cli.hpp"

using namespace corio;
using namespace std::chrono_literals;

namespace {

task<> echo(net::tcp_stream s) {
    std::array<char, 16 * 1024> buf;
    try {
        for (;;) {
            const std::size_t n = co_await s.read_some(buf);
            if (n == 0) co_return;  // the client is done
            co_await s.write_all(const_buffer(buf.data(), n));
        }
    } catch (const std::system_error&) {
        // reset by the client: nothing more to do for it
    }
}

task<> serve(std::uint16_t port) {
    auto listener = net::tcp_listener::bind(net::endpoint::any(port), {.backlog = 4096});
    std::printf("echo_server: listening on port %u (backend %s)\n", listener.local_endpoint().port(),
                std::string(to_string(event_loop::current().backend())).c_str());
    std::fflush(stdout);
    std::size_t served = 0;
    co_await with_task_group([&](task_group& g) -> task<> {
        auto acceptor = g.spawn([&]() -> task<> {
            for (;;) {
                bool failed = false;
                try {
                    g.spawn(echo(co_await listener.accept()));
                    ++served;
                } catch (const std::system_error& e) {
                    std::fprintf(stderr, "echo_server: %s\n", e.what());
                    failed = true;
                }
                if (failed) co_await sleep(10ms);  // out of fds, most likely: let some close
            }
        });
        co_await corio::signal(SIGINT, SIGTERM);
        acceptor.cancel();
        g.cancel();  // an echo has no request to finish: close every connection
    });
    std::printf("echo_server: served %zu connections, stopped cleanly\n", served);
}

}  // namespace

int main(int argc, char** argv) {
    std::uint16_t port = 7000;
    loop_options options;
    cli::command cmd("echo_server", "An echo server; SIGINT or SIGTERM ends it cleanly.");
    cmd.arg("port", port, "the port to listen on; 0: any free one, printed");
    cmd.arg("backend", options.backend, "io_uring or epoll");
    return cmd.run(argc, argv, [&] {
        block_signals(SIGINT, SIGTERM);
        run(serve(port), options);
    });
}
