// A real C++ client of libtickscore: built with g++ against include/ and
// linked once against libtickscore.so and once against libtickscore.a by
// tests/cpp/run.sh, and run again under valgrind.
//
//   test_abi MODELS_DIR
//
// Checks: version macro, scores equal onnxruntime's recorded outputs,
// batch == single, two threads sharing one model, and every error path
// (status and message), through the C API and the C++ wrapper.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tickscore.hpp"

#ifndef EXPECTED_VERSION
#error "build with -DEXPECTED_VERSION=\"x.y.z\" (the Cargo.toml version)"
#endif

static int passed = 0, failed = 0;

#define CHECK(cond, what)                                                   \
  do {                                                                      \
    if (cond) {                                                             \
      ++passed;                                                             \
    } else {                                                                \
      ++failed;                                                             \
      std::fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, what);   \
    }                                                                       \
  } while (0)

static std::string last_error() { return tickscore::last_error_message(); }

// Rows of numbers after a header line.
static std::vector<std::vector<float>> read_rows(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // header
  std::vector<std::vector<float>> rows;
  while (std::getline(in, line)) {
    std::vector<float> row;
    std::stringstream fields(line);
    std::string field;
    while (std::getline(fields, field, ',')) row.push_back(std::strtof(field.c_str(), nullptr));
    rows.push_back(row);
  }
  return rows;
}

static void test_version() {
  CHECK(std::strcmp(TICKSCORE_VERSION, EXPECTED_VERSION) == 0, "TICKSCORE_VERSION equals Cargo.toml's version");
  CHECK(std::strcmp(ts_version(), TICKSCORE_VERSION) == 0, "ts_version() equals TICKSCORE_VERSION");
}

// Scores of every test row through the raw C API, checked against onnxruntime.
static std::vector<float> test_parity(const std::string& dir, const std::string& name,
                                      const std::vector<std::vector<float>>& rows) {
  ts_model* model = nullptr;
  ts_status s = ts_model_open((dir + "/" + name + "/model.onnx").c_str(), nullptr, &model);
  CHECK(s == TS_STATUS_OK && model != nullptr, ("open " + name + ": " + last_error()).c_str());
  std::size_t in_w = 0, out_w = 0;
  uint32_t lowered = 0;
  CHECK(ts_model_input_width(model, &in_w) == TS_STATUS_OK && in_w == 61, "input width 61");
  CHECK(ts_model_score_width(model, &out_w) == TS_STATUS_OK && out_w == 1, "score width 1");
  CHECK(ts_model_is_lowered(model, &lowered) == TS_STATUS_OK && lowered == 1, "runs on the lowered engine");

  ts_scorer* scorer = nullptr;
  CHECK(ts_scorer_new(model, &scorer) == TS_STATUS_OK, "scorer");
  std::vector<float> single(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    s = ts_score(scorer, rows[i].data(), rows[i].size(), &single[i], 1);
    if (s != TS_STATUS_OK) break;
  }
  CHECK(s == TS_STATUS_OK, ("score every row: " + last_error()).c_str());

  std::vector<std::vector<float>> reference = read_rows(dir + "/" + name + "/reference.csv");
  CHECK(reference.size() == rows.size(), "one reference per row");
  double worst = 0;
  for (std::size_t i = 0; i < rows.size() && i < reference.size(); ++i)
    worst = std::fmax(worst, std::fabs(single[i] - reference[i][0]));
  std::printf("%-16s max |tickscore - onnxruntime| through the C ABI = %.3g\n", name.c_str(), worst);
  CHECK(worst <= 1e-5, "scores equal onnxruntime's within 1e-5");

  std::vector<float> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  std::vector<float> batch(rows.size());
  CHECK(ts_score_batch(scorer, flat.data(), flat.size(), batch.data(), batch.size()) == TS_STATUS_OK, "batch");
  CHECK(batch == single, "batch equals row by row");

  // The scorer outlives the model handle.
  ts_model_free(model);
  float again = 0;
  CHECK(ts_score(scorer, rows[0].data(), rows[0].size(), &again, 1) == TS_STATUS_OK && again == single[0],
        "a scorer keeps working after its model handle is freed");
  ts_scorer_free(scorer);
  return single;
}

static void test_two_threads(const std::string& dir, const std::vector<std::vector<float>>& rows,
                             const std::vector<float>& expected) {
  tickscore::Model model = tickscore::Model::open(dir + "/german_xgboost/model.onnx");
  std::vector<int> mismatches(2, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      tickscore::Scorer scorer = model.scorer();
      for (int round = 0; round < 50; ++round) {
        for (std::size_t i = 0; i < rows.size(); ++i) {
          float p = 0;
          if (scorer.try_score(rows[i].data(), rows[i].size(), &p, 1) != TS_STATUS_OK || p != expected[i])
            ++mismatches[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(mismatches[0] == 0 && mismatches[1] == 0, "two threads sharing a model score exactly as one");
}

static void test_errors(const std::string& dir, const std::vector<std::vector<float>>& rows) {
  const std::string logreg = dir + "/german_logreg/model.onnx";
  ts_model* model = nullptr;
  ts_scorer* scorer = nullptr;
  CHECK(ts_model_open(logreg.c_str(), nullptr, &model) == TS_STATUS_OK, "open");
  CHECK(ts_scorer_new(model, &scorer) == TS_STATUS_OK, "scorer");
  std::vector<float> row = rows[0];
  float out = 42.0f;

  // NULL handles and pointers.
  CHECK(ts_score(nullptr, row.data(), row.size(), &out, 1) == TS_STATUS_NULL_ARGUMENT, "NULL scorer");
  CHECK(last_error().find("scorer is NULL") != std::string::npos, "message names the NULL argument");
  std::size_t w = 0;
  CHECK(ts_model_input_width(nullptr, &w) == TS_STATUS_NULL_ARGUMENT, "NULL model");
  CHECK(ts_score(scorer, nullptr, row.size(), &out, 1) == TS_STATUS_NULL_ARGUMENT, "NULL row");
  CHECK(ts_score(scorer, row.data(), row.size(), nullptr, 1) == TS_STATUS_NULL_ARGUMENT, "NULL out");
  CHECK(ts_model_open(nullptr, nullptr, &model) == TS_STATUS_NULL_ARGUMENT, "NULL path");

  // Wrong widths: status, message, output untouched.
  CHECK(ts_score(scorer, row.data(), 60, &out, 1) == TS_STATUS_WIDTH_MISMATCH, "short row");
  CHECK(last_error().find("takes 61 features, the row has 60") != std::string::npos, "width message");
  float two[2] = {7, 7};
  CHECK(ts_score(scorer, row.data(), row.size(), two, 2) == TS_STATUS_OUTPUT_MISMATCH, "output length");
  CHECK(out == 42.0f && two[0] == 7 && two[1] == 7, "outputs untouched on error");

  // NaN per policy.
  row[7] = std::nanf("");
  CHECK(ts_score(scorer, row.data(), row.size(), &out, 1) == TS_STATUS_NON_FINITE, "NaN rejected by default");
  CHECK(last_error().find("feature 7: NaN") != std::string::npos, "NaN message names the feature");
  CHECK(out == 42.0f, "output untouched on NaN");
  row[7] = INFINITY;
  CHECK(ts_score(scorer, row.data(), row.size(), &out, 1) == TS_STATUS_NON_FINITE, "inf rejected");
  {
    tickscore::Model trees =
        tickscore::Model::open(dir + "/german_xgboost/model.onnx", tickscore::Options().allow_nan());
    tickscore::Scorer ts = trees.scorer();
    std::vector<float> nan_row = rows[0];
    nan_row[7] = std::nanf("");
    float p = -1;
    CHECK(ts.try_score(nan_row.data(), nan_row.size(), &p, 1) == TS_STATUS_OK && p >= 0 && p <= 1,
          "a NaN-passing tree model scores NaN as missing");
  }

  // Misaligned float pointer.
  std::vector<char> bytes((row.size() + 1) * sizeof(float));
  const float* misaligned = reinterpret_cast<const float*>(bytes.data() + 1);
  CHECK(ts_score(scorer, misaligned, row.size(), &out, 1) == TS_STATUS_INVALID_ARGUMENT, "misaligned row");

  // Files.
  ts_model* bad = nullptr;
  CHECK(ts_model_open("/nonexistent/model.onnx", nullptr, &bad) == TS_STATUS_IO && bad == nullptr, "missing file");
  CHECK(last_error().find("cannot read model file") != std::string::npos, "missing-file message");
  const char* corrupt = "/tmp/tickscore_cpp_corrupt.onnx";
  {
    std::ofstream f(corrupt, std::ios::binary);
    f << "definitely not an ONNX protobuf \xff\xfe\x01";
  }
  CHECK(ts_model_open(corrupt, nullptr, &bad) == TS_STATUS_MALFORMED && bad == nullptr, "corrupt file");
  std::remove(corrupt);

  // Options.
  ts_model_options options;
  CHECK(ts_model_options_default(&options) == TS_STATUS_OK && options.nan_policy == 0, "default options");
  options.nan_policy = 7;
  CHECK(ts_model_open(logreg.c_str(), &options, &bad) == TS_STATUS_INVALID_ARGUMENT, "invalid option value");
  ts_model_options_default(&options);
  options.expect_width = 60;
  CHECK(ts_model_open(logreg.c_str(), &options, &bad) == TS_STATUS_INPUT_WIDTH_MISMATCH, "expect_width");

  // Names, messages, buffers.
  std::size_t len = 0;
  char small[4];
  CHECK(ts_model_feature_name(model, 4, small, sizeof small, &len) == TS_STATUS_BUFFER_TOO_SMALL &&
            len == std::strlen("duration_in_month"),
        "too-small name buffer reports the length");
  char name[64];
  CHECK(ts_model_feature_name(model, 4, name, sizeof name, &len) == TS_STATUS_OK &&
            std::strcmp(name, "duration_in_month") == 0,
        "feature name");
  CHECK(ts_model_feature_name(model, 61, name, sizeof name, &len) == TS_STATUS_INDEX_OUT_OF_RANGE, "name index");
  char tiny[8];
  std::size_t full = ts_last_error_message(tiny, sizeof tiny);
  CHECK(full > 7 && std::strlen(tiny) == 7, "last error truncates to the buffer and reports its length");
  CHECK(std::strcmp(ts_status_str(9999), "unknown status") == 0, "unknown status code");
  CHECK(std::strcmp(ts_status_str(TS_STATUS_OK), "ok") == 0, "status text");

  // The C++ wrapper turns statuses into exceptions.
  bool threw = false;
  try {
    tickscore::Model::open("/nonexistent/model.onnx");
  } catch (const tickscore::Error& e) {
    threw = e.status() == TS_STATUS_IO && std::string(e.what()).find("cannot read") != std::string::npos;
  }
  CHECK(threw, "Model::open throws Error(TS_STATUS_IO)");
  tickscore::Model m = tickscore::Model::open(logreg);
  CHECK(m.feature_names().size() == 61 && m.feature_names()[4] == "duration_in_month", "wrapper feature names");
  CHECK(m.version() == 1, "model version (make_models.py sets model_version = 1)");
  int64_t version = -1;
  CHECK(ts_model_version(nullptr, &version) == TS_STATUS_NULL_ARGUMENT && version == -1, "NULL model version");
  tickscore::Scorer sc = m.scorer();
  threw = false;
  try {
    sc.score(std::vector<float>(3, 0.0f));
  } catch (const tickscore::Error& e) {
    threw = e.status() == TS_STATUS_WIDTH_MISMATCH;
  }
  CHECK(threw, "Scorer::score throws Error(TS_STATUS_WIDTH_MISMATCH)");

  ts_model_free(nullptr);  // no-ops
  ts_scorer_free(nullptr);
  ts_scorer_free(scorer);
  ts_model_free(model);
}

// The asynchronous path: submit / poll / wait on pinned workers.
static void test_engine(const std::string& dir, const std::vector<std::vector<float>>& rows,
                        const std::vector<float>& expected) {
  tickscore::Model model = tickscore::Model::open(dir + "/german_xgboost/model.onnx");
  ts_engine_options options;
  CHECK(ts_engine_options_default(&options) == TS_STATUS_OK && options.workers == 1, "engine defaults");
  options.workers = 2;
  options.queue_depth = 64;
  tickscore::Engine engine = tickscore::Engine::open(model, &options);

  // Every row through the engine, up to 32 in flight: exactly the inline scores.
  std::vector<std::pair<uint64_t, std::size_t>> in_flight;
  int wrong = 0, busy = 0;
  float p = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    uint64_t ticket = 0;
    ts_status s;
    while ((s = engine.try_submit(rows[i].data(), rows[i].size(), &ticket)) == TS_STATUS_BUSY) ++busy;
    CHECK(s == TS_STATUS_OK, "submit");
    in_flight.push_back({ticket, i});
    if (in_flight.size() == 32 || i + 1 == rows.size()) {
      for (auto& [t, row] : in_flight) {
        tickscore::Result r = engine.wait(t, &p, 1);
        if (!r.ok() || p != expected[row] || r.times.end_to_end_ns == 0) ++wrong;
      }
      in_flight.clear();
    }
  }
  CHECK(wrong == 0, "engine scores equal the inline scores, with stage times");

  // Two submitting threads at once.
  std::vector<int> bad(2, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      float out = 0;
      for (int round = 0; round < 20; ++round) {
        for (std::size_t i = 0; i < rows.size(); ++i) {
          uint64_t ticket = 0;
          ts_status s;
          while ((s = engine.try_submit(rows[i].data(), rows[i].size(), &ticket)) == TS_STATUS_BUSY) {
          }
          if (s != TS_STATUS_OK || !engine.wait(ticket, &out, 1).ok() || out != expected[i]) ++bad[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(bad[0] == 0 && bad[1] == 0, "two threads submitting concurrently");

  // Poll until done; then the ticket is spent.
  uint64_t ticket = 0;
  CHECK(engine.try_submit(rows[5].data(), rows[5].size(), &ticket) == TS_STATUS_OK, "submit to poll");
  ts_status s;
  while ((s = engine.try_poll(ticket, &p, 1)) == TS_STATUS_PENDING) {
  }
  CHECK(s == TS_STATUS_OK && p == expected[5], "poll reaches the result");
  CHECK(engine.try_poll(ticket, &p, 1) == TS_STATUS_UNKNOWN_TICKET, "a taken ticket is refused");
  CHECK(engine.wait(ticket ^ (1ull << 40), &p, 1).status == TS_STATUS_UNKNOWN_TICKET, "a forged ticket is refused");

  // Bad rows: refused at submit (width) or failed at the worker (NaN).
  CHECK(engine.try_submit(rows[0].data(), 60, &ticket) == TS_STATUS_WIDTH_MISMATCH, "submit checks the width");
  std::vector<float> nan_row = rows[0];
  nan_row[3] = std::nanf("");
  CHECK(engine.try_submit(nan_row.data(), nan_row.size(), &ticket) == TS_STATUS_OK, "NaN row accepted");
  p = 42;
  CHECK(engine.wait(ticket, &p, 1).status == TS_STATUS_NON_FINITE && p == 42, "NaN fails at the worker");
  CHECK(ts_engine_submit(nullptr, rows[0].data(), 61, 0, &ticket) == TS_STATUS_NULL_ARGUMENT, "NULL engine");
  float two[2];
  CHECK(engine.try_submit(rows[0].data(), 61, &ticket) == TS_STATUS_OK &&
            engine.wait(ticket, two, 2).status == TS_STATUS_OUTPUT_MISMATCH,
        "output width checked");
  CHECK(engine.wait(ticket, &p, 1).ok(), "a ticket refused for its buffer can still be taken");

  ts_snapshot snap = engine.snapshot();
  CHECK(snap.accepted == snap.completed && snap.completed == 300 + 2 * 20 * 300 + 3, "snapshot counters");
  CHECK(snap.errors == 1 && snap.scored == snap.completed - 1, "one failed request counted");
  CHECK(snap.end_to_end.count == snap.completed && snap.end_to_end.p50_ns > 0 &&
            snap.end_to_end.p50_ns <= snap.end_to_end.p999_ns,
        "per-stage percentiles");
  std::printf("engine: %llu requests, end to end p50 %llu ns p99 %llu ns p99.9 %llu ns\n",
              static_cast<unsigned long long>(snap.completed), static_cast<unsigned long long>(snap.end_to_end.p50_ns),
              static_cast<unsigned long long>(snap.end_to_end.p99_ns),
              static_cast<unsigned long long>(snap.end_to_end.p999_ns));

  // Options are checked; freeing with requests in flight completes them.
  ts_engine_options_default(&options);
  options.idle = 9;
  ts_engine* e2 = nullptr;
  CHECK(ts_engine_open(model.get(), &options, &e2) == TS_STATUS_INVALID_ARGUMENT, "invalid idle option");
  ts_engine_options_default(&options);
  options.workers = 0;
  CHECK(ts_engine_open(model.get(), &options, &e2) == TS_STATUS_ENGINE_START, "zero workers refused");
  CHECK(ts_engine_open(model.get(), nullptr, &e2) == TS_STATUS_OK, "default engine");
  for (int i = 0; i < 10; ++i) ts_engine_submit(e2, rows[i].data(), 61, 0, &ticket);
  ts_engine_free(e2);
  ts_engine_free(nullptr);
}

// The registry through the ABI: serve, publish, rollback, tamper refusal,
// and a hot swap under load (two inline threads + the ring, 1,000 swaps),
// every score equal to the score of the version that reports it. Runs on a
// private copy of models/registry (publish writes CURRENT and the audit log).
static void test_registry(const std::string& dir, const std::vector<std::vector<float>>& rows) {
  namespace fs = std::filesystem;
  char tmpl[] = "/tmp/tickscore-cpp-registry-XXXXXX";
  const char* made = mkdtemp(tmpl);
  CHECK(made != nullptr, "temp dir");
  if (made == nullptr) return;
  const fs::path root = made;
  fs::copy(dir + "/registry/german_credit", root / "german_credit", fs::copy_options::recursive);
  const std::string key = dir + "/keys/dev.pub";

  // Expected scores per version, from the plain models (bit for bit).
  std::vector<float> v1(rows.size()), v2(rows.size());
  {
    tickscore::Model m1 = tickscore::Model::open(dir + "/german_logreg/model.onnx");
    tickscore::Model m2 = tickscore::Model::open(dir + "/german_mlp/model.onnx");
    tickscore::Scorer s1 = m1.scorer(), s2 = m2.scorer();
    for (std::size_t i = 0; i < rows.size(); ++i) {
      v1[i] = s1.score(rows[i]);
      v2[i] = s2.score(rows[i]);
    }
  }

  // Errors: no trusted key, unknown version, not served, bad flag.
  {
    tickscore::Registry untrusting = tickscore::Registry::open(root.string(), "");
    uint64_t v = 0;
    CHECK(ts_registry_serve(untrusting.get(), "german_credit", "t", &v) == TS_STATUS_UNTRUSTED_KEY,
          "signed by a key nobody trusts");
    CHECK(last_error().find("refused at step signature") != std::string::npos, "message names the step");
    CHECK(ts_registry_current_version(untrusting.get(), "german_credit", &v) == TS_STATUS_NOT_SERVING,
          "not served");
    CHECK(ts_registry_publish(untrusting.get(), "german_credit", 1, "t", 7) == TS_STATUS_INVALID_ARGUMENT,
          "force flag must be 0 or 1");
    CHECK(ts_registry_serve(untrusting.get(), "no_such_model", "t", &v) == TS_STATUS_UNKNOWN_MODEL,
          "unknown model");
    CHECK(ts_registry_serve(nullptr, "x", "t", &v) == TS_STATUS_NULL_ARGUMENT, "NULL registry");
  }
  tickscore::Registry reg = tickscore::Registry::open(root.string(), key);
  CHECK(reg.serve("german_credit") == 2, "serve picks the highest version");
  CHECK(ts_registry_publish(reg.get(), "german_credit", 9, "t", 0) == TS_STATUS_UNKNOWN_VERSION, "unknown version");
  reg.publish("german_credit", 1);
  CHECK(reg.current_version("german_credit") == 1, "v1 serving");

  // Hot swap under load.
  const int swaps = 1000;
  // Under valgrind threads take turns on one lock; producers that never
  // sleep would starve the swapper. They pause briefly between calls there.
  const bool gentle = std::getenv("TICKSCORE_UNDER_VALGRIND") != nullptr;
  auto pause = [gentle] {
    if (gentle) std::this_thread::sleep_for(std::chrono::microseconds(20));
  };
  std::atomic<bool> stop{false};
  std::atomic<long> wrong{0}, failed_calls{0}, on_v1{0}, on_v2{0};
  auto check_score = [&](std::size_t i, uint64_t version, float p) {
    const float want = version == 1 ? v1[i] : version == 2 ? v2[i] : -1.0f;
    if (p != want) ++wrong;
    (version == 1 ? on_v1 : on_v2)++;
  };
  ts_engine_options eo;
  ts_engine_options_default(&eo);
  eo.cores_len = 0;
  eo.cores = nullptr;
  tickscore::Engine engine = reg.engine("german_credit", &eo);
  std::vector<std::thread> producers;
  for (int t = 0; t < 2; ++t) {
    producers.emplace_back([&] {
      tickscore::Scorer s = reg.scorer("german_credit");
      for (std::size_t n = 0; !stop.load(); ++n) {
        pause();
        const std::size_t i = n % rows.size();
        float p = 0;
        uint64_t version = 0;
        if (s.try_score_versioned(rows[i].data(), rows[i].size(), &p, 1, &version) != TS_STATUS_OK) {
          ++failed_calls;
          continue;
        }
        check_score(i, version, p);
      }
    });
  }
  producers.emplace_back([&] {
    for (std::size_t n = 0; !stop.load(); ++n) {
      pause();
      const std::size_t i = n % rows.size();
      uint64_t ticket = 0;
      if (engine.try_submit(rows[i].data(), rows[i].size(), &ticket) != TS_STATUS_OK) continue;
      float p = 0;
      tickscore::Result r = engine.wait(ticket, &p, 1);
      if (!r.ok()) {
        ++failed_calls;
        continue;
      }
      check_score(i, r.times.model_version, p);
    }
  });
  int swap_failures = 0;
  for (int k = 0; k < swaps; ++k) {
    if (reg.try_publish("german_credit", 1 + k % 2, "swapper") != TS_STATUS_OK) ++swap_failures;
    std::this_thread::yield();
  }
  stop = true;
  for (auto& t : producers) t.join();
  std::printf("registry hot swap: %d swaps, %ld scores on v1, %ld on v2, %ld wrong, %ld failed\n", swaps,
              on_v1.load(), on_v2.load(), wrong.load(), failed_calls.load());
  CHECK(swap_failures == 0, "every swap succeeded");
  CHECK(wrong == 0 && failed_calls == 0, "every score equals its reported version's score");
  CHECK(on_v1 > 0 && on_v2 > 0, "both versions scored");
  CHECK(reg.current_version("german_credit") == 2, "the last swap published v2");

  // Tamper with a copy of v2 placed as v3; v2 keeps serving through each refusal.
  const fs::path v3 = root / "german_credit" / "3";
  fs::copy(root / "german_credit" / "2", v3, fs::copy_options::recursive);
  CHECK(ts_registry_publish(reg.get(), "german_credit", 3, "mallory", 0) == TS_STATUS_MANIFEST,
        "a copied manifest names version 2, not 3");
  auto flip_model_byte = [&] {
    std::fstream f(v3 / "model.onnx", std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(100);
    char c = 0;
    f.get(c);
    f.seekp(100);
    f.put(static_cast<char>(c ^ 1));
  };
  {
    std::ifstream in(v3 / "manifest.toml");
    std::stringstream text;
    text << in.rdbuf();
    std::string m = text.str();
    const std::size_t at = m.find("version = 2\n");
    CHECK(at != std::string::npos, "manifest has its version line");
    if (at != std::string::npos) m.replace(at, 12, "version = 3\n");
    std::ofstream(v3 / "manifest.toml") << m;
  }
  flip_model_byte();
  CHECK(ts_registry_publish(reg.get(), "german_credit", 3, "mallory", 0) == TS_STATUS_DIGEST_MISMATCH,
        "one flipped model byte");
  flip_model_byte();  // restored: now only the edited manifest is wrong
  CHECK(ts_registry_publish(reg.get(), "german_credit", 3, "mallory", 0) == TS_STATUS_BAD_SIGNATURE,
        "an edited signed manifest");
  CHECK(reg.current_version("german_credit") == 2, "v2 still serving after a refusal");
  CHECK(reg.rollback("german_credit") == 1, "rollback to v1");
  tickscore::Scorer s = reg.scorer("german_credit");
  float p = 0;
  uint64_t version = 0;
  CHECK(s.try_score_versioned(rows[0].data(), 61, &p, 1, &version) == TS_STATUS_OK && version == 1 && p == v1[0],
        "after rollback: v1's score, bit for bit");
  std::error_code ec;
  fs::remove_all(root, ec);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s MODELS_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  std::vector<std::vector<float>> rows = read_rows(dir + "/data/german_test.csv");
  CHECK(rows.size() == 300 && rows[0].size() == 61, "test split read");
  test_version();
  test_parity(dir, "german_logreg", rows);
  std::vector<float> xgb = test_parity(dir, "german_xgboost", rows);
  test_two_threads(dir, rows, xgb);
  test_engine(dir, rows, xgb);
  test_errors(dir, rows);
  test_registry(dir, rows);
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
