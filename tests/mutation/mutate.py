#!/usr/bin/env python3
"""Mutation check: does the suite notice when a promise of corio's is broken?

Each mutation below is one small, named edit of a header that breaks one promise (a
dropped pending-cancel check, a skipped unlink, an inverted race winner...). For each,
the script copies include/ to a scratch directory, applies the edit there (the working
tree is never touched), builds the test files that guard that promise against the copy,
runs them, and reports whether the mutation was killed (a test failed, crashed or timed
out) or survived (every test passed: a missing test).

    tests/mutation/mutate.py            # every mutation
    tests/mutation/mutate.py --short    # the short list CI runs
    tests/mutation/mutate.py --only NAME_SUBSTRING

Exit status: 0 when every mutation was killed, 1 when one survived or did not apply.
"""

import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def m(name, path, find, replace, tests, short=False, backend="io_uring", flags=()):
    # flags: extra compiler flags for the mutated build, e.g. ASan for a mutation whose only
    # symptom is a read of freed memory.
    return dict(name=name, path=path, find=find, replace=replace, tests=tests, short=short, backend=backend,
                flags=list(flags))


CANCEL = ["cancel_test", "cancel_semantics_test"]
SCOPES = ["cancel_scope_test", "conformance_test"]
GROUP = ["task_group_test", "cancel_semantics_test"]
SYNC = ["sync_test", "cancel_semantics_test"]

MUTATIONS = [
    # The four of the original audit.
    m("shield passes the cancel on to its inner work",
      "include/corio/cancel.hpp",
      "return children.group.start(h, false);", "return children.group.start(h, true);",
      CANCEL, short=True),
    m("wait_for throws timeout_error even when the inner work returned a value",
      "include/corio/time.hpp",
      "return p.take();  // the inner work finished first",
      "if (timed_out_) throw timeout_error();\n        return p.take();  // the inner work finished first",
      ["time_test", "cancel_semantics_test"], short=True),
    m("an I/O result that beat the cancel is dropped",
      "include/corio/detail/io_awaiter.hpp",
      "        if (CORIO_LIKELY(result >= 0 && !wait_.cancelled)) return;",
      "        if (wait_.node != nullptr && wait_.node->cancel_pending_) throw_cancelled(wait_.node);\n"
      "        if (CORIO_LIKELY(result >= 0 && !wait_.cancelled)) return;",
      ["cancel_semantics_test"], short=True),
    m("a queue item handed to a popper that is then cancelled is lost",
      "include/corio/sync/queue.hpp",
      "q_->give_back(*slot_);  // to the next popper, or the front of the queue", "(void)0;",
      SYNC, short=True),
    # Cancellation core.
    m("a delivered cancel is not consumed (the task cannot await during its cleanup)",
      "include/corio/detail/task_node.hpp",
      "    if (node != nullptr) node->clear_pending();\n    throw cancelled_error();",
      "    (void)node;\n    throw cancelled_error();",
      CANCEL),
    m("a cancel of a suspended task does not call its hook",
      "include/corio/detail/task_node.hpp",
      "        if (hook_.fn != nullptr) {", "        if (false) {",
      CANCEL),
    m("a task cancelled before its first step runs anyway",
      "include/corio/spawn.hpp",
      "        if (me->cancel_pending_) {\n            // Cancelled before its first step",
      "        if (false) {\n            // Cancelled before its first step",
      CANCEL),
    m("a task that returns with a cancel pending ends with its value",
      "include/corio/spawn.hpp",
      "} else if (self->cancel_pending_) {", "} else if (false) {",
      CANCEL),
    m("a pending cancel does not reach the awaited future",
      "include/corio/future.hpp",
      "            st_->cancel();  // a promise's future ends at once", "            // a promise's future ends at once",
      CANCEL),
    m("a combinator started with a cancel pending does not cancel its children",
      "include/corio/detail/child_group.hpp",
      "                cancel_others(npos, parent_node->cancelled_sticky());\n            }\n            parent_node->arm",
      "            }\n            parent_node->arm",
      CANCEL),
    m("a yield does not deliver a pending cancel",
      "include/corio/time.hpp",
      "if (node_ != nullptr && node_->cancel_pending_) throw_cancelled(node_);", "(void)node_;",
      CANCEL),
    m("gather and when_any drop the failures they do not rethrow",
      "include/corio/detail/child_group.hpp",
      "        report_other_failures(which, what);\n        if (slots[which].failed())",
      "        (void)what;\n        if (slots[which].failed())",
      ["gather_test", "cancel_semantics_test"]),
    m("when_any does not cancel the losers",
      "include/corio/when_any.hpp",
      "detail::group_policy::first);\n}\n\n/// when_any(range)",
      "detail::group_policy::settle);\n}\n\n/// when_any(range)",
      ["when_any_test"]),
    m("wait_for with an expired deadline races the batch",
      "include/corio/time.hpp",
      "        if (timeout_.count() <= 0) {", "        if (false) {",
      ["cancel_semantics_test"]),
    # Task groups.
    m("a task group does not withdraw the cancel it sent its body",
      "include/corio/task_group.hpp",
      "if (core.injected_cancel && owner != nullptr) owner->uncancel();", "(void)0;",
      GROUP),
    m("a task group forgets an outside cancel",
      "include/corio/task_group.hpp",
      "            owner->cancel_pending_ = true;  // asyncio's uncancel + cancel", "            (void)0;  //",
      GROUP),
    m("a task group drops the body's error",
      "include/corio/task_group.hpp",
      "if (!known) core.errors.push_back", "if (false) core.errors.push_back",
      GROUP),
    m("a task group drops its later errors",
      "include/corio/task_group.hpp",
      "        for (std::size_t i = 1; i < core.errors.size(); ++i)\n            core.loop->report(",
      "        for (std::size_t i = 1; i < 1; ++i)\n            core.loop->report(",
      GROUP),
    # Scopes.
    m("a cancel scope is edge-triggered",
      "include/corio/detail/task_node.hpp",
      "        if (!sticky_) cancel_pending_ = false;\n        return true;",
      "        cancel_pending_ = false;\n        return true;",
      SCOPES),
    m("a cancel scope catches a cancel that is not its own",
      "include/corio/cancel.hpp",
      "scope_->cancel_called_ && !g.parent_cancelled", "scope_->cancel_called_",
      SCOPES),
    m("a level-triggered cancel does not reach the children of a gather inside the scope",
      "include/corio/detail/child_group.hpp",
      "g->cancel_others(npos, g->parent_node->cancelled_sticky());", "g->cancel_others(npos, false);",
      SCOPES),
    # Coordination primitives.
    m("a semaphore unit handed to a cancelled waiter is lost",
      "include/corio/sync/semaphore.hpp",
      "s_->release();  // the unit goes on to the next waiter", "(void)0;",
      SYNC),
    m("a cancelled waiter stays in the waiter list",
      "include/corio/detail/waiter_list.hpp",
      "if (me->list != nullptr) me->list->remove(me);\n    me->wait.wake_cancelled();",
      "me->wait.wake_cancelled();",
      ["sync_test"]),
    m("the mutex is not handed to the oldest waiter (barging)",
      "include/corio/sync/mutex.hpp",
      "            w->wake();  // locked_ stays true: ownership passes directly\n        else\n            locked_ = false;",
      "            { locked_ = false; w->wake(); }\n        else\n            locked_ = false;",
      ["sync_test"]),
    m("a notification for a cancelled condition-variable waiter is lost",
      "include/corio/sync/condition_variable.hpp",
      "cv_->notify_one();  // the notification goes on", "(void)cv_;  // the notification goes on",
      SYNC),
    # Signals, callbacks and the pool.
    m("signal() blocks its signals only when its task starts",
      "include/corio/signal.hpp",
      "const sigset_t set = detail::block_set({signo, static_cast<int>(more)...}, names);",
      "const sigset_t set = detail::signal_set({signo, static_cast<int>(more)...}, names);",
      ["signal_test"]),
    m("a signal wakes only the oldest of the waits that want it",
      "include/corio/signal.hpp",
      "                sleeping_.remove(w);\n                w->wake();\n            }\n        }",
      "                sleeping_.remove(w);\n                w->wake();\n            }\n            return;\n        }",
      ["signal_test"]),
    m("an exception from a done callback is dropped",
      "include/corio/future.hpp",
      "} catch (...) {\n                // Reported here rather than by call_soon",
      "} catch (...) {\n                return;\n                // Reported here rather than by call_soon",
      ["future_test"]),
    m("pool threads are made with asynchronous signals unblocked",
      "include/corio/thread_pool.hpp",
      "::pthread_sigmask(SIG_BLOCK, &async_signals, &caller_mask);",
      "::pthread_sigmask(SIG_BLOCK, nullptr, &caller_mask);",
      ["thread_pool_test"]),
    m("the loop's destructor does not wait for a wake in progress",
      "include/corio/detail/remote_queue.hpp",
      "while (pushing_.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();",
      "(void)0;",
      ["cancel_stress_test"]),
    # Files, endpoints and the epoll backend.
    m("fs::file::open accepts a directory",
      "include/corio/fs/file.hpp",
      'if (S_ISDIR(st.st_mode)) throw f.error(EISDIR, "fs::file::open");',
      "(void)st;",
      ["fs_test"]),
    m("an endpoint text with a NUL byte is cut at the NUL",
      "include/corio/net/endpoint.hpp",
      "if (address.find('\\0') != std::string_view::npos) return false;",
      "(void)0;",
      ["net_test"]),
    m("epoll_wait's timeout wraps past INT_MAX milliseconds",
      "include/corio/backend/epoll.hpp",
      "if (ms > INT_MAX) ms = INT_MAX;",
      "(void)0;",
      ["event_loop_test"], backend="epoll"),
    # The runtime under faults.
    m("a loop destroyed with started tasks frees them without ending them",
      "include/corio/event_loop.hpp",
      "        end_started_tasks();\n", "",
      ["loop_faults_test"]),
    m("debug mode names the step's task after the step, when it may be freed",
      "include/corio/event_loop.hpp",
      "const std::string who = w.node != nullptr ? w.node->describe() : std::string(\"<callback>\");",
      # a macro: the name is made where it is used, after the step
      "#define who (w.node != nullptr ? w.node->describe() : std::string(\"<callback>\"))",
      ["loop_faults_test"], flags=["-fsanitize=address"]),
    m("a cancel that finds no free SQE is dropped",
      "include/corio/backend/uring.hpp",
      "park(op, park_cancel);", "(void)0;",
      ["uring_faults_test"]),
    m("closing a socket on io_uring does not cancel its operations",
      "include/corio/backend/uring.hpp",
      "        if (has_cancel_fd_)\n            send_cancel_fd(fd);\n        else\n            shut_down(fd);",
      "        (void)0;",
      ["uring_faults_test"]),
    m("a cancelled operation that meets EAGAIN is an error, not a cancel",
      "include/corio/backend/uring.hpp",
      "result = -ECANCELED;  // it was never going to transfer: the cancel wins", "(void)0;",
      ["uring_faults_test"]),
    m("a deadline past the end of time wraps around",
      "include/corio/detail/timer_wheel.hpp",
      "if (d > clock::time_point::max() - now) return clock::time_point::max();", "(void)0;",
      ["io_limits_test"]),
    m("an event for an old file under a reused number wakes the new one",
      "include/corio/backend/epoll.hpp",
      "if ((event_key >> 32) != s.generation) return;", "(void)event_key;",
      ["io_limits_test"], backend="epoll"),
    # Time.
    m("equal deadlines fire out of order",
      "include/corio/detail/timer_wheel.hpp",
      "return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq_ < b->seq_);",
      "return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq_ > b->seq_);",
      ["time_test", "timer_wheel_test"]),
    m("the timer wheel fires a timer of the current tick before its deadline",
      "include/corio/detail/timer_wheel.hpp",
      "            if (e->deadline <= now) {", "            if (true) {",
      ["timer_wheel_test", "time_test"], short=True),
    m("a cascade between the wheel's levels drops its entries",
      "include/corio/detail/timer_wheel.hpp",
      "                place(e);\n                e = next;", "                e = next;",
      ["timer_wheel_test"]),
    m("a cancel in the wheel leaves its slot marked occupied, and the next deadline wrong",
      "include/corio/detail/timer_wheel.hpp",
      "if (slot_[i / slots][i % slots] == nullptr) occupied_[i / slots] &= ~(std::uint64_t{1} << (i % slots));",
      "(void)i;",
      ["timer_wheel_test"]),
    # Cancellation told from the exception's type (issue 13).
    m("every exception escaping a task is taken for a cancellation",
      "include/corio/task.hpp",
      "return t != nullptr && *t == typeid(cancelled_error);", "return t != nullptr;",
      ["spawn_test", "when_any_test"], short=True),
    m("a cancelled_error of a derived class is taken for a failure",
      "include/corio/task.hpp",
      "        } catch (const cancelled_error&) {\n            return true;\n        } catch (...) {\n            return false;",
      "        } catch (const cancelled_error&) {\n            return false;\n        } catch (...) {\n            return false;",
      ["spawn_test"]),
    # The epoll backend's readiness (issue 13): skipping a syscall must never strand an
    # operation waiting for an edge that will not come.
    m("epoll forgets that an event showed the end of the stream",
      "include/corio/backend/epoll.hpp",
      "if ((events & EPOLLRDHUP) != 0U || error) s.closed |= POLLIN;", "(void)0;",
      ["readiness_test"], backend="epoll"),
    m("epoll takes a short datagram for a drained socket",
      "include/corio/backend/epoll.hpp",
      "if (s.stream && op.result > 0", "if (op.result > 0",
      ["readiness_test"], backend="epoll"),
    m("epoll tries the syscall again after a short read",
      "include/corio/backend/epoll.hpp",
      "if (!issue && (s.ready & dir) == 0U) return false;", "",
      ["readiness_test"], backend="epoll"),
    # The lambda-coroutine trap (issue 16): spawn must name a task that borrows its closure.
    m("spawn never reports a lambda coroutine that borrows its closure",
      "include/corio/task.hpp",
      "on_this_stack(&self) && outside_frame(", "false && outside_frame(",
      ["spawn_test"]),
    # The io_uring receive pool (issue 13): one multishot receive per stream socket must
    # give a reader exactly the bytes a plain recv would, and give every buffer back.
    m("a large read overtakes the bytes queued by the multishot receive",
      "include/corio/backend/uring.hpp",
      "(op.len <= 4 * std::size_t{pool_.size} || s.armed || s.q_head >= 0)",
      "(op.len <= 4 * std::size_t{pool_.size})",
      ["recv_pool_test"], short=True),
    m("a buffer read to its end is not given back to the ring",
      "include/corio/backend/uring.hpp",
      "                recycle(dequeue(s));", "                (void)dequeue(s);",
      ["recv_pool_test"]),
    m("a socket nobody reads is never told to stop",
      "include/corio/backend/uring.hpp",
      "s.q_bytes >= 16 * pool_.size", "s.q_bytes >= 16 * pool_.size && false",
      ["recv_pool_test"]),
    m("reads waiting when the multishot stops are left waiting",
      "include/corio/backend/uring.hpp",
      "replay_readers(fd);  // the pool ran dry, or the socket was told to stop", "(void)0;",
      ["recv_pool_test"]),
    m("a read waiting on a socket being closed is left waiting",
      "include/corio/backend/uring.hpp",
      "        end_readers_on(fd);", "",
      ["recv_pool_test"], short=True),
    m("a released lease never gives its buffer back to the ring",
      "include/corio/backend/uring.hpp",
      "            home->owner->recycle(b);", "            (void)b;",
      ["recv_pool_test"]),
    m("a kernel's refusal of multishot receive is asked again and again",
      "include/corio/backend/uring.hpp",
      "multishot_refused_ = true;  // this kernel", "(void)0;  // this kernel",
      ["recv_pool_test"]),
    # Multishot accept, registered files, zero-copy send, POLL_FIRST and batched waits
    # (issue 13): what a program sees must not change.
    m("a cancelled accept leaves its listener accepting past its backlog",
      "include/corio/backend/uring.hpp",
      "if (accept && fds_[fd].readers == nullptr) stop_accepting(fd);", "(void)accept;",
      ["net_test", "accept_test"]),
    m("a listener nobody accepts on queues connections without end",
      "include/corio/backend/uring.hpp",
      "if (s.accepted->size() >= accept_queue_stop) stop_accepting(fd);", "(void)0;",
      ["accept_test"]),
    m("a closed listener's queued connections are left open",
      "include/corio/backend/uring.hpp",
      "while (s.accepted->size() > 0) ::close(s.accepted->pop());",
      "while (s.accepted->size() > 0) (void)s.accepted->pop();",
      ["accept_test"], short=True),
    m("a kernel's refusal of multishot accept is asked again and again",
      "include/corio/backend/uring.hpp",
      "multishot_accept_refused_ = true;  // a kernel", "(void)0;  // a kernel",
      ["accept_test"]),
    m("a closed socket keeps its entry in the table of registered files",
      "include/corio/backend/uring.hpp",
      "if (!s.fixed && !s.registering) return;", "return;",
      ["registered_files_test"]),
    m("a zero-copy send ends at its first CQE, while the kernel still holds the buffer",
      "include/corio/backend/uring.hpp",
      "if ((cflags & IORING_CQE_F_NOTIF) == 0U) {", "if (false) {",
      ["send_path_test"]),
    m("a recv right after a send never waits for readiness first",
      "include/corio/backend/uring.hpp",
      "op.poll_first = std::exchange(s.after_send, false);", "op.poll_first = false;",
      ["send_path_test"]),
    m("a batched wait sleeps past the next timer's deadline",
      "include/corio/backend/uring.hpp",
      "if (std::cmp_less(limit, arg.pad)) arg.pad = static_cast<__u32>(limit);", "(void)limit;",
      ["batch_wait_test"]),
]


def sh(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def compile_obj(src, out, include, extra):
    cmd = ["g++", "-std=gnu++20", "-O0", "-g0", "-w", f"-I{include}"] + extra + ["-c", src, "-o", out]
    r = sh(cmd)
    if r.returncode != 0:
        raise RuntimeError(f"compile failed: {' '.join(cmd)}\n{r.stdout[-3000:]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", action="store_true", help="only the short list (CI)")
    ap.add_argument("--only", default="", help="only mutations whose name contains this")
    ap.add_argument("--timeout", type=int, default=120, help="seconds per test run")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()

    # Every mutation, chosen or not, must still find its text exactly once: an edit of a
    # header that moves a mutation's text would otherwise retire it silently (CI runs
    # only the short list).
    drifted = []
    for mu in MUTATIONS:
        n = open(os.path.join(ROOT, mu["path"])).read().count(mu["find"])
        if n != 1:
            drifted.append(f"  {mu['name']}: its text occurs {n} times in {mu['path']}")
    if drifted:
        print("mutate: mutations whose text no longer occurs exactly once:\n" + "\n".join(drifted))
        return 1

    chosen = [x for x in MUTATIONS if (not args.short or x["short"]) and args.only in x["name"]]
    if not chosen:
        print("mutate: no mutation selected")
        return 1
    have_uring = sh(["pkg-config", "--exists", "liburing"]).returncode == 0
    extra = ["-DCORIO_HAS_IO_URING=1"] if have_uring else []
    libs = ["-luring"] if have_uring else []

    work = tempfile.mkdtemp(prefix="corio-mutate-")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs)
    try:
        # Catch's main does not depend on the headers under test: built once.
        main_o = os.path.join(work, "main.o")
        compile_obj(os.path.join(ROOT, "tests", "main.cpp"), main_o, os.path.join(ROOT, "include"), extra)
        # The baseline: unmutated, the same test files must pass, or a "kill" means nothing.
        base = os.path.join(work, "base")
        os.makedirs(base)
        files = sorted({t for mu in chosen for t in mu["tests"]})
        objs = [os.path.join(base, t + ".o") for t in files]
        list(pool.map(lambda p: compile_obj(os.path.join(ROOT, "tests", p[0] + ".cpp"), p[1],
                                            os.path.join(ROOT, "include"), extra), zip(files, objs)))
        exe = os.path.join(base, "t")
        r = sh(["g++", "-o", exe, main_o] + objs + libs + ["-pthread"])
        if r.returncode != 0:
            print(r.stdout[-2000:])
            return 1
        for backend in sorted({mu["backend"] if have_uring else "epoll" for mu in chosen}):
            r = sh([exe], env=dict(os.environ, CORIO_BACKEND=backend), timeout=args.timeout * 3)
            if r.returncode != 0:
                print(f"mutate: the unmutated tests fail on {backend}; fix them first\n{r.stdout[-4000:]}")
                return 1
        print(f"mutate: baseline passes ({', '.join(files)})", flush=True)
        results = []
        for i, mu in enumerate(chosen, 1):
            t0 = time.monotonic()
            inc = os.path.join(work, f"m{i}", "include")
            shutil.copytree(os.path.join(ROOT, "include"), inc)
            target = os.path.join(inc, os.path.relpath(mu["path"], "include"))
            text = open(target).read()
            n = text.count(mu["find"])
            if n != 1:
                results.append((mu["name"], f"DID NOT APPLY (the text occurs {n} times in {mu['path']})"))
                print(f"[{i}/{len(chosen)}] {mu['name']}: did not apply ({n} matches)", flush=True)
                continue
            open(target, "w").write(text.replace(mu["find"], mu["replace"]))
            objs = [os.path.join(work, f"m{i}", t + ".o") for t in mu["tests"]]
            try:
                list(pool.map(lambda p: compile_obj(os.path.join(ROOT, "tests", p[0] + ".cpp"), p[1], inc,
                                                    extra + mu["flags"]),
                              zip(mu["tests"], objs)))
            except RuntimeError as e:
                results.append((mu["name"], "DID NOT BUILD"))
                print(f"[{i}/{len(chosen)}] {mu['name']}: did not build\n{e}", flush=True)
                continue
            exe = os.path.join(work, f"m{i}", "t")
            r = sh(["g++", "-o", exe, main_o] + objs + libs + ["-pthread"] + mu["flags"])
            if r.returncode != 0:
                results.append((mu["name"], "DID NOT LINK"))
                print(r.stdout[-2000:])
                continue
            env = dict(os.environ, CORIO_BACKEND=mu["backend"] if have_uring else "epoll")
            try:
                r = sh([exe], env=env, timeout=args.timeout)
                verdict = "survived" if r.returncode == 0 else f"killed (exit {r.returncode})"
            except subprocess.TimeoutExpired:
                verdict = f"killed (timed out after {args.timeout} s)"
            results.append((mu["name"], verdict))
            print(f"[{i}/{len(chosen)}] {mu['name']}: {verdict} ({time.monotonic() - t0:.0f} s)", flush=True)
            shutil.rmtree(os.path.join(work, f"m{i}"), ignore_errors=True)
    finally:
        pool.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    bad = [(n, v) for n, v in results if not v.startswith("killed")]
    print(f"\nmutate: {len(results) - len(bad)} of {len(results)} mutations killed")
    for n, v in bad:
        print(f"  {v.upper()}: {n}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
