#pragma once
// Symmetric transfer keeps the stack flat only where the compiler turns it into a tail
// call: clang always, GCC only when optimising (-O2) without ASan or TSan. Elsewhere
// every await that completes at once nests a frame, and a loop whose awaits all complete
// at once (an epoll read that finds data waiting, request after request) would overflow
// the stack. Past max_nesting below the loop's entry, the next resumption goes through
// the loop's ready queue instead, which unwinds the stack.

#include <coroutine>
#include <cstddef>

namespace corio::detail {

struct task_node;

inline thread_local char* loop_stack_top = nullptr;  // set while a loop runs on this thread
inline thread_local void (*resume_later)(std::coroutine_handle<>, task_node*) noexcept = nullptr;

inline constexpr std::ptrdiff_t max_nesting = std::ptrdiff_t{64} * 1024;

[[nodiscard]] inline bool stack_too_deep() noexcept {
#if defined(__clang__)
    return false;  // clang guarantees the tail call
#else
    char* top = loop_stack_top;
    return top != nullptr && top - static_cast<char*>(__builtin_frame_address(0)) > max_nesting;
#endif
}

}  // namespace corio::detail
