// dist/omp_env_link.cpp — libdfx_omp_env_link.so, the hop between libdfx.so and
// libdfx_omp_env.so. It exists for the loader's order alone (dist/omp_env.cpp): one level down,
// libdfx_omp_env.so is loaded after libgomp whatever order the linker writes libdfx.so's needed
// libraries in, and so is initialised before it.
extern "C" int dfx_omp_env_state;

extern "C" __attribute__((visibility("default"))) int dfx_omp_env_state_get() {
  return dfx_omp_env_state;
}
