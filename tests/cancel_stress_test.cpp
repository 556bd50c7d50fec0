// A seeded, randomized stress test of cancellation races. Each seed makes a random tree
// (std::mt19937_64, fixed per seed) of gather / gather_settled / when_any / wait_for /
// with_task_group / shield / move_on_after / fail_after / spawn, over leaves that sleep,
// yield, throw, push and pop a queue, take a semaphore, echo over a loopback socket,
// run on the thread pool, or wait for a promise that another thread completes. Spawned
// tasks are cancelled at random times: at once, from call_later timers, from other tasks,
// and from random places in the tree (possibly their own descendants). The tree's shape
// is fixed by the seed; its interleavings are not (timers, threads, the kernel).
//
// After each run (the loop has returned and is destroyed) the test checks:
// - every coroutine frame the test made was destroyed, and none while suspended (a
//   frame_token local in every generated coroutine counts those that ran, a frame_arg
//   parameter every frame from its creation);
// - every std::runtime_error a leaf threw (each has a unique id) was either surfaced at an
//   await the test observed, or reported to loop_options.exception_handler: exactly once,
//   never both, never neither. The one exception by design: a promise's error that
//   arrives after its future was cancelled is dropped (asyncio's wrap_future does the
//   same); such ids are counted apart;
// - no cancel lost: a spawned task whose future::cancel() returned true ended cancelled or
//   with an exception (generated tasks never swallow cancelled_error: the only catch of it
//   is a "clean up, then rethrow" shape);
// - every spawned task ended; every value a combinator delivered is the value its child
//   returned; a queue drops or duplicates nothing; a semaphore gets all its units back;
//   an echo comes back intact;
// - no file descriptor left open; each seed ends within 20 s (a watchdog thread aborts,
//   printing the seed, the tree and the live tasks, if not).
//
// CI runs a fixed list of seeds. CORIO_STRESS_ITERATIONS=N runs N seeds from
// CORIO_STRESS_SEED_BASE (default: random, printed); CORIO_STRESS_SEED=S replays one seed
// (the failure message prints it, with the tree). The cases at the end are the bugs it
// found, each reduced to a deterministic test.
//
// GCC 12: no co_await inside a macro argument, and no class temporary with a non-trivial
// destructor inside a co_await expression: every awaitable below is a named local first.

#include <catch2/catch.hpp>

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using corio::future;
using corio::task;
using usec = std::chrono::microseconds;
using future_status = corio::detail::future_state_base::status;
namespace net = corio::net;

// ---------------------------------------------------------------------------------------
// The plan: a tree fixed by the seed.

enum class kind : std::uint8_t {
    // leaves
    value,          // returns at once
    sleep,          // sleep(delay)
    yield,          // n yields
    fail,           // throws leaf_error (mode: at once, after a yield, after a sleep)
    to_thread,      // a pool job that sleeps, returns or throws
    promise,        // awaits a promise completed from a std::thread (mode 0) or a pool job (1)
    echo,           // a loopback echo: server and client under gather
    cancel_random,  // cancels a random registered spawned task (after mode: 0 nothing, 1 yield, 2 sleep)
    queue,          // a producer and 1-2 consumers of a queue under gather
    // inner nodes
    seq,         // children one after another
    gather,      // gather(range)
    gather2,     // gather(a, b)
    settled,     // gather_settled(range)
    when_any,    // when_any(range), or when_any(a, b) (mode 1)
    wait_for,    // wait_for(child, timeout)
    shield,      // shield(child)
    move_on,     // move_on_after(timeout, block); mode 1: a sibling cancels the scope after delay
    fail_after,  // fail_after(timeout, child)
    group,       // with_task_group: acts.size() children spawned into it (+1 run in the body)
    spawn,       // spawn(child) and one of spawn_mode; kids[1]: a sibling run meanwhile
    swallow,     // catches the child's errors (never cancelled_error)
    cleanup,     // catches cancelled_error, runs kids[1] (shielded if mode 0), rethrows
    semaphore,   // 2-4 workers over a semaphore of n units, gather (mode 0) or gather_settled (1)
};

const char* kind_name(kind k) {
    switch (k) {
        case kind::value:
            return "value";
        case kind::sleep:
            return "sleep";
        case kind::yield:
            return "yield";
        case kind::fail:
            return "fail";
        case kind::to_thread:
            return "to_thread";
        case kind::promise:
            return "promise";
        case kind::echo:
            return "echo";
        case kind::cancel_random:
            return "cancel_random";
        case kind::queue:
            return "queue";
        case kind::seq:
            return "seq";
        case kind::gather:
            return "gather";
        case kind::gather2:
            return "gather2";
        case kind::settled:
            return "gather_settled";
        case kind::when_any:
            return "when_any";
        case kind::wait_for:
            return "wait_for";
        case kind::shield:
            return "shield";
        case kind::move_on:
            return "move_on_after";
        case kind::fail_after:
            return "fail_after";
        case kind::group:
            return "task_group";
        case kind::spawn:
            return "spawn";
        case kind::swallow:
            return "swallow";
        case kind::cleanup:
            return "cleanup";
        case kind::semaphore:
            return "semaphore";
    }
    return "?";
}

// What a spawn node does with the future of the task it spawned.
enum spawn_mode : int {
    sp_await,         // awaits it
    sp_cancel_now,    // cancels it at once (before its first step), then awaits it
    sp_timer_cancel,  // call_later(delay) cancels it; awaits it
    sp_canceller,     // a spawned task cancels it after delay; awaits it
    sp_detach,        // drops the future: the task runs on (its failure is reported)
    sp_detach_timer,  // drops the future, a timer cancels the task later
    sp_settle,        // a timer cancels it; gather_settled(future)
    sp_race,          // when_any(future, sibling): the loser is cancelled
    sp_wait_for,      // wait_for(future, timeout)
    sp_modes
};
const char* const spawn_mode_names[] = {"await",        "cancel-now", "timer-cancel", "canceller", "detach",
                                        "detach+timer", "settle",     "race",         "wait_for"};

// What a task_group body does with each child it spawned.
enum group_act : int { ga_ignore, ga_await, ga_cancel_now, ga_timer_cancel, ga_acts };
const char* const group_act_names[] = {"ignore", "await", "cancel-now", "timer-cancel"};

struct plan {
    kind k = kind::value;
    int id = 0;
    int value = 0;
    int delay = 0;    // µs
    int timeout = 0;  // µs (queue: capacity)
    int n = 0;
    int mode = 0;
    int fail = 0;  // 0: no failure; else where it fails (kind-specific)
    bool flag = false;
    std::uint64_t seed = 0;
    std::vector<int> acts;    // group: one group_act per spawned child
    std::vector<int> delays;  // group: the timer-cancel delays
    std::vector<plan> kids;
};

std::uint64_t splitmix(std::uint64_t& s) {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

class generator {
public:
    explicit generator(std::uint64_t seed) : rng_(seed) { budget_ = pick(10, 60); }

    plan root() {
        plan p = make(kind::settled);
        const int n = pick(2, 5);
        for (int i = 0; i < n; ++i) p.kids.push_back(node(1));
        return p;
    }

private:
    int pick(int lo, int hi) { return lo + static_cast<int>(rng_() % static_cast<std::uint64_t>(hi - lo + 1)); }
    bool chance(int pct) { return static_cast<int>(rng_() % 100) < pct; }
    // Half the delays come from a coarse grid, so that timers, cancels and completions often
    // fall due in the same loop turn (seed 6's bug needed that).
    int grid_us() {
        static constexpr int grid[] = {0, 250, 500, 1000, 2000};
        return grid[pick(0, 4)];
    }
    int sleep_us() {
        if (chance(50)) return grid_us();
        const int r = pick(0, 99);
        if (r < 70) return pick(0, 1000);
        if (r < 95) return pick(1000, 3000);
        return pick(5000, 15000);
    }
    int cancel_us() { return chance(50) ? grid_us() : pick(0, 3000); }
    int timeout_us() {
        if (chance(10)) return 0;
        return chance(50) ? grid_us() : pick(0, 4000);
    }

    template <std::size_t N>
    kind choose(const std::pair<kind, int> (&w)[N]) {
        int total = 0;
        for (auto& [k, n] : w) total += n;
        int r = pick(0, total - 1);
        for (auto& [k, n] : w) {
            if (r < n) return k;
            r -= n;
        }
        return w[0].first;
    }

    plan make(kind k) {
        plan p;
        p.k = k;
        p.id = next_id_++;
        p.value = pick(1, 999);
        p.seed = rng_();
        return p;
    }

    plan small_leaf() {
        static constexpr std::pair<kind, int> w[] = {
            {kind::value, 2}, {kind::sleep, 4}, {kind::yield, 2}, {kind::fail, 2}};
        return leaf(choose(w));
    }

    plan leaf() {
        static constexpr std::pair<kind, int> w[] = {
            {kind::value, 8},   {kind::sleep, 14}, {kind::yield, 8},         {kind::fail, 14}, {kind::to_thread, 5},
            {kind::promise, 7}, {kind::echo, 4},   {kind::cancel_random, 6}, {kind::queue, 5},
        };
        kind k = choose(w);
        if (k == kind::echo && echo_left_ == 0) k = kind::sleep;
        if (k == kind::promise && threads_left_ == 0) k = kind::fail;
        return leaf(k);
    }

    plan leaf(kind k) {
        plan p = make(k);
        switch (k) {
            case kind::sleep:
                p.delay = sleep_us();
                break;
            case kind::yield:
                p.n = pick(1, 4);
                break;
            case kind::fail:
                p.mode = pick(0, 2);
                p.delay = sleep_us();
                break;
            case kind::to_thread:
                p.delay = pick(0, 500);
                p.fail = chance(25) ? 1 : 0;
                break;
            case kind::promise:
                --threads_left_;
                p.mode = pick(0, 1);
                p.delay = pick(0, 1500);
                p.fail = chance(30) ? 1 : 0;
                break;
            case kind::echo:
                --echo_left_;
                p.n = pick(1, 8192);
                p.fail = chance(30) ? pick(1, 3) : 0;
                break;
            case kind::cancel_random:
                p.mode = pick(0, 2);
                p.delay = sleep_us();
                break;
            case kind::queue:
                p.n = pick(0, 8);
                p.timeout = pick(0, 3);  // capacity (0: unbounded)
                p.mode = pick(0, 1);     // consumers - 1
                p.fail = chance(40) ? pick(1, 2) : 0;
                p.delay = pick(0, std::max(0, p.n - 1));  // the item at which it fails
                break;
            default:
                break;
        }
        return p;
    }

    plan node(int depth) {
        static constexpr int inner_pct[] = {100, 80, 65, 50, 35, 20, 0};
        if (depth >= 6 || budget_ <= 0 || !chance(inner_pct[depth])) return leaf();
        --budget_;
        static constexpr std::pair<kind, int> w[] = {
            {kind::seq, 6},      {kind::gather, 10}, {kind::gather2, 4}, {kind::settled, 6},    {kind::when_any, 8},
            {kind::wait_for, 8}, {kind::shield, 5},  {kind::move_on, 6}, {kind::fail_after, 5}, {kind::group, 9},
            {kind::spawn, 12},   {kind::swallow, 6}, {kind::cleanup, 5}, {kind::semaphore, 4},
        };
        plan p = make(choose(w));
        auto kids = [&](int n) {
            for (int i = 0; i < n; ++i) p.kids.push_back(node(depth + 1));
        };
        switch (p.k) {
            case kind::seq:
                kids(pick(1, 3));
                break;
            case kind::gather:
                kids(pick(1, 4));
                break;
            case kind::gather2:
                kids(2);
                break;
            case kind::settled:
                kids(pick(1, 4));
                break;
            case kind::when_any:
                kids(pick(1, 3));
                p.mode = p.kids.size() == 2 && chance(50) ? 1 : 0;
                break;
            case kind::wait_for:
            case kind::fail_after:
                kids(1);
                p.timeout = timeout_us();
                break;
            case kind::shield:
            case kind::swallow:
                kids(1);
                break;
            case kind::move_on:
                kids(1);
                p.timeout = timeout_us();
                p.mode = chance(30) ? 1 : 0;
                p.delay = cancel_us();
                break;
            case kind::group: {
                const int n = pick(0, 3);
                for (int i = 0; i < n; ++i) {
                    p.acts.push_back(pick(0, ga_acts - 1));
                    p.delays.push_back(cancel_us());
                }
                kids(n);
                if (n == 0 || chance(60)) kids(1);  // run in the body itself
                p.mode = chance(25) ? 1 : 0;        // group_errors::all
                p.flag = chance(50);                // children are targets of cancel_random
                p.fail = chance(15) ? 1 : 0;        // the body calls group.cancel() at its end
                break;
            }
            case kind::spawn:
                p.mode = pick(0, sp_modes - 1);
                p.delay = cancel_us();
                p.timeout = timeout_us();
                p.flag = chance(50);
                kids(1);
                if (p.mode == sp_race || chance(40)) kids(1);
                break;
            case kind::cleanup:
                kids(1);
                p.kids.push_back(small_leaf());
                p.mode = pick(0, 1);
                break;
            case kind::semaphore:
                kids(pick(2, 4));
                p.n = pick(1, 2);
                p.mode = pick(0, 1);
                break;
            default:
                break;
        }
        return p;
    }

    std::mt19937_64 rng_;
    int next_id_ = 0;
    int budget_ = 0;
    int echo_left_ = 3;
    int threads_left_ = 6;
};

void describe(const plan& p, std::string& out) {
    out += "#" + std::to_string(p.id) + " " + kind_name(p.k);
    auto field = [&](const char* name, int v) { out += std::string(" ") + name + "=" + std::to_string(v); };
    switch (p.k) {
        case kind::value:
            break;
        case kind::sleep:
            field("us", p.delay);
            break;
        case kind::yield:
            field("n", p.n);
            break;
        case kind::fail:
            out += p.mode == 0 ? " at-once" : p.mode == 1 ? " after-yield" : " after-sleep";
            if (p.mode == 2) field("us", p.delay);
            break;
        case kind::to_thread:
        case kind::promise:
            if (p.k == kind::promise) out += p.mode == 0 ? " std::thread" : " pool";
            field("us", p.delay);
            if (p.fail) out += " fails";
            break;
        case kind::echo:
            field("bytes", p.n);
            if (p.fail) field("fails-at", p.fail);
            break;
        case kind::cancel_random:
            field("after", p.mode);
            field("us", p.delay);
            field("pick", p.value);
            break;
        case kind::queue:
            field("items", p.n);
            field("capacity", p.timeout);
            field("consumers", p.mode + 1);
            if (p.fail != 0) {
                out += p.fail == 1 ? " producer-fails-at=" : " consumer-fails-after=";
                out += std::to_string(p.delay);
            }
            break;
        case kind::wait_for:
        case kind::fail_after:
            field("timeout_us", p.timeout);
            break;
        case kind::move_on:
            field("timeout_us", p.timeout);
            if (p.mode == 1) field("scope-cancel-us", p.delay);
            break;
        case kind::when_any:
            if (p.mode == 1) out += " fixed";
            break;
        case kind::group:
            if (p.mode == 1) out += " errors=all";
            for (std::size_t i = 0; i < p.acts.size(); ++i)
                out += std::string(" child") + std::to_string(i) + "=" + group_act_names[p.acts[i]] +
                       (p.acts[i] == ga_timer_cancel ? "@" + std::to_string(p.delays[i]) + "us" : "");
            if (p.kids.size() > p.acts.size()) out += " +inline";
            if (p.flag) out += " targets";
            if (p.fail != 0) out += " group.cancel()";
            break;
        case kind::spawn:
            out += std::string(" ") + spawn_mode_names[p.mode];
            field("delay_us", p.delay);
            if (p.mode == sp_wait_for) field("timeout_us", p.timeout);
            if (p.flag) out += " target";
            if (p.kids.size() > 1) out += " +sibling";
            break;
        case kind::cleanup:
            out += p.mode == 0 ? " shielded" : " unshielded";
            break;
        case kind::semaphore:
            field("units", p.n);
            out += p.mode == 0 ? " gather" : " settled";
            break;
        default:
            break;
    }
}

void dump(const plan& p, int depth, std::string& out) {
    out.append(static_cast<std::size_t>(depth) * 2, ' ');
    describe(p, out);
    out += '\n';
    for (const plan& k : p.kids) dump(k, depth + 1, out);
}

std::string dump(const plan& p) {
    std::string out;
    dump(p, 0, out);
    return out;
}

void index_plan(const plan& p, const plan* parent, std::unordered_map<int, std::pair<const plan*, const plan*>>& idx) {
    idx[p.id] = {&p, parent};
    for (const plan& k : p.kids) index_plan(k, &p, idx);
}

// ---------------------------------------------------------------------------------------
// The run's ledger.

struct leaf_error : std::runtime_error {
    int id;
    explicit leaf_error(int i) : std::runtime_error("stress: leaf error #" + std::to_string(i)), id(i) {}
};

/// The failure a thread hands to a promise. Thrown and caught rather than made by
/// make_exception_ptr(leaf_error(id)): that copies the temporary, whose message shares its
/// copy-on-write buffer with the copy; the temporary then dies on this thread while the loop
/// reads the copy, and TSan, which cannot see libstdc++'s reference count, calls it a race.
std::exception_ptr leaf_failure(int id) {
    try {
        throw leaf_error(id);
    } catch (...) {
        return std::current_exception();
    }
}

struct spawn_record {
    int node = 0;
    bool cancel_accepted = false;
    bool done = false;
    future_status final = future_status::pending;
};

struct run_ctx {
    std::uint64_t seed = 0;
    const plan* root = nullptr;
    std::unordered_map<int, std::pair<const plan*, const plan*>> index;  // id -> (node, parent)
    corio::event_loop* loop = nullptr;

    long frames_made = 0;
    long frames_gone = 0;
    std::vector<std::string> violations;

    std::mutex thrown_mutex;  // leaves throw on pool threads and std::threads too
    std::vector<int> thrown;
    std::vector<int> caught;                // surfaced at an await the test observed
    std::vector<int> reported;              // through the loop's exception handler
    std::set<int> discardable;              // a promise's error that comes after its future was cancelled
    std::vector<int> dropped;               // failures under a gather_settled whose parent was cancelled
    std::unordered_map<int, int> returned;  // node id -> the value it returned

    std::vector<spawn_record> spawned;
    struct target {
        future<int> f;
        std::size_t rec;
    };
    std::vector<target> targets;  // for cancel_random
    std::vector<std::thread> threads;

    long cancels_accepted = 0;
    long cancels_refused = 0;
    long timeouts = 0;
    long system_errors = 0;
    long cancellations = 0;

    void violation(std::string s) {
        if (violations.size() < 40) violations.push_back(std::move(s));
    }

    std::string where(int id) const {
        std::string out;
        for (auto it = index.find(id); it != index.end();) {
            std::string one;
            describe(*it->second.first, one);
            out = out.empty() ? one : one + " > " + out;
            const plan* parent = it->second.second;
            it = parent != nullptr ? index.find(parent->id) : index.end();
        }
        return out.empty() ? "#" + std::to_string(id) : out;
    }

    void record_thrown(int id) {
        std::lock_guard lock(thrown_mutex);
        thrown.push_back(id);
    }
    [[noreturn]] void throw_leaf(int id) {
        record_thrown(id);
        throw leaf_error(id);
    }

    void expect(const plan& kid, int v, const char* what) {
        auto it = returned.find(kid.id);
        if (it == returned.end())
            violation(std::string(what) + " delivered " + std::to_string(v) +
                      " for a node that never returned: " + where(kid.id));
        else if (it->second != v)
            violation(std::string(what) + " delivered " + std::to_string(v) + " but the node returned " +
                      std::to_string(it->second) + ": " + where(kid.id));
    }

    /// Files a failure the test observed (into caught) or the loop reported (into reported).
    void classify(const std::exception_ptr& e, std::vector<int>& into, const std::string& what) {
        try {
            std::rethrow_exception(e);
        } catch (const leaf_error& x) {
            into.push_back(x.id);
        } catch (const corio::exception_group& g) {
            for (const auto& x : g.exceptions()) classify(x, into, what);
        } catch (const corio::timeout_error&) {
            ++timeouts;
        } catch (const std::system_error&) {
            ++system_errors;  // an echo that lost its peer to a cancel
        } catch (const corio::cancelled_error&) {
            if (&into == &reported)
                violation(what + ": a cancellation was reported as an error");
            else
                ++cancellations;
        } catch (const std::exception& x) {
            violation(what + ": unexpected exception: " + x.what());
        } catch (...) {
            violation(what + ": unexpected exception of an unknown type");
        }
    }

    void on_report(const corio::exception_context& x) {
        if (x.kind != corio::report_kind::unretrieved_exception || !x.exception) {
            violation("unexpected report: " + x.message);
            return;
        }
        classify(x.exception, reported, "report '" + x.message + "'");
    }

    std::size_t track(future<int>& f, int node) {
        const std::size_t rec = spawned.size();
        spawned.push_back(spawn_record{node});
        f.add_done_callback([this, rec](const future<int>& g) {
            spawned[rec].done = true;
            spawned[rec].final = g.state_ptr()->state();
        });
        return rec;
    }

    void cancel(future<int>& f, std::size_t rec) {
        if (f.cancel()) {
            spawned[rec].cancel_accepted = true;
            ++cancels_accepted;
        } else {
            ++cancels_refused;
        }
    }

    long destroyed_suspended = 0;
};

/// A local of every generated coroutine: counts frames made and destroyed, and notices a
/// frame destroyed while suspended (neither returned nor unwinding an exception).
class frame_token {
public:
    frame_token(run_ctx& c, int node) noexcept : c_(&c), node_(node), unwinding_at_(std::uncaught_exceptions()) {
        ++c_->frames_made;
    }
    frame_token(const frame_token&) = delete;
    frame_token& operator=(const frame_token&) = delete;
    ~frame_token() {
        ++c_->frames_gone;
        if (!finished_ && std::uncaught_exceptions() <= unwinding_at_) {
            ++c_->destroyed_suspended;
            c_->violation("a frame was destroyed while suspended: " +
                          (node_ >= 0 ? c_->where(node_) : std::string("(a helper coroutine)")));
        }
    }
    int ret(int v) {
        finished_ = true;
        if (node_ >= 0) c_->returned[node_] = v;
        return v;
    }
    void done() noexcept { finished_ = true; }

private:
    run_ctx* c_;
    int node_;
    int unwinding_at_;
    bool finished_ = false;
};

/// The last parameter of every generated coroutine (defaulted): parameters are copied into
/// the frame as it is made, before the body runs, so this counts every frame from its
/// creation, including one that never ran; frame_token (a local) only sees those that did.
struct frame_arg {
    static inline thread_local long live = 0;  // frames live on the loop's thread
    frame_arg() noexcept { ++live; }
    frame_arg(const frame_arg&) noexcept { ++live; }
    frame_arg& operator=(const frame_arg&) = default;
    ~frame_arg() { --live; }
};

// ---------------------------------------------------------------------------------------
// The nodes.

task<int> make(run_ctx& c, const plan& p);

task<int> value_leaf(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    co_return tok.ret(p.value);
}

task<int> sleep_leaf(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    const auto t0 = std::chrono::steady_clock::now();
    auto s = corio::sleep(usec(p.delay));
    co_await s;
    if (std::chrono::steady_clock::now() - t0 < usec(p.delay)) c.violation("a sleep returned early: " + c.where(p.id));
    co_return tok.ret(p.value);
}

task<int> yield_leaf(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    for (int i = 0; i < p.n; ++i) co_await corio::yield();
    co_return tok.ret(p.value);
}

task<int> fail_leaf(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    if (p.mode == 1) {
        co_await corio::yield();
    } else if (p.mode == 2) {
        auto s = corio::sleep(usec(p.delay));
        co_await s;
    }
    c.throw_leaf(p.id);
    co_return 0;  // not reached (a coroutine needs a co_ statement when mode is 0)
}

task<int> to_thread_leaf(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    auto job = corio::to_thread([&c, id = p.id, d = p.delay, fail = p.fail != 0, v = p.value]() -> int {
        std::this_thread::sleep_for(usec(d));
        if (fail) c.throw_leaf(id);
        return v;
    });
    const int v = co_await job;
    if (v != p.value) c.violation("to_thread delivered a wrong value: " + c.where(p.id));
    co_return tok.ret(v);
}

// Keeps the loop alive until the promise's thread has delivered everything: a promise
// completed after its loop is gone leaks its state (by design, future.hpp). Shielded, so
// the cancel of the drain waits for it.
task<> thread_keeper(run_ctx& c, future<void> delivered, frame_arg = {}) {
    frame_token tok(c, -1);
    auto sh = corio::shield(std::move(delivered));
    co_await sh;
    tok.done();
}

task<> pool_keeper(run_ctx& c, corio::promise<int> pr, const plan& p, frame_arg = {}) {
    frame_token tok(c, -1);
    auto job = [&c, &pr, &p] {
        std::this_thread::sleep_for(usec(p.delay));
        if (p.fail) {
            c.record_thrown(p.id);
            pr.set_exception(leaf_failure(p.id));
        } else {
            pr.set_value(p.value);
        }
    };
    auto sh = corio::shield(corio::to_thread(job));  // the promise is always completed
    co_await sh;
    tok.done();
}

task<int> promise_leaf(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    corio::promise<int> pr;
    future<int> f = pr.get_future();
    if (p.mode == 0) {
        corio::promise<void> delivered;
        future<void> delivered_f = delivered.get_future();
        c.threads.emplace_back([&c, pr = std::move(pr), delivered = std::move(delivered), id = p.id, d = p.delay,
                                fail = p.fail != 0, v = p.value]() mutable {
            std::this_thread::sleep_for(usec(d));
            if (fail) {
                c.record_thrown(id);
                pr.set_exception(leaf_failure(id));
            } else {
                pr.set_value(v);
            }
            delivered.set_value();
        });
        auto keeper = corio::spawn(thread_keeper(c, std::move(delivered_f)));
        (void)keeper;
    } else {
        auto keeper = corio::spawn(pool_keeper(c, std::move(pr), p));
        (void)keeper;
    }
    int v = 0;
    try {
        v = co_await f;
    } catch (const corio::cancelled_error&) {
        // Our cancel reached the promise's future: it ended cancelled at once, and the
        // thread's late result (an error too) will be dropped.
        if (f.cancelled()) c.discardable.insert(p.id);
        throw;
    }
    if (v != p.value) c.violation("a promise delivered a wrong value: " + c.where(p.id));
    co_return tok.ret(v);
}

task<int> echo_server(run_ctx& c, net::tcp_listener& l, frame_arg = {}) {
    frame_token tok(c, -1);
    auto acc = l.accept();
    net::tcp_stream s = co_await acc;
    std::array<char, 2048> buf{};
    int total = 0;
    for (;;) {
        auto rd = s.read_some(buf);
        const std::size_t n = co_await rd;
        if (n == 0) break;
        auto wr = s.write_all(corio::const_buffer(buf.data(), n));
        co_await wr;
        total += static_cast<int>(n);
    }
    tok.done();
    co_return total;
}

task<int> echo_client(run_ctx& c, const plan& p, net::endpoint ep, frame_arg = {}) {
    frame_token tok(c, -1);
    if (p.fail == 1) c.throw_leaf(p.id);
    auto connecting = net::tcp_stream::connect(ep);
    net::tcp_stream s = co_await std::move(connecting);
    std::string msg(static_cast<std::size_t>(p.n), '\0');
    std::uint64_t r = p.seed;
    for (char& ch : msg) ch = static_cast<char>(splitmix(r));
    auto wr = s.write_all(msg);
    co_await wr;
    if (p.fail == 2) c.throw_leaf(p.id);
    std::string back(msg.size(), '\0');
    auto rd = s.read_exact(back);
    co_await rd;
    if (back != msg) c.violation("the echo came back altered: " + c.where(p.id));
    if (p.fail == 3) c.throw_leaf(p.id);
    s.shutdown(net::shutdown_how::send);
    std::array<char, 16> tail{};
    auto rd_end = s.read_some(tail);
    const std::size_t extra = co_await rd_end;
    if (extra != 0) c.violation("the echo server sent more than the message: " + c.where(p.id));
    tok.done();
    co_return p.n;
}

task<int> echo_leaf(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    net::tcp_listener l = net::tcp_listener::bind(net::endpoint::loopback(0));
    const net::endpoint ep = l.local_endpoint();
    std::vector<task<int>> ts;
    ts.push_back(echo_server(c, l));
    ts.push_back(echo_client(c, p, ep));
    auto aw = corio::gather(std::move(ts));
    const std::vector<int> r = co_await aw;
    if (r.size() != 2 || r[0] != p.n || r[1] != p.n) c.violation("the echo moved a wrong byte count: " + c.where(p.id));
    co_return tok.ret(p.value);
}

task<int> cancel_random_leaf(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    if (p.mode == 1) {
        co_await corio::yield();
    } else if (p.mode == 2) {
        auto s = corio::sleep(usec(p.delay));
        co_await s;
    }
    if (!c.targets.empty()) {
        auto t = c.targets[static_cast<std::size_t>(p.value) % c.targets.size()];
        c.cancel(t.f, t.rec);
    }
    co_return tok.ret(p.value);
}

struct queue_state {
    explicit queue_state(std::size_t capacity, int consumers)
        : q(capacity), seqs(static_cast<std::size_t>(consumers)) {}
    corio::queue<int> q;
    int pushed = 0;
    std::vector<int> popped;
    std::vector<std::vector<int>> seqs;  // per consumer, in the order it got them
};

task<int> queue_producer(run_ctx& c, queue_state& s, const plan& p, frame_arg = {}) {
    frame_token tok(c, -1);
    std::uint64_t r = p.seed;
    for (int i = 0; i < p.n; ++i) {
        const auto step = splitmix(r) % 4;
        if (step == 1) {
            co_await corio::yield();
        } else if (step == 2) {
            auto sl = corio::sleep(usec(splitmix(r) % 300));
            co_await sl;
        }
        if (p.fail == 1 && i == p.delay) c.throw_leaf(p.id);
        auto push = s.q.push(i);
        co_await push;
        ++s.pushed;
    }
    s.q.close();
    tok.done();
    co_return s.pushed;
}

task<int> queue_consumer(run_ctx& c, queue_state& s, const plan& p, int which, frame_arg = {}) {
    frame_token tok(c, -1);
    std::uint64_t r = p.seed ^ (0x1234567ULL * static_cast<std::uint64_t>(which + 1));
    int count = 0;
    for (;;) {
        const auto step = splitmix(r) % 4;
        if (step == 1) {
            co_await corio::yield();
        } else if (step == 2) {
            auto sl = corio::sleep(usec(splitmix(r) % 300));
            co_await sl;
        }
        auto pop = s.q.pop();
        const std::optional<int> v = co_await pop;
        if (!v) break;
        s.popped.push_back(*v);
        s.seqs[static_cast<std::size_t>(which)].push_back(*v);
        ++count;
        if (p.fail == 2 && which == 0 && count == p.delay + 1) c.throw_leaf(p.id);
    }
    tok.done();
    co_return count;
}

task<int> queue_leaf(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    queue_state s(static_cast<std::size_t>(p.timeout), p.mode + 1);
    std::vector<task<int>> ts;
    ts.push_back(queue_producer(c, s, p));
    for (int w = 0; w <= p.mode; ++w) ts.push_back(queue_consumer(c, s, p, w));
    std::exception_ptr failed;
    try {
        auto aw = corio::gather(std::move(ts));
        const std::vector<int> r = co_await aw;
        int got = 0;
        for (std::size_t i = 1; i < r.size(); ++i) got += r[i];
        if (r[0] != p.n || got != p.n) c.violation("the queue's producer and consumers disagree: " + c.where(p.id));
    } catch (...) {
        failed = std::current_exception();  // checked below, then rethrown
    }
    // Whatever happened, nothing was dropped or duplicated: what was pushed was popped or
    // is still in the queue.
    std::vector<int> all = s.popped;
    while (auto v = s.q.try_pop()) all.push_back(*v);
    std::sort(all.begin(), all.end());
    bool exact = static_cast<int>(all.size()) == s.pushed;
    for (std::size_t i = 0; exact && i < all.size(); ++i) exact = all[i] == static_cast<int>(i);
    if (!exact)
        c.violation("the queue lost or duplicated items (" + std::to_string(s.pushed) + " pushed, " +
                    std::to_string(all.size()) + " popped or left): " + c.where(p.id));
    if (!failed) {
        for (const auto& seq : s.seqs)
            if (!std::is_sorted(seq.begin(), seq.end()))
                c.violation("a queue consumer got items out of order: " + c.where(p.id));
    }
    if (failed) std::rethrow_exception(failed);
    co_return tok.ret(p.value);
}

task<int> seq_node(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    int sum = 0;
    for (const plan& k : p.kids) {
        auto t = make(c, k);
        const int v = co_await std::move(t);
        c.expect(k, v, "seq");
        sum += v;
    }
    co_return tok.ret(sum);
}

task<int> gather_node(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    std::vector<task<int>> ts;
    for (const plan& k : p.kids) ts.push_back(make(c, k));
    auto aw = corio::gather(std::move(ts));
    const std::vector<int> r = co_await aw;
    int sum = 0;
    if (r.size() != p.kids.size()) c.violation("gather returned a wrong count: " + c.where(p.id));
    for (std::size_t i = 0; i < r.size() && i < p.kids.size(); ++i) {
        c.expect(p.kids[i], r[i], "gather");
        sum += r[i];
    }
    co_return tok.ret(sum);
}

task<int> gather2_node(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    auto t0 = make(c, p.kids[0]);
    auto t1 = make(c, p.kids[1]);
    auto aw = corio::gather(std::move(t0), std::move(t1));
    const std::tuple<int, int> r = co_await aw;
    c.expect(p.kids[0], std::get<0>(r), "gather(a, b)");
    c.expect(p.kids[1], std::get<1>(r), "gather(a, b)");
    co_return tok.ret(std::get<0>(r) + std::get<1>(r));
}

// Passes the child's outcome through, noting its failure on the way out (catch, note,
// rethrow): what gather_settled drops when its parent is cancelled can then be told apart.
task<int> observed(run_ctx& c, task<int> t, std::exception_ptr& seen, frame_arg = {}) {
    frame_token tok(c, -1);
    try {
        const int v = co_await std::move(t);
        tok.done();
        co_return v;
    } catch (...) {
        seen = std::current_exception();
        throw;
    }
}

task<int> await_future(run_ctx& c, future<int> f, frame_arg = {}) {
    frame_token tok(c, -1);
    const int v = co_await f;
    tok.done();
    co_return v;
}

// gather_settled over the tasks. When it throws cancelled_error (its parent was
// cancelled) it returns no outcome: the failures among them must be reported instead (they
// were lost before cb09627: seed 6, and the first case at the end). They are noted in
// c.dropped, so that a lost one is named precisely.
task<std::vector<corio::outcome<int>>> settle(run_ctx& c, std::vector<task<int>> ts, int node, frame_arg = {}) {
    frame_token tok(c, -1);
    std::vector<std::exception_ptr> seen(ts.size());
    std::vector<task<int>> watched;
    for (std::size_t i = 0; i < ts.size(); ++i) watched.push_back(observed(c, std::move(ts[i]), seen[i]));
    std::exception_ptr cancelled;
    try {
        auto aw = corio::gather_settled(std::move(watched));
        std::vector<corio::outcome<int>> r = co_await aw;
        tok.done();
        co_return r;
    } catch (const corio::cancelled_error&) {
        cancelled = std::current_exception();
    }
    for (const auto& e : seen)
        if (e) c.classify(e, c.dropped, "gather_settled under a cancel " + c.where(node));
    std::rethrow_exception(cancelled);
}

task<int> settled_node(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    std::vector<task<int>> ts;
    for (const plan& k : p.kids) ts.push_back(make(c, k));
    auto st = settle(c, std::move(ts), p.id);
    const std::vector<corio::outcome<int>> r = co_await std::move(st);
    int sum = 0;
    if (r.size() != p.kids.size()) c.violation("gather_settled returned a wrong count: " + c.where(p.id));
    for (std::size_t i = 0; i < r.size() && i < p.kids.size(); ++i) {
        if (r[i].has_value()) {
            c.expect(p.kids[i], r[i].value(), "gather_settled");
            sum += r[i].value();
        } else {
            c.classify(r[i].error(), c.caught, "gather_settled " + c.where(p.id));
        }
    }
    co_return tok.ret(sum);
}

task<int> when_any_node(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    int v = 0;
    if (p.mode == 1) {
        auto t0 = make(c, p.kids[0]);
        auto t1 = make(c, p.kids[1]);
        auto aw = corio::when_any(std::move(t0), std::move(t1));
        const std::variant<int, int> r = co_await aw;
        v = r.index() == 0 ? std::get<0>(r) : std::get<1>(r);
        c.expect(p.kids[r.index()], v, "when_any(a, b)");
    } else {
        std::vector<task<int>> ts;
        for (const plan& k : p.kids) ts.push_back(make(c, k));
        auto aw = corio::when_any(std::move(ts));
        const corio::when_any_result<int> r = co_await aw;
        if (r.index >= p.kids.size()) {
            c.violation("when_any returned an index out of range: " + c.where(p.id));
        } else {
            c.expect(p.kids[r.index], r.value, "when_any");
        }
        v = r.value;
    }
    co_return tok.ret(v);
}

task<int> wait_for_node(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    auto t = make(c, p.kids[0]);
    auto aw = corio::wait_for(std::move(t), usec(p.timeout));
    const int v = co_await aw;
    c.expect(p.kids[0], v, "wait_for");
    co_return tok.ret(v);
}

task<int> shield_node(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    auto t = make(c, p.kids[0]);
    auto aw = corio::shield(std::move(t));
    const int v = co_await aw;
    c.expect(p.kids[0], v, "shield");
    co_return tok.ret(v);
}

task<int> scope_canceller(run_ctx& c, corio::cancel_scope& s, int delay, frame_arg = {}) {
    frame_token tok(c, -1);
    auto sl = corio::sleep(usec(delay));
    co_await sl;
    s.cancel();
    tok.done();
    co_return 0;
}

task<int> move_on_node(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    const plan& kid = p.kids[0];
    auto block = [&c, &p, &kid](corio::cancel_scope& s) -> task<int> {
        frame_token bt(c, -1);
        int v = 0;
        if (p.mode == 1) {
            std::vector<task<int>> ts;
            ts.push_back(make(c, kid));
            ts.push_back(scope_canceller(c, s, p.delay));
            auto aw = corio::gather(std::move(ts));
            const std::vector<int> r = co_await aw;
            v = r[0];
        } else {
            auto t = make(c, kid);
            v = co_await std::move(t);
        }
        c.expect(kid, v, "move_on_after's block");
        bt.done();
        co_return v;
    };
    auto aw = corio::move_on_after(usec(p.timeout), std::move(block));
    const std::optional<int> r = co_await aw;
    int v = -2;
    if (r) {
        c.expect(kid, *r, "move_on_after");
        v = *r;
    }
    co_return tok.ret(v);
}

task<int> fail_after_node(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    auto t = make(c, p.kids[0]);
    auto aw = corio::fail_after(usec(p.timeout), std::move(t));
    const int v = co_await aw;
    c.expect(p.kids[0], v, "fail_after");
    co_return tok.ret(v);
}

task<int> group_node(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    auto body = [&c, &p](corio::task_group& g) -> task<int> {
        frame_token bt(c, -1);
        std::vector<future<int>> fs;
        const std::size_t n = p.acts.size();
        for (std::size_t i = 0; i < n; ++i) {
            auto t = make(c, p.kids[i]);
            const std::string name = "node#" + std::to_string(p.kids[i].id);
            future<int> f = g.spawn(std::move(t), corio::spawn_options{name});
            const std::size_t rec = c.track(f, p.kids[i].id);
            if (p.flag) c.targets.push_back({f, rec});
            if (p.acts[i] == ga_cancel_now) c.cancel(f, rec);
            if (p.acts[i] == ga_timer_cancel)
                c.loop->call_later(usec(p.delays[i]), [&c, f, rec]() mutable { c.cancel(f, rec); });
            fs.push_back(std::move(f));
        }
        int sum = 0;
        if (p.kids.size() > n) {
            auto t = make(c, p.kids[n]);
            const int v = co_await std::move(t);
            c.expect(p.kids[n], v, "task_group body");
            sum += v;
        }
        for (std::size_t i = 0; i < n; ++i) {
            if (p.acts[i] != ga_await) continue;
            // Propagated, never swallowed: the group owns its children's failures.
            const int v = co_await fs[i];
            c.expect(p.kids[i], v, "task_group child's future");
            sum += v;
        }
        if (p.fail != 0) g.cancel();  // the children still running end cancelled, the group waits for them
        bt.done();
        co_return sum;
    };
    task<int> gt = p.mode == 1 ? corio::with_task_group(body, corio::group_errors::all) : corio::with_task_group(body);
    const int v = co_await std::move(gt);
    co_return tok.ret(v);
}

task<> canceller(run_ctx& c, future<int> f, std::size_t rec, int delay, frame_arg = {}) {
    frame_token tok(c, -1);
    if (delay < 100) {
        co_await corio::yield();
    } else {
        auto s = corio::sleep(usec(delay));
        co_await s;
    }
    c.cancel(f, rec);
    tok.done();
}

task<int> spawn_node(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    const plan& kid = p.kids[0];
    const std::string name = "node#" + std::to_string(kid.id);
    auto t = make(c, kid);
    future<int> f = corio::spawn(std::move(t), corio::spawn_options{name});
    const std::size_t rec = c.track(f, kid.id);
    if (p.flag) c.targets.push_back({f, rec});
    switch (p.mode) {
        case sp_cancel_now:
            c.cancel(f, rec);
            break;
        case sp_timer_cancel:
        case sp_detach_timer:
        case sp_settle:
            c.loop->call_later(usec(p.delay), [&c, f, rec]() mutable { c.cancel(f, rec); });
            break;
        case sp_canceller: {
            auto cf = corio::spawn(canceller(c, f, rec, p.delay));
            (void)cf;
            break;
        }
        default:
            break;
    }
    int v = 0;
    if (p.mode == sp_race) {
        auto sib = make(c, p.kids[1]);
        auto aw = corio::when_any(f, std::move(sib));
        const std::variant<int, int> r = co_await aw;
        v = r.index() == 0 ? std::get<0>(r) : std::get<1>(r);
        c.expect(p.kids[r.index()], v, "when_any(future, sibling)");
        co_return tok.ret(v);
    }
    if (p.kids.size() > 1) {
        auto sib = make(c, p.kids[1]);
        const int s = co_await std::move(sib);
        c.expect(p.kids[1], s, "spawn's sibling");
        v += s;
    }
    switch (p.mode) {
        case sp_detach:
        case sp_detach_timer:
            break;
        case sp_settle: {
            std::vector<task<int>> one;
            one.push_back(await_future(c, f));
            auto st = settle(c, std::move(one), p.id);
            const std::vector<corio::outcome<int>> r = co_await std::move(st);
            const auto& o = r.at(0);
            if (o.has_value()) {
                c.expect(kid, o.value(), "gather_settled(future)");
                v += o.value();
            } else {
                c.classify(o.error(), c.caught, "gather_settled(future) " + c.where(p.id));
            }
            break;
        }
        case sp_wait_for: {
            auto aw = corio::wait_for(f, usec(p.timeout));
            const int x = co_await aw;
            c.expect(kid, x, "wait_for(future)");
            v += x;
            break;
        }
        default: {
            const int x = co_await f;
            c.expect(kid, x, "the spawned task's future");
            v += x;
        }
    }
    co_return tok.ret(v);
}

task<int> swallow_node(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    int v = -1;
    try {
        auto t = make(c, p.kids[0]);
        v = co_await std::move(t);
        c.expect(p.kids[0], v, "swallow");
    } catch (const leaf_error& e) {
        c.caught.push_back(e.id);
    } catch (const corio::exception_group& g) {
        for (const auto& x : g.exceptions()) c.classify(x, c.caught, "swallow " + c.where(p.id));
    } catch (const corio::timeout_error&) {
        ++c.timeouts;
    } catch (const std::system_error&) {
        ++c.system_errors;
    }
    co_return tok.ret(v);
}

task<int> cleanup_node(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    std::exception_ptr cancelled;
    int v = 0;
    try {
        auto t = make(c, p.kids[0]);
        v = co_await std::move(t);
        c.expect(p.kids[0], v, "cleanup");
    } catch (const corio::cancelled_error&) {
        cancelled = std::current_exception();  // no co_await in a handler: clean up below
    }
    if (cancelled) {
        auto t = make(c, p.kids[1]);
        int w = 0;
        if (p.mode == 0) {
            auto sh = corio::shield(std::move(t));
            w = co_await sh;
        } else {
            w = co_await std::move(t);  // in a cancelled scope this throws cancelled_error again
        }
        c.expect(p.kids[1], w, "cleanup's cleanup");
        std::rethrow_exception(cancelled);
    }
    co_return tok.ret(v);
}

struct sem_state {
    int in_use = 0;
};

task<int> sem_worker(run_ctx& c, corio::semaphore& s, sem_state& st, const plan& p, const plan& kid, frame_arg = {}) {
    frame_token tok(c, -1);
    auto acq = s.acquire();
    corio::semaphore::permit permit = co_await acq;
    if (++st.in_use > p.n) c.violation("a semaphore let more holders in than it has units: " + c.where(p.id));
    struct leave {
        sem_state& st;
        ~leave() { --st.in_use; }
    } holding{st};
    auto t = make(c, kid);
    const int v = co_await std::move(t);
    c.expect(kid, v, "semaphore worker");
    tok.done();
    co_return v;
}

task<int> semaphore_node(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    corio::semaphore s(static_cast<std::size_t>(p.n));
    sem_state st;
    std::vector<task<int>> ts;
    for (const plan& k : p.kids) ts.push_back(sem_worker(c, s, st, p, k));
    std::exception_ptr failed;
    int sum = 0;
    try {
        if (p.mode == 0) {
            auto aw = corio::gather(std::move(ts));
            const std::vector<int> r = co_await aw;
            for (std::size_t i = 0; i < r.size(); ++i) {
                c.expect(p.kids[i], r[i], "gather of semaphore workers");
                sum += r[i];
            }
        } else {
            auto st = settle(c, std::move(ts), p.id);
            const std::vector<corio::outcome<int>> r = co_await std::move(st);
            for (std::size_t i = 0; i < r.size(); ++i) {
                if (r[i].has_value()) {
                    c.expect(p.kids[i], r[i].value(), "gather_settled of semaphore workers");
                    sum += r[i].value();
                } else {
                    c.classify(r[i].error(), c.caught, "gather_settled " + c.where(p.id));
                }
            }
        }
    } catch (...) {
        failed = std::current_exception();  // checked below, then rethrown
    }
    if (s.available() != static_cast<std::size_t>(p.n) || s.has_waiters() || st.in_use != 0)
        c.violation("the semaphore did not get all its units back (" + std::to_string(s.available()) + " of " +
                    std::to_string(p.n) + "): " + c.where(p.id));
    if (failed) std::rethrow_exception(failed);
    co_return tok.ret(sum);
}

task<int> make(run_ctx& c, const plan& p) {
    switch (p.k) {
        case kind::value:
            return value_leaf(c, p);
        case kind::sleep:
            return sleep_leaf(c, p);
        case kind::yield:
            return yield_leaf(c, p);
        case kind::fail:
            return fail_leaf(c, p);
        case kind::to_thread:
            return to_thread_leaf(c, p);
        case kind::promise:
            return promise_leaf(c, p);
        case kind::echo:
            return echo_leaf(c, p);
        case kind::cancel_random:
            return cancel_random_leaf(c, p);
        case kind::queue:
            return queue_leaf(c, p);
        case kind::seq:
            return seq_node(c, p);
        case kind::gather:
            return gather_node(c, p);
        case kind::gather2:
            return gather2_node(c, p);
        case kind::settled:
            return settled_node(c, p);
        case kind::when_any:
            return when_any_node(c, p);
        case kind::wait_for:
            return wait_for_node(c, p);
        case kind::shield:
            return shield_node(c, p);
        case kind::move_on:
            return move_on_node(c, p);
        case kind::fail_after:
            return fail_after_node(c, p);
        case kind::group:
            return group_node(c, p);
        case kind::spawn:
            return spawn_node(c, p);
        case kind::swallow:
            return swallow_node(c, p);
        case kind::cleanup:
            return cleanup_node(c, p);
        case kind::semaphore:
            return semaphore_node(c, p);
    }
    return value_leaf(c, p);
}

// The root: gather_settled over the top subtrees, so that one failure does not end the run.
task<int> root_task(run_ctx& c, const plan& p, frame_arg = {}) {
    frame_token tok(c, p.id);
    c.loop = &corio::event_loop::current();
    std::vector<task<int>> ts;
    for (const plan& k : p.kids) ts.push_back(make(c, k));
    auto st = settle(c, std::move(ts), p.id);
    const std::vector<corio::outcome<int>> r = co_await std::move(st);
    for (std::size_t i = 0; i < r.size(); ++i) {
        if (r[i].has_value())
            c.expect(p.kids[i], r[i].value(), "the root's gather_settled");
        else
            c.classify(r[i].error(), c.caught, "the root's gather_settled");
    }
    c.targets.clear();  // their last references go: unretrieved failures are reported now
    co_return tok.ret(0);
}

// ---------------------------------------------------------------------------------------
// The harness: a watchdog, the checks, the seeds.

// A seed that runs longer is a hang (a run takes milliseconds); CORIO_STRESS_SEED_TIMEOUT
// (seconds) overrides it.
std::chrono::seconds seed_time_limit() {
    const char* v = std::getenv("CORIO_STRESS_SEED_TIMEOUT");
    const long s = v != nullptr ? std::strtol(v, nullptr, 10) : 0;
    return std::chrono::seconds(s > 0 ? s : 20);
}

class watchdog {
public:
    watchdog() : thread_([this] { watch(); }) {}
    watchdog(const watchdog&) = delete;
    watchdog& operator=(const watchdog&) = delete;
    ~watchdog() {
        {
            std::lock_guard lock(mutex_);
            quit_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }

    void arm(std::uint64_t seed, const plan* tree) {
        std::lock_guard lock(mutex_);
        seed_ = seed;
        tree_ = tree;
        deadline_ = std::chrono::steady_clock::now() + limit_;
        armed_ = true;
        cv_.notify_all();
    }
    void set_loop(corio::event_loop* loop) {
        std::lock_guard lock(mutex_);
        loop_ = loop;
    }
    void disarm() {
        std::lock_guard lock(mutex_);
        armed_ = false;
        loop_ = nullptr;
    }

private:
    void watch() {
        std::unique_lock lock(mutex_);
        while (!quit_) {
            if (!armed_) {
                cv_.wait(lock);
                continue;
            }
            cv_.wait_until(lock, deadline_);
            if (!armed_ || quit_ || std::chrono::steady_clock::now() < deadline_) continue;
            std::fprintf(stderr,
                         "cancel_stress: seed %llu did not finish within %lld s (a hang); replay with "
                         "CORIO_STRESS_SEED=%llu. The tree:\n%s",
                         static_cast<unsigned long long>(seed_), static_cast<long long>(limit_.count()),
                         static_cast<unsigned long long>(seed_), dump(*tree_).c_str());
            if (loop_ != nullptr) {
                try {
                    loop_->call_soon_threadsafe([] {
                        for (const auto& t : corio::event_loop::current().tasks())
                            std::fprintf(stderr, "cancel_stress: live task %s (%s)\n", t.name.c_str(), t.state.c_str());
                    });
                } catch (...) {
                }
            }
            lock.unlock();
            std::this_thread::sleep_for(1s);
            std::fflush(stderr);
            std::abort();
        }
    }

    std::mutex mutex_;
    std::condition_variable cv_;
    bool quit_ = false;
    bool armed_ = false;
    std::uint64_t seed_ = 0;
    const plan* tree_ = nullptr;
    corio::event_loop* loop_ = nullptr;
    std::chrono::steady_clock::time_point deadline_{};
    const std::chrono::seconds limit_ = seed_time_limit();
    std::thread thread_;  // last: starts once the rest is ready
};

struct totals {
    long runs = 0;
    long frames = 0;
    long errors = 0;
    long caught = 0;
    long reported = 0;
    long discarded = 0;
    long dropped_by_settled = 0;
    long spawned = 0;
    long cancels_accepted = 0;
    long cancels_refused = 0;
    long timeouts = 0;
    long system_errors = 0;
    double ms = 0;
    double slowest_ms = 0;
    std::uint64_t slowest_seed = 0;
};

struct run_result {
    std::vector<std::string> violations;
    std::string tree;
};

void final_checks(run_ctx& c, int fds_before, int fds_after, totals& tot) {
    if (c.frames_made != c.frames_gone)
        c.violation("coroutine frames leaked: " + std::to_string(c.frames_made) + " ran, " +
                    std::to_string(c.frames_gone) + " destroyed");
    if (frame_arg::live != 0)
        c.violation("coroutine frames leaked: " + std::to_string(frame_arg::live) +
                    " made (whether they ran or not) were never destroyed");

    std::map<int, int> thrown_n;
    std::map<int, int> caught_n;
    std::map<int, int> reported_n;
    for (int id : c.thrown) ++thrown_n[id];
    for (int id : c.caught) ++caught_n[id];
    for (int id : c.reported) ++reported_n[id];
    const std::set<int> dropped(c.dropped.begin(), c.dropped.end());
    tot.dropped_by_settled += static_cast<long>(dropped.size());
    for (const auto& [id, n] : thrown_n) {
        if (n > 1)
            c.violation("error #" + std::to_string(id) + " was thrown " + std::to_string(n) +
                        " times (a node ran more than once): " + c.where(id));
        const int nc = caught_n.count(id) != 0 ? caught_n[id] : 0;
        const int nr = reported_n.count(id) != 0 ? reported_n[id] : 0;
        if (nc + nr == 0) {
            if (c.discardable.count(id) != 0) {
                ++tot.discarded;
            } else if (dropped.count(id) != 0) {
                c.violation("error #" + std::to_string(id) +
                            " was dropped, unreported, by a gather_settled whose parent was cancelled: " + c.where(id));
            } else {
                c.violation("error #" + std::to_string(id) + " was neither surfaced nor reported: " + c.where(id));
            }
        } else if (nc + nr > 1) {
            c.violation("error #" + std::to_string(id) + " was surfaced " + std::to_string(nc) +
                        " times and reported " + std::to_string(nr) + " times: " + c.where(id));
        }
    }
    for (const auto& [id, n] : caught_n)
        if (thrown_n.count(id) == 0) c.violation("error #" + std::to_string(id) + " surfaced but was never thrown");
    for (const auto& [id, n] : reported_n)
        if (thrown_n.count(id) == 0) c.violation("error #" + std::to_string(id) + " reported but was never thrown");

    for (const spawn_record& r : c.spawned) {
        if (!r.done) {
            c.violation("a spawned task never ended (its done callback never ran): " + c.where(r.node));
        } else if (r.cancel_accepted && r.final == future_status::value) {
            c.violation("cancel lost: future::cancel() returned true, yet the task ended with a value: " +
                        c.where(r.node));
        }
    }
    if (fds_after != fds_before)
        c.violation("file descriptors: " + std::to_string(fds_before) + " before the run, " +
                    std::to_string(fds_after) + " after");

    tot.frames += c.frames_made;
    tot.errors += static_cast<long>(thrown_n.size());
    tot.caught += static_cast<long>(c.caught.size());
    tot.reported += static_cast<long>(c.reported.size());
    tot.spawned += static_cast<long>(c.spawned.size());
    tot.cancels_accepted += c.cancels_accepted;
    tot.cancels_refused += c.cancels_refused;
    tot.timeouts += c.timeouts;
    tot.system_errors += c.system_errors;
}

// Waits until every worker of the default pool has finished what it was doing. A pool job
// keeps the loop's eventfd open until it has woken the loop (c9715e8), so the eventfd of a
// loop just destroyed may still be closing on a worker: the fd count must wait for that.
// One job per worker, each holding its worker until all have started (corio-internal API).
void quiesce_default_pool() {
    corio::thread_pool& pool = corio::default_thread_pool();
    const auto n = static_cast<std::ptrdiff_t>(pool.size());
    std::latch started(n);
    std::latch finished(n);
    struct barrier_job : corio::detail::pool_job {
        std::latch* started = nullptr;
        std::latch* finished = nullptr;
    };
    std::vector<barrier_job> jobs(static_cast<std::size_t>(n));
    for (barrier_job& j : jobs) {
        j.started = &started;
        j.finished = &finished;
        j.run = [](corio::detail::pool_job* job) noexcept {
            auto* me = static_cast<barrier_job*>(job);
            me->started->arrive_and_wait();
            me->finished->count_down();
        };
        pool.submit(&j);
    }
    finished.wait();
}

run_result run_one(std::uint64_t seed, watchdog& dog, totals& tot) {
    generator gen(seed);
    const plan tree = gen.root();
    run_ctx c;
    c.seed = seed;
    c.root = &tree;
    index_plan(tree, nullptr, c.index);

    const int fds_before = test::fd_count();
    frame_arg::live = 0;
    const auto t0 = std::chrono::steady_clock::now();
    dog.arm(seed, &tree);
    {
        corio::loop_options options;
        options.exception_handler = [&c](const corio::exception_context& x) { c.on_report(x); };
        corio::event_loop loop(std::move(options));
        dog.set_loop(&loop);
        try {
            (void)loop.run(root_task(c, tree));
        } catch (const corio::cancelled_error&) {
            c.violation("the root ended cancelled");
        } catch (const std::exception& e) {
            c.violation(std::string("the root ended by an exception: ") + e.what());
        }
        dog.set_loop(nullptr);
    }  // the loop is destroyed here: what it reports on its way out is counted too
    for (auto& t : c.threads) t.join();
    quiesce_default_pool();
    dog.disarm();
    const double ms = test::ms_since(t0);
    const int fds_after = test::fd_count();

    final_checks(c, fds_before, fds_after, tot);
    ++tot.runs;
    tot.ms += ms;
    if (ms > tot.slowest_ms) {
        tot.slowest_ms = ms;
        tot.slowest_seed = seed;
    }
    return run_result{std::move(c.violations), dump(tree)};
}

std::uint64_t env_u64(const char* name, std::uint64_t fallback) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return fallback;
    return std::strtoull(v, nullptr, 0);
}

constexpr std::uint64_t ci_seed_count = 400;  // seeds 1..400 in CI

std::vector<std::uint64_t> stress_seeds(bool& verbose) {
    verbose = std::getenv("CORIO_STRESS_ITERATIONS") != nullptr || std::getenv("CORIO_STRESS_SEED") != nullptr;
    if (std::getenv("CORIO_STRESS_SEED") != nullptr) return {env_u64("CORIO_STRESS_SEED", 1)};
    std::vector<std::uint64_t> seeds;
    if (std::getenv("CORIO_STRESS_ITERATIONS") != nullptr) {
        const std::uint64_t n = env_u64("CORIO_STRESS_ITERATIONS", ci_seed_count);
        const std::uint64_t base = env_u64("CORIO_STRESS_SEED_BASE", std::random_device{}() % 1000000000ULL);
        std::printf("cancel_stress: %llu seeds from CORIO_STRESS_SEED_BASE=%llu\n", static_cast<unsigned long long>(n),
                    static_cast<unsigned long long>(base));
        for (std::uint64_t i = 0; i < n; ++i) seeds.push_back(base + i);
        return seeds;
    }
    for (std::uint64_t i = 1; i <= ci_seed_count; ++i) seeds.push_back(i);
    return seeds;
}

}  // namespace

TEST_CASE("cancellation stress: random trees of combinators, cancels and failures keep every invariant", "[stress]") {
    bool verbose = false;
    const std::vector<std::uint64_t> seeds = stress_seeds(verbose);
    watchdog dog;
    totals tot;
    for (const std::uint64_t seed : seeds) {
        run_result r = run_one(seed, dog, tot);
        if (!r.violations.empty()) {
            std::string msg = "seed " + std::to_string(seed) + " (replay: CORIO_STRESS_SEED=" + std::to_string(seed) +
                              "), backend " +
                              (std::getenv("CORIO_BACKEND") ? std::getenv("CORIO_BACKEND") : "automatic") + ":\n";
            for (const auto& v : r.violations) msg += "  - " + v + "\n";
            msg += "the tree:\n" + r.tree;
            INFO("seed " << seed);
            FAIL_CHECK(msg);
            if (!verbose) break;  // one failing seed is enough in CI
        }
    }
    if (verbose)
        std::printf(
            "cancel_stress: %ld runs in %.0f ms (slowest: seed %llu, %.1f ms); %ld frames, %ld spawned tasks, "
            "%ld cancels accepted / %ld refused; %ld errors thrown: %ld surfaced, %ld reported, %ld dropped by a "
            "cancelled promise (by design); %ld under a cancelled gather_settled (reported); %ld timeouts, %ld "
            "socket errors\n",
            tot.runs, tot.ms, static_cast<unsigned long long>(tot.slowest_seed), tot.slowest_ms, tot.frames,
            tot.spawned, tot.cancels_accepted, tot.cancels_refused, tot.errors, tot.caught, tot.reported, tot.discarded,
            tot.dropped_by_settled, tot.timeouts, tot.system_errors);
    CHECK(tot.runs == static_cast<long>(seeds.size()));
}

// ---------------------------------------------------------------------------------------
// Bugs the stress test found, each reduced to a deterministic case (fixed since).

// Found by seed 6 (a when_any loser that was a gather_settled: its child failed in the same
// loop turn as the cancel reached it). gather_settled's await_resume threw cancelled_error
// when its parent was cancelled and dropped every outcome: a child's real failure was then
// neither returned nor reported (gather reports the failures it does not rethrow;
// gather_settled reported none). Fixed in cb09627: they are reported. Here the child fails
// after the cancel, inside a shield.
TEST_CASE("stress repro: gather_settled under a cancelled parent reports the failures it drops", "[stress]") {
    test::reports rep;
    bool failed = false;
    corio::run(
        [&]() -> task<> {
            auto parent = corio::spawn([&]() -> task<> {
                auto child = [&]() -> task<int> {
                    auto s = corio::sleep(1ms);
                    co_await s;
                    failed = true;
                    throw std::runtime_error("a failure after the cancel");
                };
                auto aw = corio::gather_settled(corio::shield(child));
                auto r = co_await aw;
                (void)r;
            });
            co_await corio::yield();  // the parent waits in gather_settled
            parent.cancel();
            auto waiting = test::ends_cancelled(parent);
            const bool cancelled = co_await std::move(waiting);
            CHECK(cancelled);
        }(),
        rep.options());
    CHECK(failed);
    CHECK(rep.count(corio::report_kind::unretrieved_exception) == 1);  // 0 before cb09627: lost
}

// Found by the TSan run of the stress test (2000 seeds, both backends): a pool job's
// completion raced the destruction of its loop. remote_queue::push() publishes the item,
// then writes the eventfd to wake the loop; a loop that is awake anyway can take the item,
// resume the task, finish run() and be destroyed, closing that eventfd (and freeing the
// queue), before the worker's write: which then reads a freed queue and lands in whatever
// fd has taken the number meanwhile. Fixed while this test was written (c9715e8: the job
// holds the loop's door while it wakes it); this is the deterministic regression case,
// which fails on c9715e8^ (the write lands in the new eventfd). c9715e8 kept the eventfd
// open past the loop (a descriptor that outlived it, as the fd-count checks then saw); now
// the loop's destructor waits for a push in progress to finish its wake, and this case also
// checks that wait.
//
// The interleaving is forced, not hoped for: a seccomp filter on the pool's one worker holds
// its write to the loop's eventfd in the kernel (SECCOMP_RET_USER_NOTIF) until the test
// lets it through (SECCOMP_USER_NOTIF_FLAG_CONTINUE, Linux 5.5). The filter sits on a
// thread of a pool this test owns, for one fd number, and ends with that thread.
namespace {

int hold_writes_to(int fd) {
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -errno;
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_write, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])),  // the fd's low word
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<unsigned>(fd), 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
    const long listener = ::syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    return listener < 0 ? -errno : static_cast<int>(listener);
}

bool readable(int fd, int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) > 0;
}

// Lets the held write through (as if it had never been held).
bool let_through(int listener) {
    if (!readable(listener, 1000)) return false;
    seccomp_notif req{};
    if (::ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) return false;
    seccomp_notif_resp resp{};
    resp.id = req.id;
    resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    return ::ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) == 0;
}

}  // namespace

TEST_CASE("stress repro: a pool job's wakeup never lands in an fd its loop has closed", "[stress]") {
    corio::thread_pool pool(1);  // its worker gets the filter, which goes with it
    auto target = std::make_unique<corio::event_loop>();
    const int door = target->remote().fd();  // the loop's eventfd (corio-internal accessor)
    int listener = -1;
    {
        corio::event_loop setup;  // a loop of its own: its job's wakeup goes to another fd
        listener = setup.run(corio::run_in(pool, [door] { return hold_writes_to(door); }));
    }
    if (listener < 0) {
        WARN("seccomp user notification is not available here (" << std::strerror(-listener) << "): not checked");
        return;
    }
    bool held = false;             // the worker's wakeup write is held in the kernel
    bool done_while_held = false;  // and yet the loop has the job's completion
    target->run([&]() -> task<> {
        auto f = corio::spawn([&]() -> task<> {
            auto job = corio::run_in(pool, [] {});
            co_await job;
        });
        const auto t0 = std::chrono::steady_clock::now();
        while (!f.done()) {
            co_await corio::yield();  // awake: the loop takes remote items without the eventfd
            held = held || readable(listener, 0);
            if (held && !f.done() && std::chrono::steady_clock::now() - t0 > 200ms) {
                // The wakeup comes before the item (the item cannot reach us while it is
                // held): the right order. Let it through and finish normally.
                held = !let_through(listener);
                break;
            }
        }
        done_while_held = held;
        co_await f;
    }());
    // The worker is still held inside its wake. Destroying the loop must wait for it: let
    // the write through from another thread a little later, and see that the destructor
    // returned only after that (before the fix, it returned at once and closed the fd).
    std::atomic<bool> released{false};
    bool let_out = false;  // Catch's assertions are for this thread only
    std::thread releaser;
    if (done_while_held) {
        releaser = std::thread([&] {
            std::this_thread::sleep_for(300ms);
            released = true;
            let_out = let_through(listener);
        });
    }
    target.reset();  // the loop is gone, and with it its eventfd
    if (done_while_held) CHECK(released);
    if (releaser.joinable()) releaser.join();
    if (done_while_held) CHECK(let_out);
    const int fresh = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);  // takes the lowest free number
    REQUIRE(fresh >= 0);
    std::uint64_t stray = 0;
    if (readable(fresh, 300)) (void)!::read(fresh, &stray, sizeof stray);
    INFO("the loop's eventfd was " << door << ", the fresh one is " << fresh);
    CHECK(stray == 0);  // 1: the dead loop's wakeup was written into an unrelated fd
    if (!done_while_held) WARN("the loop never got the job's completion while its wakeup was held: nothing to check");
    ::close(fresh);
    ::close(listener);
}
