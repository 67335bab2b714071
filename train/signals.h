// train/signals.h — stopping a run cleanly on SIGINT/SIGTERM. The handlers only record the
// signal in an atomic flag; the Trainer polls it after each step, agrees with the other ranks
// on the step to stop at, writes an atomic checkpoint and returns StopReason::Interrupted.
// A second signal while the first is pending ends the process at once (exit 128 + signal).
// Host codes opt in with TrainConfig::stop_on_signal (handlers installed for the duration of
// Trainer::train) or install_stop_handlers(); request_stop() asks for the same stop from code.
#pragma once

namespace dfx::train {

// Installs the SIGINT and SIGTERM handlers (idempotent). `announce`: the first signal prints one
// line on stderr saying the run stops after the current step.
void install_stop_handlers(bool announce = true);
// Puts back the handlers that were in place before install_stop_handlers().
void restore_stop_handlers();
// The signal number of a pending stop request (0: none).
int stop_requested();
// Asks the trainer to stop after the current step as if `signal` had arrived (async-signal-safe).
void request_stop(int signal);
// Forgets a pending request (before training again after an interrupted train()).
void clear_stop_request();
// "SIGINT", "SIGTERM" or "signal N".
const char* signal_name(int signal);

}  // namespace dfx::train
