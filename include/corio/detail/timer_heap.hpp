#pragma once
// The loop's timers are a timing wheel now (timer_wheel.hpp): this name is kept for the
// headers that include the timer entry and the deadline arithmetic by it.

#include <corio/detail/timer_wheel.hpp>
