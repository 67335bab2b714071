// tests/gpu/main_gpu.cpp — doctest runner for dfx_gpu. Without a usable CUDA device it runs
// nothing and reports every test case as skipped (a line for people, DFX_GPU_SKIPPED N for
// scripts), so a machine without a GPU never counts the GPU suite as passed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <iostream>
#include <string>

#include "config.h"
#include "core/cuda_runtime.h"
#if DFX_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace {

// A reporter that only remembers how many test cases a --count query found.
unsigned g_counted = 0;

struct CountReporter : doctest::IReporter {
  explicit CountReporter(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData& in) override {
    if (in.run_stats) g_counted = in.run_stats->numTestCasesPassingFilters;
  }
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

unsigned count_test_cases() {
  // --count is a flag in doctest 2.4 (setOption("count", true) is silently ignored). --no-skip
  // counts the cases a build skips by decorator too (the NCCL ones without NCCL), so every build
  // reports the same number on a machine without a GPU.
  const char* argv[] = {"dfx_gpu", "--count", "--no-skip", "--reporters=dfx_gpu_count"};
  doctest::Context ctx;
  ctx.applyCommandLine(4, argv);
  ctx.run();
  return g_counted;
}

// Empty when a device can run the suite, else why not.
std::string no_device_reason() {
  if (!dfx::cuda::is_built()) return "dfx was built without CUDA";
  if (dfx::cuda::device_count() > 0) return "";
#if DFX_HAVE_CUDA
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err);
  }
#endif
  return "cudaGetDeviceCount reports 0 devices";
}

}  // namespace

DOCTEST_REGISTER_REPORTER("dfx_gpu_count", 0, CountReporter);

int main(int argc, char** argv) {
  const std::string reason = no_device_reason();
  if (!reason.empty()) {
    const unsigned n = count_test_cases();
    std::cout << "dfx_gpu: no CUDA device (" << reason << "); " << n << " test cases skipped\n"
              << "DFX_GPU_SKIPPED " << n << std::endl;
    return 0;
  }
  doctest::Context ctx;
  ctx.applyCommandLine(argc, argv);
  return ctx.run();
}
