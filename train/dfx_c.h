/* train/dfx_c.h — dfx's Trainer from C and Fortran (ISO_C_BINDING): an opaque handle built
 * from a JSON configuration (the keys of `dfx train --help`, with _ for -) and a communicator
 * (the host program's MPI communicator, duplicated, or this process alone); it trains, predicts
 * into the caller's buffers and saves and loads run checkpoints.
 *
 * Every function returns a status (DFX_OK = 0, else one of the codes below) and never lets a
 * C++ exception out; dfx_last_error() then holds the message of the last failing call made on
 * this thread. Functions marked "collective" must be called by every rank of the trainer's
 * communicator, in the same order. A trainer made on a host communicator must be freed before
 * the host calls MPI_Finalize.
 *
 *   MPI_Init(&argc, &argv);
 *   dfx_trainer* t;
 *   if (dfx_trainer_create("{\"res\": 32, \"steps\": 100}", MPI_COMM_WORLD, &t) != DFX_OK)
 *     fprintf(stderr, "%s\n", dfx_last_error());
 *   dfx_trainer_train(t, 100);
 *   dfx_trainer_free(t);
 *   MPI_Finalize();
 *
 * Fields (the network's input, e.g. poisson2d's diffusivity nu, and its output u, boundary values
 * applied) are float64, contiguous, of shape [batch, 1, res, res] in 2-d and [batch, 1, res, res,
 * res] in 3-d, in C (row-major) order with x the last, fastest index: element (b, y, x) of a 2-d
 * field is at b*res*res + y*res + x. A Fortran array u(res, res, batch) is the same memory
 * (u(x+1, y+1, b+1)). For poisson2d the Dirichlet values are u = 1 on x = 0 and u = 0 on
 * x = res-1.
 *
 * Configuration: the keys and defaults of `dfx train`, except that "out" defaults to "" (no run
 * directory, nothing written unless asked), "threads" 0 leaves the host's thread settings alone,
 * and "comm", "panels" and "log_every" are accepted but ignored (the communicator is the one
 * passed). Unknown keys are errors naming the key. The configuration as given is stored in
 * checkpoints (their "config", as `dfx train` stores its options).
 */
#ifndef DFX_TRAIN_DFX_C_H
#define DFX_TRAIN_DFX_C_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  DFX_OK = 0,
  DFX_ERROR = 1,        /* the call failed (bad configuration, I/O, ...): see dfx_last_error() */
  DFX_EINVAL = 2,       /* a null handle or pointer, or an out-of-range argument */
  DFX_ENOMPI = 3,       /* an MPI communicator was passed but dfx was built without MPI */
  DFX_ENONFINITE = 4    /* training stopped at a non-finite loss (the step was not taken) */
};

typedef struct dfx_trainer dfx_trainer;

/* The message of the last failing call on this thread ("" when none failed). Valid until the
 * next failing call on this thread. */
const char* dfx_last_error(void);

/* Trainer on this process alone (no MPI). */
int dfx_trainer_create_local(const char* json, dfx_trainer** out);
/* Trainer on `*comm`, a pointer to the host's MPI_Comm (dfx duplicates it). Collective. */
int dfx_trainer_create_mpi(const char* json, const void* comm, dfx_trainer** out);
/* Trainer on the Fortran communicator handle `fcomm` (an MPI_Fint, e.g. Fortran's
 * MPI_COMM_WORLD), converted with MPI_Comm_f2c. Collective. */
int dfx_trainer_create_f(const char* json, int fcomm, dfx_trainer** out);
#if defined(MPI_VERSION) && !defined(DFX_C_NO_MPI_COMM)
/* With <mpi.h> included first: the same, taking the MPI_Comm itself. */
static inline int dfx_trainer_create(const char* json, MPI_Comm comm, dfx_trainer** out) {
  return dfx_trainer_create_mpi(json, &comm, out);
}
#endif

/* Up to `steps` more optimiser steps (fewer at the schedule's end or the time budget).
 * DFX_ENONFINITE when a step's loss was not finite. Collective. */
int dfx_trainer_train(dfx_trainer* t, int64_t steps);
/* The final checkpoint (when "out" is set) and held-out evaluation, once. Collective. */
int dfx_trainer_finish(dfx_trainer* t);

int dfx_trainer_last_loss(const dfx_trainer* t, double* loss);  /* global loss of the last step */
int dfx_trainer_step(const dfx_trainer* t, int64_t* step);      /* steps taken, resumed included */
int dfx_trainer_total_steps(const dfx_trainer* t, int64_t* total);
int dfx_trainer_rank(const dfx_trainer* t, int* rank, int* size);  /* in its communicator */
/* Spatial dimensions (2 or 3) and nodes per side of the problem's fields. */
int dfx_trainer_field_size(const dfx_trainer* t, int* dims, int64_t* res);

/* The prediction (boundary values applied) for `batch` input fields: reads batch * res^dims
 * doubles from `input`, writes as many to `output` (see the layout above). Local to the rank. */
int dfx_trainer_predict(dfx_trainer* t, const double* input, int64_t batch, double* output);

/* A run checkpoint at `path` (weights, optimiser state, step, configuration), written by rank 0
 * with model.safetensors (weights only) beside it. Collective. */
int dfx_trainer_save_checkpoint(dfx_trainer* t, const char* path);
/* Continues from the checkpoint at `path` (every rank reads it): weights, optimiser state and
 * step, so training resumes bit for bit. A checkpoint at or past the configured steps loads its
 * weights and optimiser state for prediction; dfx_trainer_train then takes no steps. Collective. */
int dfx_trainer_load_checkpoint(dfx_trainer* t, const char* path);

/* Frees the trainer (NULL is ignored). Collective for MPI trainers. */
void dfx_trainer_free(dfx_trainer* t);

#ifdef __cplusplus
}
#endif

#endif /* DFX_TRAIN_DFX_C_H */
