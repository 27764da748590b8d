// Score one row with an installed libtickscore: score_row MODEL.onnx
#include <cstdio>
#include <vector>

#include <tickscore.hpp>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s MODEL.onnx\n", argv[0]);
    return 2;
  }
  try {
    tickscore::Model model = tickscore::Model::open(argv[1]);
    tickscore::Scorer scorer = model.scorer();
    std::vector<float> row(model.input_width(), 0.0f);
    std::printf("libtickscore %s: %zu features, score of an all-zero row: %.6f\n", ts_version(),
                model.input_width(), scorer.score(row));
  } catch (const tickscore::Error& e) {
    std::fprintf(stderr, "error %u: %s\n", static_cast<unsigned>(e.status()), e.what());
    return 1;
  }
  return 0;
}
