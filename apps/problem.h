// apps/problem.h — the workloads as the command line sees them: the network input for a list of
// sample indices, the data-free loss (with the global count for loss integrity), the classical
// reference, and the prediction with its boundary conditions applied.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "autodiff/var.h"

namespace dfx::app {

struct ProblemOptions {
  std::string name = "poisson2d";  // poisson2d | poisson3d | burgers
  int64_t res = 64;
  uint64_t seed = 0;
  double visc = 0.01;
  double boundary_factor = 64.0;
};

class Problem {
 public:
  virtual ~Problem() = default;
  virtual int dims() const = 0;
  virtual const char* input_name() const = 0;  // what the input channel is ("omega", "b")
  virtual Tensor input(const std::vector<uint64_t>& samples, DType dtype) const = 0;
  virtual ad::Var loss(const ad::Var& u, const Tensor& input, int64_t global_count) const = 0;
  virtual Tensor prediction(const Tensor& u) const = 0;            // boundary values applied
  virtual Tensor reference(const Tensor& input, const std::vector<uint64_t>& samples) const = 0;
  // Reference for an input field given directly (dfx solve): [1, 1, *S] float64.
  Shape field_shape(int64_t batch) const;
  const ProblemOptions& options() const { return opts_; }

 protected:
  explicit Problem(ProblemOptions o) : opts_(std::move(o)) {}
  ProblemOptions opts_;
};

std::unique_ptr<Problem> make_problem(const ProblemOptions& opts);

}  // namespace dfx::app
