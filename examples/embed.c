/* examples/embed.c — dfx's trainer inside a C program that owns MPI: the host initialises MPI,
 * hands MPI_COMM_WORLD to dfx (which duplicates it), trains a few steps, predicts for a field of
 * its own and checks the prediction, then frees the trainer before MPI_Finalize.
 *
 *   mpicc embed.c $(pkg-config --cflags --libs dfx) -o embed
 *   mpiexec -n 3 ./embed [steps] [json]
 */
#include <mpi.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <train/dfx_c.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static const char* default_config =
    "{\"problem\": \"poisson2d\", \"res\": 16, \"depth\": 2, \"width\": 4, \"batch\": 7,"
    " \"samples\": 14, \"steps\": 5, \"seed\": 9, \"dtype\": \"float64\", \"schedule\": \"cosine\","
    " \"optimizer\": \"adam\", \"eval_samples\": 0}";

static int fail(const char* what, int rank) {
  fprintf(stderr, "rank %d: %s failed: %s\n", rank, what, dfx_last_error());
  MPI_Abort(MPI_COMM_WORLD, 1);
  return 1;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const long steps = argc > 1 ? atol(argv[1]) : 5;
  const char* config = argc > 2 ? argv[2] : default_config;

  dfx_trainer* t = NULL;
  if (dfx_trainer_create(config, MPI_COMM_WORLD, &t) != DFX_OK) return fail("create", rank);
  for (long k = 0; k < steps; ++k) {
    if (dfx_trainer_train(t, 1) != DFX_OK) return fail("train", rank);
    int64_t step = 0;
    double loss = 0;
    dfx_trainer_step(t, &step);
    dfx_trainer_last_loss(t, &loss);
    if (rank == 0) printf("step %lld loss %.17g\n", (long long)step, loss);
  }

  /* A field of our own: nu = 1 + 0.5 sin(2 pi x) cos(2 pi y), two samples (the second constant). */
  int dims = 0;
  int64_t res = 0;
  dfx_trainer_field_size(t, &dims, &res);
  if (dims != 2) return fail("field_size (expected a 2-d problem)", rank);
  const int64_t batch = 2, n = batch * res * res;
  double* nu = malloc(sizeof(double) * (size_t)n);
  double* u = malloc(sizeof(double) * (size_t)n);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t y = 0; y < res; ++y)
      for (int64_t x = 0; x < res; ++x) {
        const double px = (double)x / (double)(res - 1), py = (double)y / (double)(res - 1);
        nu[(b * res + y) * res + x] =
            b == 0 ? 1.0 + 0.5 * sin(2 * M_PI * px) * cos(2 * M_PI * py) : 1.0;
      }
  if (dfx_trainer_predict(t, nu, batch, u) != DFX_OK) return fail("predict", rank);
  int ok = 1;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t y = 0; y < res; ++y)
      for (int64_t x = 0; x < res; ++x) {
        const double v = u[(b * res + y) * res + x];
        if (!isfinite(v)) ok = 0;
        if (x == 0 && v != 1.0) ok = 0;        /* Dirichlet: u = 1 on x = 0 */
        if (x == res - 1 && v != 0.0) ok = 0;  /* and u = 0 on x = 1 */
      }
  if (rank == 0)
    printf("prediction %s: u[0, 0, %lld, %lld] = %.6g\n", ok ? "ok" : "WRONG", (long long)(res / 2),
           (long long)(res / 2), u[(res / 2) * res + res / 2]);
  free(nu);
  free(u);
  dfx_trainer_free(t);
  MPI_Finalize();
  return ok ? 0 : 1;
}
