#pragma once
/// @file
/// The whole public API of corio.

#include <corio/as_completed.hpp>
#include <corio/backend/backend.hpp>
#include <corio/buffer.hpp>
#include <corio/cancel.hpp>
#include <corio/errors.hpp>
#include <corio/event_loop.hpp>
#include <corio/fs/file.hpp>
#include <corio/future.hpp>
#include <corio/net/endpoint.hpp>
#include <corio/net/tcp.hpp>
#include <corio/net/udp.hpp>
#include <corio/gather.hpp>
#include <corio/outcome.hpp>
#include <corio/poll.hpp>
#include <corio/run.hpp>
#include <corio/signal.hpp>
#include <corio/spawn.hpp>
#include <corio/task.hpp>
#include <corio/sync/condition_variable.hpp>
#include <corio/sync/event.hpp>
#include <corio/sync/mutex.hpp>
#include <corio/sync/queue.hpp>
#include <corio/sync/semaphore.hpp>
#include <corio/task_group.hpp>
#include <corio/thread_pool.hpp>
#include <corio/time.hpp>
#include <corio/version.hpp>
#include <corio/when_any.hpp>

/// @namespace corio
/// The runtime: the event loop, tasks and futures, the combinators, structured concurrency,
/// cancellation, coordination between tasks, threads, timers and signals.

/// @namespace corio::net
/// Networking: endpoints and name resolution, TCP listeners and streams, UDP sockets.

/// @namespace corio::fs
/// Files: positional reads and writes that never block the loop.
