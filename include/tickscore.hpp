// tickscore.hpp: header-only C++17 RAII wrapper over tickscore.h.
//
// * Model and Scorer are move-only owners of ts_model / ts_scorer; the
//   destructor frees them. A Scorer keeps its Model's data alive.
// * Errors: construction and queries throw tickscore::Error (status code +
//   the library's message). Scoring offers both `score` (throws) and
//   `try_score` (noexcept, returns the status) for hot loops that keep
//   exceptions off the trading path. Outputs are written only on success.
// * Threads: a Model may be shared by threads; each thread makes its own
//   Scorer.
#ifndef TICKSCORE_HPP
#define TICKSCORE_HPP

#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tickscore.h"

namespace tickscore {

/// A failed call: the ts_status code and the library's message.
class Error : public std::runtime_error {
 public:
  Error(ts_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  /// The ts_status code.
  ts_status status() const noexcept { return status_; }

 private:
  ts_status status_;
};

/// The calling thread's last error message.
inline std::string last_error_message() {
  std::size_t len = ts_last_error_message(nullptr, 0);
  std::string text(len + 1, '\0');
  ts_last_error_message(&text[0], text.size());
  text.resize(len);
  return text;
}

/// Throw Error unless `status` is TS_STATUS_OK.
inline void check(ts_status status) {
  if (status != TS_STATUS_OK) {
    throw Error(status, std::string(ts_status_str(status)) + ": " + last_error_message());
  }
}

/// Options for Model::open (the defaults of ts_model_options_default).
struct Options {
  ts_model_options raw;
  Options() { check(ts_model_options_default(&raw)); }
  /// Pass NaN features to the model (for tree models) instead of rejecting the row.
  Options& allow_nan(bool allow = true) {
    raw.nan_policy = allow ? 1u : 0u;
    return *this;
  }
  /// Refuse a model whose input width differs.
  Options& expect_width(std::size_t width) {
    raw.expect_width = width;
    return *this;
  }
};

class Scorer;

/// A loaded, immutable model. Move-only; thread-safe to share by reference.
class Model {
 public:
  /// Load the ONNX model at `path` (throws Error).
  static Model open(const std::string& path, const Options& options = Options()) {
    ts_model* raw = nullptr;
    check(ts_model_open(path.c_str(), &options.raw, &raw));
    return Model(raw);
  }

  Model(Model&& other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
  Model& operator=(Model&& other) noexcept {
    if (this != &other) {
      ts_model_free(raw_);
      raw_ = std::exchange(other.raw_, nullptr);
    }
    return *this;
  }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  ~Model() { ts_model_free(raw_); }

  /// Features per row.
  std::size_t input_width() const {
    std::size_t w = 0;
    check(ts_model_input_width(raw_, &w));
    return w;
  }
  /// Scores per row.
  std::size_t score_width() const {
    std::size_t w = 0;
    check(ts_model_score_width(raw_, &w));
    return w;
  }
  /// The model file's ONNX model_version field (0 if unset).
  int64_t version() const {
    int64_t v = 0;
    check(ts_model_version(raw_, &v));
    return v;
  }
  /// Whether the allocation-free lowered engine runs this model.
  bool is_lowered() const {
    uint32_t lowered = 0;
    check(ts_model_is_lowered(raw_, &lowered));
    return lowered != 0;
  }
  /// Feature names in model order (empty if the model names none).
  std::vector<std::string> feature_names() const {
    std::vector<std::string> names;
    for (std::size_t i = 0;; ++i) {
      std::size_t len = 0;
      ts_status s = ts_model_feature_name(raw_, i, nullptr, 0, &len);
      if (s == TS_STATUS_INDEX_OUT_OF_RANGE) break;
      if (s != TS_STATUS_BUFFER_TOO_SMALL) check(s);
      std::string name(len + 1, '\0');
      check(ts_model_feature_name(raw_, i, &name[0], name.size(), &len));
      name.resize(len);
      names.push_back(std::move(name));
    }
    return names;
  }
  /// A new scorer for the calling thread.
  Scorer scorer() const;
  /// The C handle (still owned by this Model).
  const ts_model* get() const noexcept { return raw_; }

 private:
  explicit Model(ts_model* raw) : raw_(raw) {}
  ts_model* raw_;
};

/// A per-thread scoring context. Move-only.
class Scorer {
 public:
  Scorer(Scorer&& other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
  Scorer& operator=(Scorer&& other) noexcept {
    if (this != &other) {
      ts_scorer_free(raw_);
      raw_ = std::exchange(other.raw_, nullptr);
    }
    return *this;
  }
  Scorer(const Scorer&) = delete;
  Scorer& operator=(const Scorer&) = delete;
  ~Scorer() { ts_scorer_free(raw_); }

  /// Score one row; no allocation, no lock, no exception. Returns the status.
  ts_status try_score(const float* row, std::size_t row_len, float* out, std::size_t out_len) noexcept {
    return ts_score(raw_, row, row_len, out, out_len);
  }
  /// Score one row (throws Error).
  void score(const float* row, std::size_t row_len, float* out, std::size_t out_len) {
    check(ts_score(raw_, row, row_len, out, out_len));
  }
  /// Score one row of a single-score model and return the score (throws Error).
  float score(const std::vector<float>& row) {
    float out = 0.0f;
    score(row.data(), row.size(), &out, 1);
    return out;
  }
  /// Score rows stored back to back (throws Error).
  void score_batch(const float* rows, std::size_t rows_len, float* out, std::size_t out_len) {
    check(ts_score_batch(raw_, rows, rows_len, out, out_len));
  }
  /// Score one row and report the model version that scored it (a registry
  /// scorer follows publish and rollback); noexcept, returns the status.
  ts_status try_score_versioned(const float* row, std::size_t row_len, float* out, std::size_t out_len,
                                uint64_t* version) noexcept {
    return ts_score_versioned(raw_, row, row_len, out, out_len, version);
  }
  /// The C handle (still owned by this Scorer).
  ts_scorer* get() noexcept { return raw_; }

 private:
  friend class Model;
  friend class Registry;
  explicit Scorer(ts_scorer* raw) : raw_(raw) {}
  ts_scorer* raw_;
};

inline Scorer Model::scorer() const {
  ts_scorer* raw = nullptr;
  check(ts_scorer_new(raw_, &raw));
  return Scorer(raw);
}

/// A result of Engine::wait: the status, and stage times when it succeeded.
struct Result {
  ts_status status;
  ts_stage_times times;
  bool ok() const noexcept { return status == TS_STATUS_OK; }
};

/// Worker threads pinned to cores scoring one model asynchronously.
/// Move-only; thread-safe to share by reference. Destruction completes
/// every accepted request and joins the workers.
class Engine {
 public:
  /// Start workers for `model` (throws Error). `options` as in ts_engine_options.
  static Engine open(const Model& model, const ts_engine_options* options = nullptr) {
    ts_engine* raw = nullptr;
    check(ts_engine_open(model.get(), options, &raw));
    return Engine(raw);
  }
  Engine(Engine&& other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
  Engine& operator=(Engine&& other) noexcept {
    if (this != &other) {
      ts_engine_free(raw_);
      raw_ = std::exchange(other.raw_, nullptr);
    }
    return *this;
  }
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  ~Engine() { ts_engine_free(raw_); }

  /// Queue a row; never blocks. TS_STATUS_BUSY when the queue is full.
  ts_status try_submit(const float* row, std::size_t row_len, uint64_t* ticket, uint64_t deadline_ns = 0) noexcept {
    return ts_engine_submit(raw_, row, row_len, deadline_ns, ticket);
  }
  /// Poll a ticket: TS_STATUS_PENDING until done, then its outcome.
  ts_status try_poll(uint64_t ticket, float* out, std::size_t out_len, ts_stage_times* times = nullptr) noexcept {
    return ts_engine_poll(raw_, ticket, out, out_len, times);
  }
  /// Wait for a ticket (spin, then sleep) and return its outcome.
  Result wait(uint64_t ticket, float* out, std::size_t out_len) noexcept {
    Result r{TS_STATUS_OK, ts_stage_times{}};
    r.status = ts_engine_wait(raw_, ticket, out, out_len, &r.times);
    return r;
  }
  /// Counters and per-stage latency percentiles (throws Error).
  ts_snapshot snapshot() const {
    ts_snapshot s;
    check(ts_engine_snapshot(raw_, &s));
    return s;
  }
  /// The C handle (still owned by this Engine).
  const ts_engine* get() const noexcept { return raw_; }

 private:
  friend class Registry;
  explicit Engine(ts_engine* raw) : raw_(raw) {}
  ts_engine* raw_;
};

/// A model registry: signed, versioned models; publish, rollback, and
/// scorers/engines that follow publications. Move-only; thread-safe to
/// share by reference. Control-plane calls throw Error (the message names
/// the load step that refused).
class Registry {
 public:
  /// Open `root` trusting the public key file or directory `trusted_keys`
  /// ("" for none). `options` as in ts_registry_options (trusted_keys there
  /// is overridden when `trusted_keys` is not empty).
  static Registry open(const std::string& root, const std::string& trusted_keys,
                       const ts_registry_options* options = nullptr) {
    ts_registry_options o;
    if (options != nullptr) {
      o = *options;
    } else {
      check(ts_registry_options_default(&o));
    }
    if (!trusted_keys.empty()) o.trusted_keys = trusted_keys.c_str();
    ts_registry* raw = nullptr;
    check(ts_registry_open(root.c_str(), &o, &raw));
    return Registry(raw);
  }
  Registry(Registry&& other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
  Registry& operator=(Registry&& other) noexcept {
    if (this != &other) {
      ts_registry_free(raw_);
      raw_ = std::exchange(other.raw_, nullptr);
    }
    return *this;
  }
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;
  ~Registry() { ts_registry_free(raw_); }

  /// Serve `model` (its CURRENT or highest version); returns that version.
  uint64_t serve(const std::string& model, const std::string& actor = "c++") const {
    uint64_t v = 0;
    check(ts_registry_serve(raw_, model.c_str(), actor.c_str(), &v));
    return v;
  }
  /// Publish a version (verified unless warm; schema checked unless forced).
  void publish(const std::string& model, uint64_t version, const std::string& actor = "c++",
               bool force_schema_change = false) const {
    check(ts_registry_publish(raw_, model.c_str(), version, actor.c_str(), force_schema_change ? 1 : 0));
  }
  /// Publish without throwing; returns the status.
  ts_status try_publish(const std::string& model, uint64_t version, const std::string& actor = "c++") const noexcept {
    return ts_registry_publish(raw_, model.c_str(), version, actor.c_str(), 0);
  }
  /// Roll back to the previously published version; returns it.
  uint64_t rollback(const std::string& model, const std::string& actor = "c++") const {
    uint64_t v = 0;
    check(ts_registry_rollback(raw_, model.c_str(), actor.c_str(), &v));
    return v;
  }
  /// The version serving now.
  uint64_t current_version(const std::string& model) const {
    uint64_t v = 0;
    check(ts_registry_current_version(raw_, model.c_str(), &v));
    return v;
  }
  /// A per-thread scorer that follows publications (use try_score_versioned).
  Scorer scorer(const std::string& model) const {
    ts_scorer* raw = nullptr;
    check(ts_registry_scorer_new(raw_, model.c_str(), &raw));
    return Scorer(raw);
  }
  /// Workers that follow publications; results carry model_version.
  Engine engine(const std::string& model, const ts_engine_options* options = nullptr) const {
    ts_engine* raw = nullptr;
    check(ts_registry_engine_open(raw_, model.c_str(), options, &raw));
    return Engine(raw);
  }
  /// The C handle (still owned by this Registry).
  const ts_registry* get() const noexcept { return raw_; }

 private:
  explicit Registry(ts_registry* raw) : raw_(raw) {}
  ts_registry* raw_;
};

}  // namespace tickscore

#endif  // TICKSCORE_HPP
