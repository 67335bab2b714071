/* tests/c/c_api_local.c — the C API (train/dfx_c.h) without MPI: errors as status codes and
 * messages, checkpoints (a resume from one takes the same losses bit for bit; one at the end
 * loads for prediction). Built by tests/scripts/embed_examples.sh; argv[1]: a scratch directory. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <train/dfx_c.h>

#define CHECK(c)                                                        \
  do {                                                                  \
    if (!(c)) {                                                         \
      fprintf(stderr, "line %d: %s (last error: %s)\n", __LINE__, #c, dfx_last_error()); \
      return 1;                                                         \
    }                                                                   \
  } while (0)

static const char* cfg =
    "{\"res\": 16, \"depth\": 2, \"width\": 4, \"batch\": 7, \"samples\": 14, \"steps\": 6,"
    " \"seed\": 9, \"dtype\": \"float64\", \"schedule\": \"cosine\", \"eval_samples\": 0}";

int main(int argc, char** argv) {
  char path[4096];
  snprintf(path, sizeof path, "%s/step3.safetensors", argv[1]);
  dfx_trainer* t = NULL;
  /* Errors: unknown key, wrong type, bad JSON, NULLs. */
  CHECK(dfx_trainer_create_local("{\"res\": 16, \"bogus_key\": 1}", &t) == DFX_ERROR && t == NULL);
  CHECK(strstr(dfx_last_error(), "unknown key 'bogus_key'") != NULL);
  printf("%s\n", strstr(dfx_last_error(), "unknown key"));  /* lists the keys */
  CHECK(dfx_trainer_create_local("{\"res\": \"sixteen\"}", &t) == DFX_ERROR);
  CHECK(strstr(dfx_last_error(), "'res'") != NULL);
  CHECK(dfx_trainer_create_local("{\"res\": 16,", &t) == DFX_ERROR);
  CHECK(strstr(dfx_last_error(), "not valid JSON") != NULL);
  CHECK(dfx_trainer_create_local("{\"res\": 18, \"depth\": 3}", &t) == DFX_ERROR);
  CHECK(dfx_trainer_create_local(cfg, NULL) == DFX_EINVAL);
  CHECK(dfx_trainer_train(NULL, 1) == DFX_EINVAL);
  dfx_trainer_free(NULL);

  /* 6 steps straight; then 3, a checkpoint, a load, 3 more: the same losses, bit for bit. */
  double straight[6], resumed[6], loss;
  int64_t step, total, res;
  int dims, rank, size;
  CHECK(dfx_trainer_create_local(cfg, &t) == DFX_OK);
  CHECK(dfx_trainer_total_steps(t, &total) == DFX_OK && total == 6);
  CHECK(dfx_trainer_rank(t, &rank, &size) == DFX_OK && rank == 0 && size == 1);
  CHECK(dfx_trainer_field_size(t, &dims, &res) == DFX_OK && dims == 2 && res == 16);
  for (int k = 0; k < 6; ++k) {
    CHECK(dfx_trainer_train(t, 1) == DFX_OK);
    CHECK(dfx_trainer_last_loss(t, &straight[k]) == DFX_OK && isfinite(straight[k]));
  }
  CHECK(dfx_trainer_train(t, 5) == DFX_OK);  /* at the end: no more steps */
  CHECK(dfx_trainer_step(t, &step) == DFX_OK && step == 6);
  const int64_t n = 2 * res * res;
  double *nu = malloc(sizeof(double) * n), *u0 = malloc(sizeof(double) * n), *u1 = malloc(sizeof(double) * n);
  for (int64_t i = 0; i < n; ++i) nu[i] = 1.0 + 0.25 * (double)(i % 7);
  CHECK(dfx_trainer_predict(t, nu, 2, u0) == DFX_OK);
  CHECK(dfx_trainer_predict(t, nu, 0, u0) == DFX_EINVAL);
  char end_path[4096];
  snprintf(end_path, sizeof end_path, "%s/end.safetensors", argv[1]);
  CHECK(dfx_trainer_save_checkpoint(t, end_path) == DFX_OK);
  dfx_trainer_free(t);

  CHECK(dfx_trainer_create_local(cfg, &t) == DFX_OK);
  CHECK(dfx_trainer_train(t, 3) == DFX_OK);
  CHECK(dfx_trainer_last_loss(t, &loss) == DFX_OK && loss == straight[2]);
  CHECK(dfx_trainer_save_checkpoint(t, path) == DFX_OK);
  CHECK(dfx_trainer_train(t, 2) == DFX_OK);  /* a continuation the load throws away */
  CHECK(dfx_trainer_load_checkpoint(t, path) == DFX_OK);
  CHECK(dfx_trainer_step(t, &step) == DFX_OK && step == 3);
  for (int k = 3; k < 6; ++k) {
    CHECK(dfx_trainer_train(t, 1) == DFX_OK);
    CHECK(dfx_trainer_last_loss(t, &resumed[k]) == DFX_OK);
    CHECK(resumed[k] == straight[k]);
  }
  CHECK(dfx_trainer_load_checkpoint(t, "/nonexistent/x.safetensors") == DFX_ERROR);
  CHECK(dfx_trainer_step(t, &step) == DFX_OK && step == 6);  /* still usable */
  dfx_trainer_free(t);

  /* A checkpoint at the end: its weights predict as before; nothing left to train. */
  CHECK(dfx_trainer_create_local(cfg, &t) == DFX_OK);
  CHECK(dfx_trainer_load_checkpoint(t, end_path) == DFX_OK);
  CHECK(dfx_trainer_step(t, &step) == DFX_OK && step == 6);
  CHECK(dfx_trainer_train(t, 1) == DFX_OK);
  CHECK(dfx_trainer_step(t, &step) == DFX_OK && step == 6);
  CHECK(dfx_trainer_predict(t, nu, 2, u1) == DFX_OK);
  CHECK(memcmp(u0, u1, sizeof(double) * n) == 0);
  dfx_trainer_free(t);
  free(nu); free(u0); free(u1);
  printf("C API (local): errors, resume from a checkpoint (losses bit for bit), end checkpoint: ok\n");
  return 0;
}
