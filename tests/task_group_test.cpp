#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace test;

TEST_CASE("leaving a task_group waits for all of its children") {
    std::vector<int> finished;
    const auto t0 = clock::now();
    int sum = corio::run([&]() -> corio::task<int> {
        int total = co_await corio::with_task_group([&](corio::task_group& g) -> corio::task<int> {
            auto a = g.spawn([&]() -> corio::task<int> {
                co_await corio::sleep(30ms);
                finished.push_back(1);
                co_return 1;
            });
            g.spawn([&]() -> corio::task<> {  // nobody awaits this one: the group does
                co_await corio::sleep(60ms);
                finished.push_back(2);
            });
            co_return co_await a;
        });
        CHECK(finished.size() == 2);
        co_return total;
    }());
    CHECK(sum == 1);
    CHECK(ms_since(t0) >= 60.0);
}

TEST_CASE("a task_group whose child fails cancels the others and rethrows after all have finished") {
    std::vector<std::string> trace;
    corio::run([&]() -> corio::task<> {
        try {
            co_await corio::with_task_group([&](corio::task_group& g) -> corio::task<> {
                for (int i = 0; i < 2; ++i) {
                    g.spawn([&]() -> corio::task<> {
                        bool cancelled = false;
                        try {
                            co_await corio::sleep(10s);
                        } catch (const corio::cancelled_error&) {
                            cancelled = true;
                        }
                        if (cancelled) {
                            co_await corio::sleep(5ms);
                            trace.push_back("sibling cleaned up");
                            throw corio::cancelled_error();
                        }
                    });
                }
                g.spawn([]() -> corio::task<> {
                    co_await corio::sleep(5ms);
                    throw std::runtime_error("child failed");
                }());
                try {
                    co_await corio::sleep(10s);
                } catch (const corio::cancelled_error&) {
                    trace.push_back("body cancelled");
                    throw;
                }
            });
            FAIL("the group should have thrown");
        } catch (const std::runtime_error& e) {
            CHECK(std::string(e.what()) == "child failed");
            trace.push_back("group threw");
        }
        // The injected cancel did not leak out of the group: this await works.
        co_await corio::sleep(1ms);
        trace.push_back("after");
    }());
    INFO(::testing_join(trace));
    REQUIRE(trace.size() == 5);
    CHECK(trace[3] == "group threw");
    CHECK(trace[4] == "after");
    CHECK(std::count(trace.begin(), trace.end(), "sibling cleaned up") == 2);
    CHECK(std::count(trace.begin(), trace.end(), "body cancelled") == 1);
}

TEST_CASE("cancelling the task around a task_group cancels its children and waits for them") {
    int cancelled_children = 0;
    corio::run([&]() -> corio::task<> {
        auto f = corio::spawn(corio::with_task_group([&](corio::task_group& g) -> corio::task<> {
            for (int i = 0; i < 3; ++i) {
                g.spawn([&]() -> corio::task<> {
                    bool cancelled = false;
                    try {
                        co_await corio::sleep(10s);
                    } catch (const corio::cancelled_error&) {
                        cancelled = true;
                    }
                    if (cancelled) {
                        co_await corio::sleep(2ms);
                        ++cancelled_children;
                        throw corio::cancelled_error();
                    }
                });
            }
            co_return;  // the body ends; the group waits
        }));
        co_await corio::sleep(10ms);
        f.cancel();
        co_await corio::gather_settled(f);
        CHECK(f.cancelled());
        CHECK(cancelled_children == 3);
    }());
}

TEST_CASE("a failing task_group body cancels the children and its exception is rethrown") {
    bool child_cancelled = false;
    CHECK_THROWS_WITH(corio::run([&]() -> corio::task<> {
                          co_await corio::with_task_group([&](corio::task_group& g) -> corio::task<> {
                              g.spawn([&]() -> corio::task<> {
                                  try {
                                      co_await corio::sleep(10s);
                                  } catch (const corio::cancelled_error&) {
                                      child_cancelled = true;
                                      throw;
                                  }
                              });
                              co_await corio::sleep(1ms);
                              throw std::runtime_error("body failed");
                          });
                      }()),
                      "body failed");
    CHECK(child_cancelled);
}

TEST_CASE("a second failing child of a task_group is reported, not lost") {
    reports r;
    CHECK_THROWS_WITH(corio::run(
                          [&]() -> corio::task<> {
                              co_await corio::with_task_group([](corio::task_group& g) -> corio::task<> {
                                  for (int i = 0; i < 2; ++i) {
                                      g.spawn(
                                          [](int n) -> corio::task<> {
                                              try {
                                                  co_await corio::sleep(5ms);
                                              } catch (...) {
                                              }
                                              throw std::runtime_error("failure " + std::to_string(n));
                                          }(i),
                                          {.name = "child-" + std::to_string(i)});
                                  }
                                  co_return;
                              });
                          }(),
                          r.options()),
                      "failure 0");
    REQUIRE(r.count(corio::report_kind::unretrieved_exception) == 1);
    CHECK(r.items[0].task_name == "child-1");
}
