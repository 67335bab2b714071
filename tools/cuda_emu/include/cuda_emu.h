// Host emulation of the CUDA features dfx's kernels use: every CUDA thread is a std::thread,
// __syncthreads a block barrier, warp shuffles a per-warp exchange. For logic tests only.
#pragma once
#include <algorithm>
#include <ucontext.h>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <thread>
#include <vector>

struct uint3 { unsigned x = 0, y = 0, z = 0; };
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
inline thread_local uint3 threadIdx, blockIdx;
inline thread_local dim3 blockDim, gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(x)

using std::max;
using std::min;
using std::exp; using std::log; using std::sqrt; using std::tanh; using std::pow;
inline float expf(float x) { return std::exp(x); }
inline float logf(float x) { return std::log(x); }
inline float sqrtf(float x) { return std::sqrt(x); }
inline float tanhf(float x) { return std::tanh(x); }
inline float powf(float x, float y) { return std::pow(x, y); }
// Round-to-nearest arithmetic that a GPU never contracts into an FMA (the host build here
// contracts nothing either: -std=c++20 means -ffp-contract=off).
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }

struct float4 { float x, y, z, w; };
struct double2 { double x, y; };
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
inline double2 make_double2(double a, double b) { return {a, b}; }
struct longlong2 { long long x, y; };
inline longlong2 make_longlong2(long long a, long long b) { return {a, b}; }

// Kernels may check what a GPU enforces and the emulation would not (conv.cu's load16).
#define DFX_CUDA_EMULATION 1

namespace emu {
// A misaligned vector access faults on a GPU: here it stops the run, loudly.
inline void check_aligned(const void* p, uintptr_t bytes, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % bytes != 0) {
    std::fprintf(stderr, "EMULATION FAULT: %s: %p is not %zu-byte aligned\n", what, p,
                 static_cast<size_t>(bytes));
    std::abort();
  }
}
// CUDA threads of one block as ucontext coroutines; barriers yield to a round-robin scheduler.
struct Sched {
  int n = 0;
  std::vector<ucontext_t> ctx;
  std::vector<int> wait;   // -2 done, -1 runnable, 0 block barrier, 1 + w warp barrier w
  std::vector<std::vector<char>> stacks;
  ucontext_t main;
  int cur = 0;
  std::function<void()> body;
};
inline Sched sched;
inline void trampoline() {
  sched.body();
  sched.wait[sched.cur] = -2;
  swapcontext(&sched.ctx[sched.cur], &sched.main);
}
inline void barrier_wait(int id) {
  sched.wait[sched.cur] = id;
  swapcontext(&sched.ctx[sched.cur], &sched.main);
}
inline unsigned char warp_buf[32][32][32];  // [warp][lane][bytes]
}  // namespace emu

inline void __syncthreads() { emu::barrier_wait(0); }

template <class T>
T __shfl_down_sync(unsigned, T v, int off) {
  static_assert(sizeof(T) <= 32);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  std::memcpy(emu::warp_buf[warp][lane], &v, sizeof(T));
  emu::barrier_wait(1 + warp);
  T r = v;
  if (lane + off < 32) std::memcpy(&r, emu::warp_buf[warp][lane + off], sizeof(T));
  emu::barrier_wait(1 + warp);
  return r;
}

enum cudaError_t { cudaSuccess = 0, cudaErrorUnknown = 1 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline const char* cudaGetErrorString(cudaError_t) { return "emulated error"; }
inline const char* cudaGetErrorName(cudaError_t) { return "cudaErrorEmu"; }
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
inline cudaError_t cudaMemset(void* p, int v, size_t n) { std::memset(p, v, n); return cudaSuccess; }
typedef void* cudaStream_t;
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t) { std::memset(p, v, n); return cudaSuccess; }
enum cudaDeviceAttr { cudaDevAttrComputeCapabilityMajor = 75 };
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr, int) { *v = 9; return cudaSuccess; }
#define __align__(n) __attribute__((aligned(n)))
inline void __trap() { std::abort(); }

namespace emu {
inline long launches = 0;
template <class K, class... Args>
void launch(dim3 grid, dim3 block, K kernel, Args... args) {
  ++launches;
  const int n = static_cast<int>(block.x * block.y * block.z);
  Sched& S = sched;
  if (static_cast<int>(S.stacks.size()) < n) S.stacks.resize(n, std::vector<char>(256 * 1024));
  S.ctx.resize(n);
  S.wait.assign(n, -1);
  S.n = n;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        blockIdx = uint3{bx, by, bz};
        blockDim = block;
        gridDim = grid;
        S.body = [&] { kernel(args...); };
        for (int t = 0; t < n; ++t) {
          getcontext(&S.ctx[t]);
          S.ctx[t].uc_stack.ss_sp = S.stacks[t].data();
          S.ctx[t].uc_stack.ss_size = S.stacks[t].size();
          S.ctx[t].uc_link = nullptr;
          makecontext(&S.ctx[t], trampoline, 0);
          S.wait[t] = -1;
        }
        for (;;) {
          bool ran = false;
          for (int t = 0; t < n; ++t) {
            if (S.wait[t] != -1) continue;
            S.cur = t;
            threadIdx = uint3{static_cast<unsigned>(t), 0, 0};
            swapcontext(&S.main, &S.ctx[t]);
            ran = true;
          }
          int done = 0;
          for (int t = 0; t < n; ++t) done += S.wait[t] == -2;
          if (done == n) break;
          // Release a barrier whose group has fully arrived.
          bool released = false;
          int alive = n - done, at_block = 0;
          for (int t = 0; t < n; ++t) at_block += S.wait[t] == 0;
          if (at_block > 0 && at_block == alive) {
            for (int t = 0; t < n; ++t) if (S.wait[t] == 0) S.wait[t] = -1;
            released = true;
          }
          for (int w = 0; w * 32 < n; ++w) {
            int cnt = 0;
            for (int t = 32 * w; t < std::min(n, 32 * w + 32); ++t) cnt += S.wait[t] == 1 + w;
            if (cnt > 0 && cnt == std::min(n, 32 * w + 32) - 32 * w) {
              for (int t = 32 * w; t < std::min(n, 32 * w + 32); ++t) S.wait[t] = -1;
              released = true;
            }
          }
          if (!ran && !released) { std::fprintf(stderr, "emu: deadlock\n"); std::abort(); }
        }
      }
}
}  // namespace emu
