#include "common/stop_signal.h"

#include <csignal>
#include <cstring>

namespace stylefleet {
namespace {
volatile std::sig_atomic_t g_stop = 0;

constexpr int kStopSignals[] = {SIGTERM, SIGINT, SIGUSR1};

void OnStopSignal(int) {
  g_stop = 1;
  // The next stop signal, of any of the three kinds, gets the default action
  // (terminate): launch/mpirun.sh sends SIGUSR1 first and SIGTERM second.
  struct sigaction action;
  std::memset(&action, 0, sizeof(action));
  action.sa_handler = SIG_DFL;
  for (int s : kStopSignals) sigaction(s, &action, nullptr);
}
}  // namespace

void InstallStopSignalHandlers() {
  struct sigaction action;
  std::memset(&action, 0, sizeof(action));
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  // SIGUSR1: mpirun forwards it to the ranks as it is (SIGTERM and SIGINT it
  // turns into a kill), so launch/mpirun.sh passes a stop on as SIGUSR1.
  for (int s : kStopSignals) sigaction(s, &action, nullptr);
}

bool StopRequested() { return g_stop != 0; }
void RequestStop() { g_stop = 1; }
void ClearStopRequest() { g_stop = 0; }

}  // namespace stylefleet
