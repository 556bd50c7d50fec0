#pragma once
// The whole public API of corio.

#include <corio/backend/backend.hpp>
#include <corio/buffer.hpp>
#include <corio/cancel.hpp>
#include <corio/errors.hpp>
#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/net/endpoint.hpp>
#include <corio/net/tcp.hpp>
#include <corio/net/udp.hpp>
#include <corio/gather.hpp>
#include <corio/outcome.hpp>
#include <corio/poll.hpp>
#include <corio/run.hpp>
#include <corio/spawn.hpp>
#include <corio/task.hpp>
#include <corio/task_group.hpp>
#include <corio/thread_pool.hpp>
#include <corio/time.hpp>
#include <corio/when_any.hpp>
