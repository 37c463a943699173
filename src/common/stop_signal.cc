#include "common/stop_signal.h"

#include <csignal>
#include <cstring>

namespace stylefleet {
namespace {
volatile std::sig_atomic_t g_stop = 0;

void OnStopSignal(int signal_number) {
  g_stop = 1;
  // The next one gets the default action (terminate).
  struct sigaction action;
  std::memset(&action, 0, sizeof(action));
  action.sa_handler = SIG_DFL;
  sigaction(signal_number, &action, nullptr);
}
}  // namespace

void InstallStopSignalHandlers() {
  struct sigaction action;
  std::memset(&action, 0, sizeof(action));
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

bool StopRequested() { return g_stop != 0; }
void RequestStop() { g_stop = 1; }
void ClearStopRequest() { g_stop = 0; }

}  // namespace stylefleet
