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
  bool fitted = std::fabs(w_fit - 3.f) < 1e-3f && std::fabs(b_fit - 1.f) < 1e-3f;

  // The README's snippet: a tiny Llama memorises one batch with AdamW.
  Transformer model(ModelConfig::llama(/*vocab*/ 1024, /*layers*/ 4, /*heads*/ 4, /*kv heads*/ 2,
                                       /*width*/ 128, /*mlp*/ 384, /*max_seq_len*/ 256));
  optim::AdamW opt(model.parameters(), {});
  std::vector<int32_t> tokens(2 * 17);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 37) % 1024);
  std::vector<int32_t> inputs, targets;
  for (int row = 0; row < 2; ++row)
    for (int t = 0; t < 16; ++t) {
      inputs.push_back(tokens[row * 17 + t]);
      targets.push_back(tokens[row * 17 + t + 1]);
    }
  Tensor ids = Tensor::from_ints(inputs, {2, 16}), next = Tensor::from_ints(targets, {2, 16});
  float first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    model.zero_grad();
    Tensor loss = model.loss(ids, next);
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item();
  }
  std::printf("consumer: llama loss %.3f -> %.3f\n", first, last);
  return fitted && last < 0.5f * first ? 0 : 1;
}
