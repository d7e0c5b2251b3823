// Out-of-tree consumer: fits y = 3x + 1 with tiller's autograd through the installed package.
#include <tiller/tiller.h>

#include <cmath>
#include <cstdio>

int main() {
  using namespace tiller;
  Generator gen(1);
  Tensor x = Tensor::randn({64, 1}, gen);
  Tensor y = add_scalar(scale(x, 3.f), 1.f);
  Tensor w = Tensor::zeros({1, 1}, TensorOptions{}.grad());
  Tensor b = Tensor::zeros({1}, TensorOptions{}.grad());
  float loss_value = 0;
  for (int step = 0; step < 200; ++step) {
    Tensor loss = mean(square(sub(linear(x, w, b), y)));
    w.zero_grad();
    b.zero_grad();
    loss.backward();
    NoGradGuard no_grad;
    w.copy_(sub(w, scale(w.grad(), 0.1f)));
    b.copy_(sub(b, scale(b.grad(), 0.1f)));
    loss_value = loss.item();
  }
  float w_fit = w.item(), b_fit = b.item();
  std::printf("consumer: w = %.4f, b = %.4f, loss = %.2e\n", w_fit, b_fit, loss_value);
  return (std::fabs(w_fit - 3.f) < 1e-3f && std::fabs(b_fit - 1.f) < 1e-3f) ? 0 : 1;
}
