#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "test_util.hpp"

using namespace test;

TEST_CASE("when_any returns the first to finish and cancels the others after they end") {
    int losers_cancelled = 0;
    auto loser = [&](std::chrono::milliseconds d) -> corio::task<std::string> {
        try {
            co_await corio::sleep(d);
        } catch (const corio::cancelled_error&) {
            ++losers_cancelled;
            throw;
        }
        co_return "loser";
    };
    const auto t0 = clock::now();
    auto r = corio::run([&]() -> corio::task<std::variant<std::string, int, std::string>> {
        auto v = co_await corio::when_any(
            loser(10s),
            []() -> corio::task<int> {
                co_await corio::sleep(10ms);
                co_return 99;
            }(),
            loser(20s));
        CHECK(losers_cancelled == 2);  // already ended when when_any returns
        co_return v;
    }());
    CHECK(r.index() == 1);
    CHECK(std::get<1>(r) == 99);
    CHECK(ms_since(t0) < 5000.0);
}

TEST_CASE("when_any of a range reports the winner's index and value") {
    auto r = corio::run([]() -> corio::task<corio::when_any_result<int>> {
        std::vector<corio::task<int>> ts;
        for (int i : {30, 10, 20}) {
            ts.push_back([](int ms) -> corio::task<int> {
                co_await corio::sleep(std::chrono::milliseconds(ms));
                co_return ms;
            }(i));
        }
        co_return co_await corio::when_any(std::move(ts));
    }());
    CHECK(r.index == 1);
    CHECK(r.value == 10);
}

TEST_CASE("when_any rethrows the failure of a winner that failed") {
    CHECK_THROWS_WITH(corio::run([]() -> corio::task<> {
                          co_await corio::when_any(corio::sleep(10s), []() -> corio::task<> {
                              co_await corio::sleep(1ms);
                              throw std::runtime_error("winner failed");
                          }());
                      }()),
                      "winner failed");
}
