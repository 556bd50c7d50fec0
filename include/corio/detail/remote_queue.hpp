#pragma once
// The only door into a loop from other threads: a lock-free multi-producer,
// single-consumer stack plus an eventfd. Producers push; the one that finds the
// stack empty writes the eventfd, so a sleeping loop wakes exactly when needed.
// The consumer takes the whole stack with one exchange and reverses it (FIFO).

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <system_error>
#include <thread>

#include <sys/eventfd.h>
#include <unistd.h>

namespace corio::detail {

struct remote_item {
    remote_item* next = nullptr;
    // run == true: on the loop thread. run == false: the loop is gone; release resources.
    void (*fn)(remote_item* self, bool run) noexcept = nullptr;
};

class remote_queue {
public:
    remote_queue() : efd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
        if (efd_ < 0) throw std::system_error(errno, std::system_category(), "corio: eventfd for the loop's wakeup");
    }
    remote_queue(const remote_queue&) = delete;
    remote_queue& operator=(const remote_queue&) = delete;
    ~remote_queue() {
        close();
        ::close(efd_);
    }

    [[nodiscard]] int fd() const noexcept { return efd_; }

    /// Any thread. Returns false when the loop has closed the queue (the item was not taken).
    /// Once the item is in, the loop may run it and be destroyed before the wake below:
    /// close() waits for pushes in progress, so the eventfd outlives every wake.
    bool push(remote_item* item) noexcept {
        pushing_.fetch_add(1, std::memory_order_seq_cst);
        remote_item* head = head_.load(std::memory_order_seq_cst);
        bool taken = true;
        do {
            if (head == closed()) {
                taken = false;
                break;
            }
            item->next = head;
        } while (!head_.compare_exchange_weak(head, item, std::memory_order_seq_cst, std::memory_order_seq_cst));
        if (taken && head == nullptr) wake();
        pushing_.fetch_sub(1, std::memory_order_release);  // the last touch of this queue
        return taken;
    }

    void wake() noexcept {
        const std::uint64_t one = 1;
        // EAGAIN means the counter is already non-zero: the loop will wake anyway.
        [[maybe_unused]] auto n = ::write(efd_, &one, sizeof one);
    }

    /// Loop thread: a cheap check before taking.
    [[nodiscard]] bool maybe_nonempty() const noexcept {
        remote_item* h = head_.load(std::memory_order_relaxed);
        return h != nullptr && h != closed();
    }

    /// Loop thread: everything pushed so far, oldest first.
    remote_item* take_all() noexcept {
        remote_item* h = head_.exchange(nullptr, std::memory_order_acquire);
        if (h == closed()) {
            head_.store(closed(), std::memory_order_relaxed);
            return nullptr;
        }
        remote_item* fifo = nullptr;
        while (h != nullptr) {
            remote_item* next = h->next;
            h->next = fifo;
            fifo = h;
            h = next;
        }
        return fifo;
    }

    /// Loop thread, at destruction: refuse further pushes and release what is queued.
    void close() noexcept {
        remote_item* h = head_.exchange(closed(), std::memory_order_seq_cst);
        // A push that got its item in before us may still be waking us: wait for it.
        while (pushing_.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
        if (h == closed()) return;
        while (h != nullptr) {
            remote_item* next = h->next;
            h->fn(h, false);
            h = next;
        }
    }

    /// Whether the loop behind this queue has gone.
    [[nodiscard]] bool is_closed() const noexcept { return head_.load(std::memory_order_acquire) == closed(); }

    /// Resets the eventfd counter after a wakeup.
    void drain_eventfd() noexcept {
        std::uint64_t v = 0;
        [[maybe_unused]] auto n = ::read(efd_, &v, sizeof v);
    }

private:
    static remote_item* closed() noexcept {
        static remote_item sentinel;
        return &sentinel;
    }

    std::atomic<remote_item*> head_{nullptr};
    std::atomic<unsigned> pushing_{0};  // pushes in progress (see close)
    int efd_;
};

}  // namespace corio::detail
