#pragma once
/// @file
/// signal(signo): await a POSIX signal, through a signalfd.
///
/// signal() blocks its signals in the calling thread at once and for good, so that they
/// are queued for the signalfd instead of running their default action: a SIGINT that
/// arrives after signal() is called but before its task is awaited, or between two waits,
/// is kept for the next wait instead of killing the process. corio's pool threads block
/// every asynchronous signal, so a signal sent to the process reaches the loop's thread.
/// Threads of your own should block them too.
///
/// Every wait in progress on a thread when a signal arrives receives it (tokio's rule:
/// each Signal stream sees each delivery); a signal that arrives while no wait wants it
/// stays pending for the next one. The kernel keeps one pending instance of a signal, so
/// a burst of SIGINTs during a wait wakes it once.

#include <cerrno>
#include <csignal>
#include <memory>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <corio/detail/waiter_list.hpp>
#include <corio/poll.hpp>
#include <corio/task.hpp>

namespace corio {

namespace detail {

// The set of signos, checked; names them for error messages.
inline sigset_t signal_set(const std::vector<int>& signos, std::string& names) {
    sigset_t set;
    ::sigemptyset(&set);
    for (int s : signos) {
        if (::sigaddset(&set, s) < 0 || s == SIGKILL || s == SIGSTOP)
            throw std::system_error(EINVAL, std::system_category(),
                                    "corio: signal(" + std::to_string(s) + "): not a signal that can be awaited");
        names += (names.empty() ? "" : ", ") + std::to_string(s);
    }
    return set;
}

inline void block_in_this_thread(const sigset_t& set, const std::string& names) {
    if (const int e = ::pthread_sigmask(SIG_BLOCK, &set, nullptr); e != 0)
        throw std::system_error(e, std::system_category(), "corio: signal(" + names + "): pthread_sigmask");
}

// The set of signos, blocked in the calling thread.
inline sigset_t block_set(const std::vector<int>& signos, std::string& names) {
    const sigset_t set = signal_set(signos, names);
    block_in_this_thread(set, names);
    return set;
}

// One wait of signal(), a member of its thread's signal_hub while it lasts.
struct signal_member : sync_waiter {
    sigset_t set{};
    int got = 0;  // the signal delivered to this wait; 0 while it waits
    signal_member* reg_prev = nullptr;
    signal_member* reg_next = nullptr;
};

// The waits in progress on one thread, fed by one signalfd. One of them at a time, the
// reader, waits for that fd to become readable and reads it; the others sleep until a
// signal for them (or the reader's role) is handed to them. A signal read is handed to
// every wait that wants it. The fd's mask is narrowed to what the waits still want before
// each read, so a signal nobody waits for stays pending in the kernel for a later wait.
class signal_hub {
public:
    signal_hub() noexcept { ::sigemptyset(&mask_); }
    ~signal_hub() {
        if (fd_ >= 0) ::close(fd_);
    }
    signal_hub(const signal_hub&) = delete;
    signal_hub& operator=(const signal_hub&) = delete;

    /// Registers m (its set filled in) with this thread's hub, made on first use.
    static signal_hub& join(signal_member& m, const std::string& names) {
        signal_hub*& current = of_this_thread();
        std::unique_ptr<signal_hub> made;
        if (current == nullptr) made = std::make_unique<signal_hub>();
        signal_hub& h = current != nullptr ? *current : *made;
        // The fd wakes its reader for the union of what every wait wants, one already
        // pending included: signalfd() wakes the fd's pollers when it changes the mask.
        sigset_t mask = h.mask_;
        ::sigorset(&mask, &mask, &m.set);
        h.fd_ = h.set_mask(h.fd_, mask, names);
        h.mask_ = mask;
        if (made) current = made.release();
        m.reg_prev = h.tail_;
        (h.tail_ != nullptr ? h.tail_->reg_next : h.head_) = &m;
        h.tail_ = &m;
        return h;
    }

    /// m's wait is over (returned, failed or cancelled). Noexcept: runs as frames unwind.
    void leave(signal_member& m) noexcept {
        if (m.list != nullptr) sleeping_.remove(&m);
        (m.reg_prev != nullptr ? m.reg_prev->reg_next : head_) = m.reg_next;
        (m.reg_next != nullptr ? m.reg_next->reg_prev : tail_) = m.reg_prev;
        m.reg_prev = m.reg_next = nullptr;
        if (reader_ == &m) reader_ = nullptr;
        if (head_ == nullptr) {
            of_this_thread() = nullptr;
            delete this;
            return;
        }
        // The reader's role must not lapse while others wait: a sleeping wait takes it.
        if (reader_ == nullptr) {
            for (signal_member* w = head_; w != nullptr; w = w->reg_next) {
                if (w->got == 0 && w->list != nullptr) {
                    sleeping_.remove(w);
                    w->wake();
                    break;
                }
            }
        }
    }

    /// With no reader: reads every pending signal some wait still wants, and hands each to
    /// them all. A reader is left to do it: the kernel wakes its poll for what is pending,
    /// also when a new wait widens the fd's mask (signalfd() wakes the fd's pollers), and a
    /// signal read under its poll could leave that poll armed (io_uring checks the fd again
    /// before it completes a poll, and would find nothing).
    void drain(const std::string& names) {
        while (reader_ == nullptr) {
            const sigset_t want = wanted();
            if (::sigisemptyset(&want) == 1) return;
            (void)set_mask(fd_, want, names);
            mask_ = want;
            signalfd_siginfo info{};
            const ssize_t n = ::read(fd_, &info, sizeof info);
            if (n == static_cast<ssize_t>(sizeof info)) {
                deliver(static_cast<int>(info.ssi_signo));
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) return;
            throw std::system_error(errno, std::system_category(), "corio: signal(" + names + "): read");
        }
    }

    [[nodiscard]] int fd() const noexcept { return fd_; }
    [[nodiscard]] signal_member* reader() const noexcept { return reader_; }
    void set_reader(signal_member* m) noexcept { reader_ = m; }
    waiter_list& sleeping() noexcept { return sleeping_; }

private:
    // A new signalfd (fd -1) or fd itself, now reading mask.
    static int set_mask(int fd, const sigset_t& mask, const std::string& names) {
        const int r = ::signalfd(fd, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (r < 0) throw std::system_error(errno, std::system_category(), "corio: signal(" + names + "): signalfd");
        return r;
    }

    static signal_hub*& of_this_thread() noexcept {
        static thread_local signal_hub* hub = nullptr;
        return hub;
    }

    [[nodiscard]] sigset_t wanted() const noexcept {
        sigset_t want;
        ::sigemptyset(&want);
        for (const signal_member* w = head_; w != nullptr; w = w->reg_next)
            if (w->got == 0) ::sigorset(&want, &want, &w->set);
        return want;
    }

    void deliver(int signo) noexcept {
        for (signal_member* w = head_; w != nullptr; w = w->reg_next) {
            if (w->got != 0 || ::sigismember(&w->set, signo) != 1) continue;
            w->got = signo;
            if (w->list != nullptr) {
                sleeping_.remove(w);
                w->wake();
            }
        }
    }

    int fd_ = -1;
    sigset_t mask_;
    signal_member* head_ = nullptr;  // every wait, oldest first
    signal_member* tail_ = nullptr;
    signal_member* reader_ = nullptr;  // the wait suspended on wait_readable(fd_)
    waiter_list sleeping_;             // the waits suspended until something is handed to them
};

// Sleeps in the hub until a signal or the reader's role is handed over; cancellable.
struct signal_sleep {
    signal_member* m;
    waiter_list* on;
    static bool await_ready() noexcept { return false; }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        return m->enqueue(*on, h);
    }
    void await_resume() const { m->wait.throw_if_cancelled(); }
};

inline task<int> await_signals(sigset_t set, std::string names) {
    block_in_this_thread(set, names);  // the thread that waits, if it is not the caller's
    signal_member me;
    me.set = set;
    signal_hub& hub = signal_hub::join(me, names);
    struct leaver {
        signal_hub& hub;
        signal_member& me;
        ~leaver() { hub.leave(me); }
    } guard{hub, me};
    for (;;) {
        hub.drain(names);
        if (me.got != 0) co_return me.got;
        if (hub.reader() == nullptr) {
            hub.set_reader(&me);
            co_await wait_readable(hub.fd());  // cancelled: the guard hands the role on
            hub.set_reader(nullptr);
        } else {
            co_await signal_sleep{&me, &hub.sleeping()};
        }
    }
}

}  // namespace detail

/// Blocks these signals in the calling thread now, before the loop starts: one that
/// arrives before the first signal() call is then kept for it instead of ending the
/// process. Call it before starting threads of your own, which inherit the mask.
template <class... More>
requires(std::is_convertible_v<More, int>&&...) void block_signals(int signo, More... more) {
    std::string names;
    (void)detail::block_set({signo, static_cast<int>(more)...}, names);
}

/// Completes when signo (or any of the others) is delivered; yields which one came:
/// `co_await corio::signal(SIGINT, SIGTERM)`. The call itself blocks the signals in the
/// calling thread (and throws std::system_error for one that cannot be awaited), so one
/// raised before the task is awaited is kept for it. Cancellable.
template <class... More>
requires(std::is_convertible_v<More, int>&&...) task<int> signal(int signo, More... more) {
    std::string names;
    const sigset_t set = detail::block_set({signo, static_cast<int>(more)...}, names);
    return detail::await_signals(set, std::move(names));
}

}  // namespace corio
