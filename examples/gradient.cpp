// examples/gradient.cpp — the smallest dfx program: a function of a tensor, its gradient by the
// tape, and a Hessian-vector product. Built against the installed library:
//   g++ -std=c++20 gradient.cpp $(pkg-config --cflags --libs dfx) -o gradient
#include <dfx/dfx.h>

#include <cstdio>

int main() {
  using namespace dfx;
  // f(x) = sum(tanh(A x)^2) for a random 3x3 A and x = (0.5, -1, 2).
  Tensor a = uniform({3, 3}, -1.0, 1.0, /*seed=*/42, /*stream=*/0, 0, DType::Float64);
  Var x(from_vector<double>({0.5, -1.0, 2.0}, {3}), /*requires_grad=*/true);
  auto f = [&] { return ad::sum(ad::square(ad::tanh(ad::matmul(Var(a), x)))); };

  Var y = f();
  y.backward();
  std::printf("f(x)      = %.6f\n", y.item());
  std::printf("grad f(x) = [%.6f, %.6f, %.6f]\n", x.grad().data().get({0}),
              x.grad().data().get({1}), x.grad().data().get({2}));

  Tensor v = from_vector<double>({1.0, 0.0, 0.0}, {3});
  Tensor hv = ad::hvp(f, {x}, {v})[0];
  std::printf("H e0      = [%.6f, %.6f, %.6f]\n", hv.get({0}), hv.get({1}), hv.get({2}));
  return 0;
}
