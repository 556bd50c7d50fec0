#include <catch2/catch.hpp>
#include <pthread.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "test_util.hpp"

namespace {

corio::task<int> answer(int& started) {
    ++started;
    co_return 42;
}

corio::task<int> sync_one() { co_return 1; }

corio::task<long> many_sync_tasks(long n) {
    long sum = 0;
    for (long i = 0; i < n; ++i) sum += co_await sync_one();
    co_return sum;
}

corio::task<long> chain(long depth) {
    if (depth == 0) co_return 0;
    co_return 1 + co_await chain(depth - 1);
}

// Runs fn on a thread with a small stack: a stack that grew per await would overflow it.
template <class F>
void on_small_stack(std::size_t bytes, F fn) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, bytes);
    pthread_t thread;
    auto* heap_fn = new F(std::move(fn));
    auto trampoline = [](void* p) -> void* {
        std::unique_ptr<F> f(static_cast<F*>(p));
        (*f)();
        return nullptr;
    };
    REQUIRE(pthread_create(&thread, &attr, trampoline, heap_fn) == 0);
    pthread_join(thread, nullptr);
    pthread_attr_destroy(&attr);
}

}  // namespace

TEST_CASE("a task does not start until it is awaited") {
    int started = 0;
    int result = corio::run([&]() -> corio::task<int> {
        auto t = answer(started);
        co_await corio::yield();
        CHECK(started == 0);
        int v = co_await std::move(t);
        CHECK(started == 1);
        co_return v;
    }());
    CHECK(result == 42);
}

TEST_CASE("a task returns values, references, move-only values and void") {
    static int global = 7;
    corio::run([]() -> corio::task<> {
        auto ref = []() -> corio::task<int&> { co_return global; };
        int& r = co_await ref();
        CHECK(&r == &global);

        auto owned = []() -> corio::task<std::unique_ptr<std::string>> {
            co_return std::make_unique<std::string>("moved");
        };
        auto p = co_await owned();
        REQUIRE(p != nullptr);
        CHECK(*p == "moved");

        bool ran = false;
        auto nothing = [](bool& flag) -> corio::task<> {
            flag = true;
            co_return;
        };
        co_await nothing(ran);
        CHECK(ran);
    }());
}

TEST_CASE("an exception thrown in a task reaches its awaiter") {
    auto failing = []() -> corio::task<int> {
        throw std::runtime_error("from the child");
        co_return 0;
    };
    CHECK_THROWS_WITH(corio::run([&]() -> corio::task<int> { co_return co_await failing(); }()), "from the child");
}

TEST_CASE("awaiting a task twice is a usage error") {
    corio::run([]() -> corio::task<> {
        auto t = sync_one();
        const int first = co_await t;
        CHECK(first == 1);
        bool threw = false;
        try {
            co_await t;
        } catch (const corio::usage_error&) {
            threw = true;
        }
        CHECK(threw);
    }());
}

// Symmetric transfer keeps the stack flat where the compiler turns it into a tail call
// (clang; GCC at -O2 without sanitizers); elsewhere the loop's stack guard does
// (detail/stack_guard.hpp). Both tests run on a 256 KiB stack in every build.
TEST_CASE("awaiting a million synchronously completing tasks does not grow the stack") {
    long sum = 0;
    on_small_stack(256 * 1024, [&] { sum = corio::run(many_sync_tasks(1'000'000)); });
    CHECK(sum == 1'000'000);
}

TEST_CASE("a chain of 100,000 nested tasks completes in constant stack") {
    long depth = 0;
    on_small_stack(256 * 1024, [&] { depth = corio::run(chain(100'000)); });
    CHECK(depth == 100'000);
}
