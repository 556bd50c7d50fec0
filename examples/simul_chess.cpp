// simul_chess: a simultaneous exhibition. The master takes 5 s per move, each of 24
// opponents 55 s; a game is 30 move pairs. One board after another takes
// 24 x 30 x 60 s = 12 h; walking from board to board, 30 x 24 x 5 s = 1 h.
//
// The master's thinking is her own time (it blocks the one worker); an opponent's
// thinking is waiting (a sleep). Time is scaled.
// Usage: simul_chess [--second-us N]   (default: one second lasts 100 us: 12 h -> 4.3 s)
#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "cli.hpp"

using steady = std::chrono::steady_clock;

namespace {

long second_us = 100;
constexpr int boards = 24;
constexpr int move_pairs = 30;
constexpr int master_s = 5;
constexpr int opponent_s = 55;

std::chrono::microseconds seconds(int s) { return std::chrono::microseconds(s * second_us); }

corio::task<> game(int board) {
    for (int move = 0; move < move_pairs; ++move) {
        std::this_thread::sleep_for(seconds(master_s));  // the master thinks at this board
        co_await corio::sleep(seconds(opponent_s));      // she walks on while the opponent thinks
    }
    (void)board;
}

corio::task<> one_board_at_a_time() {
    for (int b = 0; b < boards; ++b) co_await game(b);
}

corio::task<> simultaneous() {
    std::vector<corio::task<>> games;
    for (int b = 0; b < boards; ++b) games.push_back(game(b));
    co_await corio::gather(std::move(games));
}

double play(const char* title, corio::task<> (*plan)()) {
    const auto t0 = steady::now();
    corio::run(plan());
    const double real = std::chrono::duration<double>(steady::now() - t0).count();
    const double exhibition_h = real * 1e6 / static_cast<double>(second_us) / 3600.0;
    std::printf("%-22s %7.3f s real = %5.2f h of exhibition time\n", title, real, exhibition_h);
    return real;
}

}  // namespace

int main(int argc, char** argv) {
    cli::command cmd("simul_chess", "A simultaneous exhibition on 24 boards, against one board at a time.");
    cmd.flag("--second-us N", second_us, "how long one second lasts, in us, up to a real second",
             {.min = 1, .max = 1'000'000});
    return cmd.run(argc, argv, [] {
        std::printf("%d boards, %d move pairs, master %d s/move, opponents %d s/move; 1 s lasts %ld us\n", boards,
                    move_pairs, master_s, opponent_s, second_us);
        const double seq = play("one board at a time:", one_board_at_a_time);
        const double sim = play("simultaneous:", simultaneous);
        std::printf("speedup: %.1fx (ideal 12x)\n", seq / sim);
        return sim < seq ? 0 : 1;
    });
}
