#include <catch2/catch.hpp>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

#include "test_util.hpp"

using namespace test;

namespace {}  // namespace

TEST_CASE("wait_readable completes when data arrives") {
    pipe_pair p;
    corio::run([&]() -> corio::task<> {
        // The clock starts before the timer is set: on a loaded machine time passes between
        // the two, and the wait, measured from after it, would look shorter than 10 ms.
        const auto t0 = clock::now();
        corio::event_loop::current().call_later(10ms, [&] { CHECK(::write(p.wr, "x", 1) == 1); });
        unsigned events = co_await corio::wait_readable(p.rd);
        CHECK((events & POLLIN) != 0);
        CHECK(ms_since(t0) >= 9.0);
        char c = 0;
        CHECK(::read(p.rd, &c, 1) == 1);
        CHECK(c == 'x');
        const unsigned out = co_await corio::wait_writable(p.wr);
        CHECK((out & POLLOUT) != 0);
    }());
}

TEST_CASE("a wait on a silent fd times out, and the kernel lets go of the operation") {
    pipe_pair p;
    corio::run([&]() -> corio::task<> {
        auto& loop = corio::event_loop::current();
        bool timed_out = false;
        try {
            co_await corio::wait_for(corio::wait_readable(p.rd), 30ms);
        } catch (const corio::timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
        CHECK(loop.io().in_flight() == 0);  // the cancelled op has completed in the backend
        // The fd is still usable afterwards.
        CHECK(::write(p.wr, "y", 1) == 1);
        const unsigned in = co_await corio::wait_readable(p.rd);
        CHECK((in & POLLIN) != 0);
    }());
}

TEST_CASE("a task cancelled while waiting on an fd ends promptly") {
    pipe_pair p;
    const auto t0 = clock::now();
    corio::run([&]() -> corio::task<> {
        auto f = corio::spawn(corio::wait_readable(p.rd));
        co_await corio::sleep(5ms);
        f.cancel();
        co_await corio::gather_settled(f);
        CHECK(f.cancelled());
    }());
    CHECK(ms_since(t0) < 2000.0);
}

TEST_CASE("waiting on a closed fd is a system_error naming the operation") {
    corio::run([&]() -> corio::task<> {
        // Made and closed while the loop runs, so no fd of the loop's can take its number.
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        ::close(fds[0]);
        ::close(fds[1]);
        try {
            co_await corio::wait_readable(fds[0]);
            FAIL("waiting on a closed fd must fail");
        } catch (const std::system_error& e) {
            CHECK(e.code().value() == EBADF);
            CHECK(std::string(e.what()).find("wait_readable") != std::string::npos);
        }
    }());
}
