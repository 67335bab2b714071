// train/signals.cpp — SIGINT/SIGTERM as a stop request (see signals.h).
#include "train/signals.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <mutex>

namespace dfx::train {
namespace {

std::atomic<int> g_signal{0};
std::atomic<bool> g_announce{true};
static_assert(std::atomic<int>::is_always_lock_free, "the signal flag must be lock-free");

std::mutex g_mutex;  // installing and restoring (not the handler)
bool g_installed = false;
struct sigaction g_old_int, g_old_term;

void write_stderr(const char* s) {
  size_t n = 0;
  while (s[n]) ++n;
  ssize_t r = ::write(STDERR_FILENO, s, n);
  (void)r;
}

void on_signal(int sig) {
  int expected = 0;
  if (!g_signal.compare_exchange_strong(expected, sig)) {
    // Second signal: the user means it.
    write_stderr("\ndfx: second signal, exiting at once without a checkpoint\n");
    ::_exit(128 + sig);
  }
  if (g_announce.load())
    write_stderr(sig == SIGINT ? "\ndfx: SIGINT: stopping after this step and writing a checkpoint "
                                 "(again to exit at once)\n"
                               : "\ndfx: SIGTERM: stopping after this step and writing a checkpoint "
                                 "(again to exit at once)\n");
}

}  // namespace

void install_stop_handlers(bool announce) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_announce = announce;
  if (g_installed) return;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // blocking reads and collectives carry on; the loop polls the flag
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
  g_installed = true;
}

void restore_stop_handlers() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_installed) return;
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
  g_installed = false;
}

int stop_requested() { return g_signal.load(); }
void request_stop(int signal) {
  int expected = 0;
  g_signal.compare_exchange_strong(expected, signal > 0 ? signal : SIGINT);
}
void clear_stop_request() { g_signal = 0; }

const char* signal_name(int signal) {
  switch (signal) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
  }
  static thread_local char buf[32];
  std::snprintf(buf, sizeof buf, "signal %d", signal);
  return buf;
}

}  // namespace dfx::train
