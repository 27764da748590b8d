// Per-call latency of ts_score through the C ABI, measured exactly as
// examples/inline_latency.rs measures Scorer::score in Rust, so the
// difference is the ABI's cost. Run by scripts/bench-abi.
//
//   bench_abi MODEL.onnx ROWS.csv CALLS
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tickscore.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s MODEL ROWS.csv CALLS\n", argv[0]);
    return 2;
  }
  const std::size_t calls = std::strtoull(argv[3], nullptr, 10);
  std::ifstream in(argv[2]);
  std::string line;
  std::getline(in, line);
  std::vector<float> rows;
  std::size_t n = 0;
  while (std::getline(in, line)) {
    std::stringstream fields(line);
    std::string f;
    while (std::getline(fields, f, ',')) rows.push_back(std::strtof(f.c_str(), nullptr));
    ++n;
  }
  tickscore::Model model = tickscore::Model::open(argv[1]);
  tickscore::Scorer scorer = model.scorer();
  const std::size_t w = model.input_width();
  if (rows.size() != n * w) {
    std::fprintf(stderr, "rows are not %zu wide\n", w);
    return 1;
  }
  float out = 0, sum = 0;
  using clock = std::chrono::steady_clock;
  // Warm-up, then a clock-free block for the mean.
  for (std::size_t i = 0; i < calls / 10; ++i) scorer.try_score(&rows[(i % n) * w], w, &out, 1);
  auto b0 = clock::now();
  for (std::size_t i = 0; i < calls; ++i) {
    if (scorer.try_score(&rows[(i % n) * w], w, &out, 1) != TS_STATUS_OK) return 1;
    sum += out;
  }
  double mean = std::chrono::duration<double, std::nano>(clock::now() - b0).count() / calls;
  std::vector<long> ns(calls);
  for (std::size_t i = 0; i < calls; ++i) {
    auto t0 = clock::now();
    scorer.try_score(&rows[(i % n) * w], w, &out, 1);
    ns[i] = std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - t0).count();
    sum += out;
  }
  std::sort(ns.begin(), ns.end());
  auto q = [&](double p) { return ns[std::min(calls - 1, static_cast<std::size_t>(p * calls))]; };
  std::printf("c_abi mean %.1f ns  p50 %ld ns  p99 %ld ns  p99.9 %ld ns  (checksum %.3f)\n", mean, q(0.5),
              q(0.99), q(0.999), sum);
  return 0;
}
