#pragma once
// signal(signo): await a POSIX signal, through a signalfd.
//
// The first signal() for a signal blocks it in the calling thread for good, so that it
// is queued for the signalfd instead of running its default action (a SIGINT that
// arrives between two signal() calls waits for the next one instead of killing the
// process). corio's pool threads block every asynchronous signal, so a signal sent to
// the process reaches the loop's thread. Threads of your own should block them too.

#include <cerrno>
#include <csignal>
#include <type_traits>
#include <string>
#include <system_error>
#include <vector>

#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <corio/poll.hpp>
#include <corio/task.hpp>

namespace corio {

namespace detail {

// The set of signos, blocked in the calling thread; names them for error messages.
inline sigset_t block_set(const std::vector<int>& signos, std::string& names) {
    sigset_t set;
    ::sigemptyset(&set);
    for (int s : signos) {
        if (::sigaddset(&set, s) < 0 || s == SIGKILL || s == SIGSTOP)
            throw std::system_error(EINVAL, std::system_category(),
                                    "corio: signal(" + std::to_string(s) + "): not a signal that can be awaited");
        names += (names.empty() ? "" : ", ") + std::to_string(s);
    }
    if (const int e = ::pthread_sigmask(SIG_BLOCK, &set, nullptr); e != 0)
        throw std::system_error(e, std::system_category(), "corio: signal(" + names + "): pthread_sigmask");
    return set;
}

inline task<int> await_signals(std::vector<int> signos) {
    std::string names;
    const sigset_t set = block_set(signos, names);
    const int fd = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::system_category(), "corio: signal(" + names + "): signalfd");
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } guard{fd};
    for (;;) {
        signalfd_siginfo info{};
        const ssize_t n = ::read(fd, &info, sizeof info);
        if (n == static_cast<ssize_t>(sizeof info)) co_return static_cast<int>(info.ssi_signo);
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            throw std::system_error(errno, std::system_category(), "corio: signal(" + names + "): read");
        co_await wait_readable(fd);  // another waiter may take it first: then wait again
    }
}

}  // namespace detail

/// Blocks these signals in the calling thread now, before the loop starts: one that
/// arrives before the first signal() wait is then kept for it instead of ending the
/// process. Call it before starting threads of your own, which inherit the mask.
template <class... More>
requires(std::is_convertible_v<More, int>&&...) void block_signals(int signo, More... more) {
    std::string names;
    (void)detail::block_set({signo, static_cast<int>(more)...}, names);
}

/// Completes when signo (or any of the others) is delivered; yields which one came:
/// `co_await corio::signal(SIGINT, SIGTERM)`. Cancellable.
template <class... More>
requires(std::is_convertible_v<More, int>&&...) task<int> signal(int signo, More... more) {
    return detail::await_signals({signo, static_cast<int>(more)...});
}

}  // namespace corio
