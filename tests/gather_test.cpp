#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "test_util.hpp"

using namespace test;

namespace {

corio::task<int> after(std::chrono::milliseconds d, int v) {
    co_await corio::sleep(d);
    co_return v;
}

}  // namespace

TEST_CASE("gather returns a tuple of results, void as std::monostate") {
    auto [a, nothing, s] = corio::run([]() -> corio::task<std::tuple<int, std::monostate, std::string>> {
        co_return co_await corio::gather(after(5ms, 1), corio::sleep(1ms),
                                         []() -> corio::task<std::string> { co_return "three"; }());
    }());
    CHECK(a == 1);
    CHECK(s == "three");
    (void)nothing;
}

TEST_CASE("gather of a range returns the results in the range's order") {
    auto v = corio::run([]() -> corio::task<std::vector<int>> {
        std::vector<corio::task<int>> ts;
        for (int i = 0; i < 10; ++i) ts.push_back(after(std::chrono::milliseconds(10 - i), i));
        co_return co_await corio::gather(std::move(ts));
    }());
    REQUIRE(v.size() == 10);
    for (int i = 0; i < 10; ++i) CHECK(v[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("gather of an empty range returns at once") {
    auto v = corio::run(
        []() -> corio::task<std::vector<int>> { co_return co_await corio::gather(std::vector<corio::task<int>>{}); }());
    CHECK(v.empty());
}

TEST_CASE("gather runs its children concurrently") {
    const auto t0 = clock::now();
    corio::run([]() -> corio::task<> { co_await corio::gather(after(100ms, 1), after(100ms, 2), after(100ms, 3)); }());
    const double ms = ms_since(t0);
    CHECK(ms >= 100.0);
    CHECK(ms < 250.0);  // one after another would take 300 ms
}

TEST_CASE("gather cancels the rest when one child fails, waits for them, then rethrows the first failure") {
    std::vector<std::string> events;
    corio::run([&]() -> corio::task<> {
        auto sibling = [&](std::string name) -> corio::task<int> {
            bool cancelled = false;
            try {
                co_await corio::sleep(10s);
            } catch (const corio::cancelled_error&) {
                events.push_back(name + " cancelled");
                cancelled = true;
            }
            if (cancelled) {
                co_await corio::sleep(10ms);  // cleanup that awaits
                events.push_back(name + " cleaned up");
                throw corio::cancelled_error();
            }
            co_return 0;
        };
        auto failing = [&]() -> corio::task<int> {
            co_await corio::sleep(5ms);
            events.push_back("failing throws");
            throw std::runtime_error("first failure");
        };
        try {
            co_await corio::gather(sibling("a"), failing(), sibling("b"));
            FAIL("gather should have thrown");
        } catch (const std::runtime_error& e) {
            CHECK(std::string(e.what()) == "first failure");
            events.push_back("gather threw");
        }
    }());
    REQUIRE(events.size() == 6);
    CHECK(events.front() == "failing throws");
    CHECK(events.back() == "gather threw");
    CHECK(std::count(events.begin(), events.end(), "a cleaned up") == 1);
    CHECK(std::count(events.begin(), events.end(), "b cleaned up") == 1);
}

TEST_CASE("gather_settled returns every outcome and throws none") {
    auto [ok, bad, nothing] =
        corio::run([]() -> corio::task<std::tuple<corio::outcome<int>, corio::outcome<int>, corio::outcome<void>>> {
            co_return co_await corio::gather_settled(
                after(5ms, 7),
                []() -> corio::task<int> {
                    co_await corio::sleep(1ms);
                    throw std::logic_error("bad");
                }(),
                corio::sleep(2ms));
        }());
    CHECK(ok.has_value());
    CHECK(ok.value() == 7);
    CHECK(bad.has_error());
    CHECK_THROWS_AS(bad.value(), std::logic_error);
    CHECK(nothing.has_value());

    auto all = corio::run([]() -> corio::task<std::vector<corio::outcome<int>>> {
        std::vector<corio::task<int>> ts;
        ts.push_back(after(1ms, 1));
        ts.push_back([]() -> corio::task<int> {
            throw std::runtime_error("x");
            co_return 0;
        }());
        co_return co_await corio::gather_settled(std::move(ts));
    }());
    REQUIRE(all.size() == 2);
    CHECK(all[0].value() == 1);
    CHECK(all[1].has_error());
    CHECK_FALSE(all[1].cancelled());
}

TEST_CASE("cancelling the task awaiting gather cancels every child") {
    int cancelled_children = 0;
    corio::run([&]() -> corio::task<> {
        auto child = [&]() -> corio::task<> {
            try {
                co_await corio::sleep(10s);
            } catch (const corio::cancelled_error&) {
                ++cancelled_children;
                throw;
            }
        };
        auto parent = corio::spawn(corio::gather(child(), child(), child()));
        co_await corio::sleep(10ms);
        parent.cancel();
        auto [o] = co_await corio::gather_settled(parent);
        CHECK(o.cancelled());
    }());
    CHECK(cancelled_children == 3);
}
