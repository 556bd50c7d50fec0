#pragma once
// Coroutine frames come from a per-thread cache of blocks in 16-byte size classes (one
// loop per thread: in effect a per-loop pool). A task's frame is allocated and freed
// at a rate where the general-purpose allocator is most of the cost of creating and
// awaiting a task. A frame freed on another thread (run_coroutine_threadsafe) simply
// joins that thread's cache. Under ASan or TSan the cache is off, so the sanitizers
// see every frame.

#include <cstddef>
#include <cstdint>
#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CORIO_FRAME_POOL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CORIO_FRAME_POOL 0
#endif
#endif
#ifndef CORIO_FRAME_POOL
#define CORIO_FRAME_POOL 1
#endif

namespace corio::detail {

class frame_pool {
public:
    // Fine classes: a frame or spawn state rounded up to 64 bytes wasted a third of a small
    // task's memory (a 144-byte frame took 192). 16 is what the allocator aligns to anyway.
    static constexpr std::size_t granule = 16;
    static constexpr std::size_t classes = 64;         // frames up to 1 KiB
    static constexpr std::uint32_t max_cached = 4096;  // per class: the rest goes back

    frame_pool() = default;
    frame_pool(const frame_pool&) = delete;
    frame_pool& operator=(const frame_pool&) = delete;
    ~frame_pool() {
        for (auto& l : lists_) {
            while (l.head != nullptr) {
                block* b = l.head;
                l.head = b->next;
                ::operator delete(b);
            }
        }
    }

    void* allocate(std::size_t n) {
        const std::size_t c = (n - 1) / granule;
        if (c >= classes) return ::operator new(n);
        list& l = lists_[c];
        if (l.head != nullptr) {
            block* b = l.head;
            l.head = b->next;
            --l.count;
            return b;
        }
        return ::operator new((c + 1) * granule);
    }

    void deallocate(void* p, std::size_t n) noexcept {
        const std::size_t c = (n - 1) / granule;
        if (c >= classes || lists_[c].count >= max_cached) {
            ::operator delete(p);
            return;
        }
        list& l = lists_[c];
        auto* b = static_cast<block*>(p);
        b->next = l.head;
        l.head = b;
        ++l.count;
    }

    static frame_pool& local() noexcept {
        static thread_local frame_pool pool;
        return pool;
    }

private:
    struct block {
        block* next;
    };
    struct list {
        block* head = nullptr;
        std::uint32_t count = 0;
    };
    list lists_[classes];
};

inline void* allocate_frame(std::size_t n) {
#if CORIO_FRAME_POOL
    return frame_pool::local().allocate(n);
#else
    return ::operator new(n);
#endif
}

inline void deallocate_frame(void* p, [[maybe_unused]] std::size_t n) noexcept {
#if CORIO_FRAME_POOL
    frame_pool::local().deallocate(p, n);
#else
    ::operator delete(p);
#endif
}

}  // namespace corio::detail
