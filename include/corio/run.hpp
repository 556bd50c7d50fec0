#pragma once
/// @file
/// run: asyncio.run. A fresh loop runs the awaitable to completion, then cancels and
/// drains every task still alive (each frame is destroyed), then returns the result or
/// rethrows the awaitable's exception.

#include <utility>

#include <corio/event_loop.hpp>
#include <corio/future.hpp>

namespace corio {

template <class Awaitable>
auto event_loop::run(Awaitable&& awaitable, corio::source_location where)
    -> detail::await_result_t<detail::task_for_t<Awaitable>> {
    using T = detail::await_result_t<detail::task_for_t<Awaitable>>;
    run_scope scope(*this);
    auto main_task = detail::make_task(static_cast<Awaitable&&>(awaitable));
    // run([&]() -> task<> { ... }()) is safe: the lambda lives to the end of this call,
    // which outlasts the task. Only a spawn can outlive its statement.
    main_task.handle().promise().borrowed_closure_ = false;
    future<T> main = spawn(std::move(main_task), spawn_options{"main"}, where);
    detail::future_state<T>* st = main.state_ptr();
    bool stop_delivered = false;
    try {
        while (!st->done()) {
            if (stop_requested_ && !stop_delivered) {
                stop_delivered = true;
                st->cancel();
            }
            run_once();
        }
    } catch (...) {
        // The loop itself failed (its backend's wait threw): the tasks still get their
        // cancel and their cleanup, as at a normal end, before the failure goes up. If
        // running them fails too, the destructor tries once more, and gives up safely.
        try {
            drain();
        } catch (...) {
            report({report_kind::callback_exception,
                    "event loop: ending the tasks after a failure failed too",
                    std::current_exception(),
                    {},
                    {}});
        }
        throw;
    }
    drain();
    st->rethrow_if_failed();
    if constexpr (!std::is_void_v<T>) return st->take_value();
}

/// Runs the awaitable on a new event loop (asyncio.run).
/// Then cancels and drains the tasks still alive, and returns the awaitable's result or
/// rethrows its exception. The loop runs on the calling thread; options choose its backend,
/// debug mode and exception handler.
/// @code
/// corio::task<int> amain() {
///     co_await corio::sleep(std::chrono::milliseconds(10));
///     co_return 42;
/// }
/// int main() { return corio::run(amain()) == 42 ? 0 : 1; }
/// @endcode
template <class Awaitable>
auto run(Awaitable&& awaitable, loop_options options = {},
         corio::source_location where = corio::source_location::current()) {
    event_loop loop(std::move(options));
    return loop.run(static_cast<Awaitable&&>(awaitable), where);
}

}  // namespace corio
