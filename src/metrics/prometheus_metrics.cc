#include "metrics/prometheus_metrics.h"

#include <CivetServer.h>
#include <dlfcn.h>
#include <netdb.h>
#include <poll.h>
#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gateway.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "common/log.h"
#include "common/stop_signal.h"

// Debian's civetweb (the metrics HTTP server) creates its threads with
// 100 KiB stacks. glibc carves every loaded library's static TLS out of each
// new thread's stack, and LibTorch's libraries need more than that, so
// pthread_create fails (EINVAL, before any syscall) and the server reports
// "null context when constructing CivetServer". Defined here, in the
// executable, this wrapper is what civetweb's call resolves to: it raises
// stack requests below 1 MiB to 1 MiB and leaves larger ones alone.
extern "C" int pthread_attr_setstacksize(pthread_attr_t* attr, size_t size) {
  using Real = int (*)(pthread_attr_t*, size_t);
  static const Real real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "pthread_attr_setstacksize"));
  constexpr size_t kMinimumStack = size_t{1} << 20;
  return real(attr, size < kMinimumStack ? kMinimumStack : size);
}

namespace stylefleet {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;
using prometheus::Labels;

class NullMetrics : public TrainingMetrics {
 public:
  void StyleStarted(const std::string&, const std::vector<std::string>&, int, bool,
                    const std::vector<std::pair<std::string, std::string>>&) override {}
  void OnStep(const StepEvent&) override {}
  void ImagesSkipped(int64_t) override {}
  void CheckpointWritten(const std::string&, double) override {}
  void BadStep(const std::string&) override {}
  void CollectiveStalls(int64_t) override {}
  void StyleFinished(const std::string&) override {}
};

// "host:port" -> (host, port); throws on a malformed address.
std::pair<std::string, int> SplitHostPort(const std::string& address, const std::string& key) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 >= address.size()) {
    throw ConfigError({key + ": expected host:port, got '" + address + "'"});
  }
  const std::string port_text = address.substr(colon + 1);
  if (port_text.find_first_not_of("0123456789") != std::string::npos || port_text.size() > 5) {
    throw ConfigError({key + ": port must be a number, got '" + port_text + "'"});
  }
  const int port = std::stoi(port_text);
  if (port > 65535) throw ConfigError({key + ": port " + port_text + " is above 65535"});
  return {address.substr(0, colon), port};
}

// Threads serving /metrics, and how long one request may take to arrive in
// full (or its answer to be sent) before civetweb drops the connection.
constexpr int kServerThreads = 32;
constexpr int kRequestTimeoutMs = 2000;

// civetweb's init_thread callback: its threads run at the lowest CPU priority
// (nice 19; Linux applies it to the calling thread only), so that however
// many scrapes run at once, they take only the CPU time training leaves, and
// a flood of requests slows scrapes rather than training.
void* LowerServerThreadPriority(const mg_context*, int) {
  setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19);
  return nullptr;
}

// The HTTP side of the exporter: serves the registry's text format at exactly
// /metrics as sent (a query string is ignored; the server leaves %XX encoded)
// and 404 everywhere else. Its own civetweb handler rather than
// prometheus-cpp's Exposer, because civetweb matches handler paths as
// case-insensitive prefixes, so the Exposer answered /METRICS, /metrics.php
// and /metrics/foo too. Counts the scrapes that start, so that
// Finish() knows whether anyone scrapes and when the final values were read.
class MetricsHandler : public CivetHandler {
 public:
  explicit MetricsHandler(std::shared_ptr<prometheus::Registry> registry)
      : registry_(std::move(registry)) {}

  bool handleGet(CivetServer*, mg_connection* conn) override { return Answer(conn, true); }
  bool handleHead(CivetServer*, mg_connection* conn) override { return Answer(conn, false); }

  int64_t started() const { return started_.load(); }

 private:
  bool Answer(mg_connection* conn, bool with_body) {
    const mg_request_info* request = mg_get_request_info(conn);
    const char* path = request != nullptr ? request->local_uri_raw : nullptr;
    if (path == nullptr || std::strcmp(path, "/metrics") != 0) {
      Send(conn, "404 Not Found", "text/plain; charset=utf-8",
           "not found: metrics are served at /metrics\n", with_body);
      return true;
    }
    ++started_;
    Send(conn, "200 OK", "text/plain; version=0.0.4; charset=utf-8",
         prometheus::TextSerializer().Serialize(registry_->Collect()), with_body);
    return true;
  }

  static void Send(mg_connection* conn, const char* status, const char* type,
                   const std::string& body, bool with_body) {
    const std::string head = std::string("HTTP/1.1 ") + status + "\r\nContent-Type: " + type +
                             "\r\nContent-Length: " + std::to_string(body.size()) +
                             "\r\nConnection: close\r\n\r\n";
    mg_write(conn, head.data(), head.size());
    if (with_body) mg_write(conn, body.data(), body.size());
  }

  std::shared_ptr<prometheus::Registry> registry_;
  std::atomic<int64_t> started_{0};
};

// Why nothing answers at host:port: prometheus-cpp's push reports a failed
// connection only as a negative libcurl code, so connect once ourselves
// (1 s at most) and name what the system says (e.g. "Connection refused").
std::string ProbeConnection(const std::string& host, const std::string& port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return std::string("cannot resolve host: ") + gai_strerror(rc);
  }
  std::string reason = "no address to connect to";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    int error = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    if (error == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      socklen_t length = sizeof(error);
      const bool answered =
          poll(&p, 1, 1000) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0;
      if (!answered) error = ETIMEDOUT;
    }
    close(fd);
    if (error == 0) {
      freeaddrinfo(found);
      return "the server accepts connections, but the request failed";
    }
    reason = std::strerror(error);
  }
  freeaddrinfo(found);
  return reason;
}

class PrometheusMetrics : public MetricsExporter {
 public:
  PrometheusMetrics(const PrometheusOptions& options, const MetricsIdentity& identity)
      : options_(options),
        identity_(identity),
        registry_(std::make_shared<prometheus::Registry>()) {
    RegisterFamilies();
    if (!options_.listen.empty()) StartServer();
    if (!options_.pushgateway.empty()) {
      const auto [host, port] = SplitHostPort(options_.pushgateway, "monitoring.pushgateway");
      // Grouping key: job = the stylefleet job (the same value as the series' own job
      // label, which the Pushgateway would otherwise overwrite), instance = host and rank.
      gateway_ = std::make_unique<prometheus::Gateway>(
          host, std::to_string(port), identity.job,
          Labels{{"instance", identity.host + "-rank" + std::to_string(identity.rank)}});
      gateway_->RegisterCollectable(registry_);
      pusher_ = std::thread([this] { PushLoop(); });
    }
  }

  // Every series family, each with the job's label.
  template <typename Builder>
  auto& Register(Builder builder, const char* name, const char* help) {
    return builder.Name(name).Help(help).Labels({{"job", identity_.job}}).Register(*registry_);
  }

  void RegisterFamilies() {
    style_loss_ =
        &Register(prometheus::BuildGauge(), "stylefleet_style_loss",
                  "Unweighted style loss of one VGG layer (the seed's definition), group average");
    loss_ = &Register(
        prometheus::BuildGauge(), "stylefleet_loss",
        "Unweighted loss term (content, style, tv) and the weighted total, group average");
    weighted_loss_ = &Register(prometheus::BuildGauge(), "stylefleet_weighted_loss",
                               "Loss term times its weight, as it enters the total");
    steps_ = &Register(prometheus::BuildCounter(), "stylefleet_steps_total",
                       "Optimisation steps completed by this style's group");
    images_ = &Register(prometheus::BuildCounter(), "stylefleet_images_total",
                        "Training images consumed by this style's group");
    epoch_ = &Register(prometheus::BuildGauge(), "stylefleet_epoch", "Fractional epoch position");
    progress_ = &Register(prometheus::BuildGauge(), "stylefleet_progress_ratio",
                          "Steps done over steps planned, 0 to 1");
    eta_ = &Register(prometheus::BuildGauge(), "stylefleet_eta_seconds",
                     "Estimated seconds until this style finishes");
    learning_rate_ =
        &Register(prometheus::BuildGauge(), "stylefleet_learning_rate", "Adam learning rate");
    step_seconds_ = &Register(prometheus::BuildHistogram(), "stylefleet_step_duration_seconds",
                              "Wall time of one training step on this rank");
    data_wait_ = &Register(prometheus::BuildHistogram(), "stylefleet_data_wait_seconds",
                           "Time a step waited for the data loader");
    allreduce_ = &Register(prometheus::BuildHistogram(), "stylefleet_allreduce_duration_seconds",
                           "Time a step spent averaging gradients across its group");
    skipped_ = &Register(prometheus::BuildCounter(), "stylefleet_skipped_images_total",
                         "Content images skipped because they did not decode")
                    .Add({{"rank", std::to_string(identity_.rank)}});
    stalls_ =
        &Register(prometheus::BuildCounter(), "stylefleet_collective_stalls_total",
                  "Collectives that waited longer than distributed.stall_warn_seconds for peers")
             .Add({{"rank", std::to_string(identity_.rank)}});
    checkpoints_ = &Register(prometheus::BuildCounter(), "stylefleet_checkpoints_total",
                             "Checkpoints written");
    bad_steps_ = &Register(prometheus::BuildCounter(), "stylefleet_bad_steps_total",
                           "Steps skipped because the loss or a gradient was NaN or infinite");
    last_checkpoint_ =
        &Register(prometheus::BuildGauge(), "stylefleet_last_checkpoint_timestamp_seconds",
                  "Unix time of the newest checkpoint");
    info_ =
        &Register(prometheus::BuildGauge(), "stylefleet_info",
                  "1 for the style this process trains, with its rank, local rank, host and group");
    finished_ = &Register(prometheus::BuildGauge(), "stylefleet_finished",
                          "1 once this process ended training on purpose (alerts then ignore "
                          "its target going away)")
                     .Add({{"rank", std::to_string(identity_.rank)}});
  }

  ~PrometheusMetrics() override { StopPusher(); }

  void StyleStarted(const std::string& style, const std::vector<std::string>& layers, int group,
                    bool reports_losses,
                    const std::vector<std::pair<std::string, std::string>>& labels) override {
    if (info_series_ != nullptr) info_->Remove(info_series_);
    info_series_ = &info_->Add({{"rank", std::to_string(identity_.rank)},
                                {"local_rank", std::to_string(identity_.local_rank)},
                                {"host", identity_.host},
                                {"group", std::to_string(group)},
                                {"style", style}});
    info_series_->Set(1);
    if (!reports_losses) return;
    Series& s = series_[style];
    Labels l{{"style", style}};
    for (const auto& [name, value] : labels) l.emplace(name, value);
    const auto with = [&](const char* name, const std::string& value) {
      Labels more = l;
      more[name] = value;
      return more;
    };
    s.layers.clear();
    for (const auto& layer : layers) s.layers.push_back(&style_loss_->Add(with("layer", layer)));
    for (const char* term : {"content", "style", "tv", "total"}) {
      s.loss[term] = &loss_->Add(with("term", term));
    }
    for (const char* term : {"content", "style", "tv"}) {
      s.weighted[term] = &weighted_loss_->Add(with("term", term));
    }
    s.steps = &steps_->Add(l);
    s.images = &images_->Add(l);
    s.epoch = &epoch_->Add(l);
    s.progress = &progress_->Add(l);
    s.eta = &eta_->Add(l);
    s.learning_rate = &learning_rate_->Add(l);
    s.step_seconds = &step_seconds_->Add(
        l,
        Histogram::BucketBoundaries{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120});
    s.data_wait = &data_wait_->Add(
        l, Histogram::BucketBoundaries{0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5});
    s.allreduce = &allreduce_->Add(
        l, Histogram::BucketBoundaries{0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5});
    s.checkpoints = &checkpoints_->Add(l);
    s.last_checkpoint = &last_checkpoint_->Add(l);
  }

  // Each style that had images in the step sets its series: a conditional
  // network's styles their own terms and weights, on the steps that held them.
  void OnStep(const StepEvent& e) override {
    for (const StyleStepEvent& style : e.styles) {
      auto it = series_.find(style.style);
      if (it == series_.end() || style.step.images == 0) continue;
      Series& s = it->second;
      const LossValues& v = style.step;
      for (size_t i = 0; i < s.layers.size() && i < v.style_layers.size(); ++i) {
        s.layers[i]->Set(v.style_layers[i]);
      }
      s.loss["content"]->Set(v.content);
      s.loss["style"]->Set(v.style);
      s.loss["tv"]->Set(v.tv);
      s.loss["total"]->Set(v.total);
      s.weighted["content"]->Set(v.content * style.content_weight);
      s.weighted["style"]->Set(v.style * style.style_weight);
      s.weighted["tv"]->Set(v.tv * style.tv_weight);
      s.steps->Increment();
      s.images->Increment(static_cast<double>(v.images));
      s.epoch->Set(e.epoch_position);
      s.progress->Set(e.total_steps > 0 ? double(e.step) / double(e.total_steps) : 0.0);
      s.eta->Set(e.eta_seconds);
      s.learning_rate->Set(style.learning_rate);
      s.step_seconds->Observe(e.step_seconds);
      s.data_wait->Observe(e.data_wait_seconds);
      s.allreduce->Observe(e.allreduce_seconds);
    }
  }

  void ImagesSkipped(int64_t count) override {
    if (count > 0) skipped_->Increment(static_cast<double>(count));
  }

  void CheckpointWritten(const std::string& style, double unix_seconds) override {
    auto it = series_.find(style);
    if (it == series_.end()) return;
    it->second.checkpoints->Increment();
    it->second.last_checkpoint->Set(unix_seconds);
  }

  void BadStep(const std::string& style) override {
    bad_steps_->Add({{"style", style}, {"rank", std::to_string(identity_.rank)}}).Increment();
  }

  void CollectiveStalls(int64_t count) override {
    if (count > 0) stalls_->Increment(static_cast<double>(count));
  }

  void StyleFinished(const std::string& style) override {
    auto it = series_.find(style);
    if (it != series_.end()) it->second.eta->Set(0);
  }

  void Finish() override {
    finished_->Set(1);
    StopPusher();
    if (gateway_) Push();
    if (server_ && options_.linger_seconds > 0) Linger();
  }

  std::string endpoint() const override { return endpoint_; }

  std::string Text() const override {
    return prometheus::TextSerializer().Serialize(registry_->Collect());
  }

 private:
  struct Series {
    std::vector<Gauge*> layers;
    std::map<std::string, Gauge*> loss, weighted;
    Counter *steps = nullptr, *images = nullptr, *checkpoints = nullptr;
    Gauge *epoch = nullptr, *progress = nullptr, *eta = nullptr, *learning_rate = nullptr,
          *last_checkpoint = nullptr;
    Histogram *step_seconds = nullptr, *data_wait = nullptr, *allreduce = nullptr;
  };

  void Push() {
    const int status = gateway_->Push();
    if (status >= 200 && status < 300) return;
    // prometheus-cpp returns the HTTP status, or minus libcurl's code when no
    // HTTP exchange happened (-7: could not connect).
    const auto [host, port] = SplitHostPort(options_.pushgateway, "monitoring.pushgateway");
    const std::string what = status > 0 ? "the Pushgateway answered HTTP " + std::to_string(status)
                                        : ProbeConnection(host, std::to_string(port)) +
                                              " (libcurl error " + std::to_string(-status) + ")";
    SF_LOG(kWarning) << "pushing metrics to " << options_.pushgateway
                     << " (monitoring.pushgateway) failed: " << what << "; training goes on";
  }

  // Serves /metrics on monitoring.listen; a taken port falls back to a free
  // one unless listen_strict, since metrics must not stop training.
  void StartServer() {
    auto [host, port] = SplitHostPort(options_.listen, "monitoring.listen");
    if (port != 0) port += identity_.local_rank;
    const std::string address = host + ":" + std::to_string(port);
    handler_ = std::make_unique<MetricsHandler>(registry_);
    std::string failure = TryServe(address);
    if (!failure.empty() && port != 0 && !options_.listen_strict) {
      const std::string second = TryServe(host + ":0");
      if (second.empty()) {
        SF_LOG(kWarning) << "monitoring.listen: cannot serve metrics on " << address << " ("
                         << failure << "; another job on this host?); serving on " << host << ":"
                         << server_->getListeningPorts().front()
                         << " instead (set monitoring.listen_strict: true to fail instead)";
      }
      failure = second.empty() ? "" : failure + "; no free port either: " + second;
    }
    if (!failure.empty()) {
      throw Error("monitoring.listen: cannot serve metrics on " + address + " (" + failure +
                  "); choose another port or set monitoring.listen: off" +
                  (options_.listen_strict ? " (monitoring.listen_strict is true)" : ""));
    }
    const auto ports = server_->getListeningPorts();
    endpoint_ = (host == "0.0.0.0" || host.empty() ? identity_.host : host) + ":" +
                std::to_string(ports.empty() ? port : ports.front());
    SF_LOG(kInfo) << "metrics on http://" << endpoint_ << "/metrics";
  }

  // Starts the server on `address`; the error text when it cannot.
  std::string TryServe(const std::string& address) {
    try {
      // civetweb gives each connection a thread of its own until it is closed,
      // so a client that connects and sends nothing (or its request a byte at a
      // time) holds a thread until the request timeout; with two threads, two
      // such clients held off every scrape for 10 s. Hence enough threads that a
      // few slow clients leave most free (an idle one sleeps in poll: no CPU,
      // about 100 KiB of TLS each; busy ones yield to training, see
      // LowerServerThreadPriority), and a timeout that bounds a whole request,
      // far above what a scraper needs to send a few hundred bytes. No
      // keep-alive: each response closes its connection. Paths stay as sent
      // (decode_url no), so that /metrics%00 or /%6detrics is not /metrics.
      CivetCallbacks callbacks{};
      callbacks.init_thread = LowerServerThreadPriority;
      server_ = std::make_unique<CivetServer>(
          std::vector<std::string>{"listening_ports", address, "num_threads",
                                   std::to_string(kServerThreads), "request_timeout_ms",
                                   std::to_string(kRequestTimeoutMs), "enable_keep_alive", "no",
                                   "decode_url", "no"},
          &callbacks);
      // "/" as a civetweb pattern matches every path; the handler decides.
      server_->addHandler("/", handler_.get());
      return "";
    } catch (const std::exception& e) {
      server_.reset();
      return e.what();
    }
  }

  // Lingers only while it is useful: when something scraped during the run,
  // until one scrape has started after the final values were set.
  void Linger() {
    const int64_t seen = handler_->started();
    if (seen == 0) {
      SF_LOG(kInfo) << "training done; no scrape arrived during the run, so not lingering";
      return;
    }
    SF_LOG(kInfo) << "training done; serving metrics until they are scraped once more (at most "
                  << options_.linger_seconds
                  << " s, monitoring.linger_seconds; SIGTERM or Ctrl-C ends it)";
    const auto start = std::chrono::steady_clock::now();
    const auto end = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                 std::chrono::duration<double>(options_.linger_seconds));
    while (handler_->started() == seen && std::chrono::steady_clock::now() < end &&
           !StopRequested()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (handler_->started() == seen) return;
    // That scrape has collected the values; give its response time to be sent
    // before the process (and the server) goes away.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    SF_LOG(kInfo) << "final values scraped after "
                  << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
                  << " s";
  }

  void PushLoop() {
    std::unique_lock<std::mutex> lock(push_mutex_);
    while (!stop_push_) {
      push_cv_.wait_for(lock, std::chrono::duration<double>(options_.push_interval_seconds),
                        [&] { return stop_push_; });
      if (stop_push_) break;
      lock.unlock();
      Push();
      lock.lock();
    }
  }

  void StopPusher() {
    {
      std::lock_guard<std::mutex> lock(push_mutex_);
      stop_push_ = true;
    }
    push_cv_.notify_all();
    if (pusher_.joinable()) pusher_.join();
  }

  PrometheusOptions options_;
  MetricsIdentity identity_;
  std::shared_ptr<prometheus::Registry> registry_;
  Family<Gauge>*style_loss_, *loss_, *weighted_loss_, *epoch_, *progress_, *eta_, *learning_rate_,
      *last_checkpoint_, *info_;
  Family<Counter>*steps_, *images_, *checkpoints_, *bad_steps_;
  Family<Histogram>*step_seconds_, *data_wait_, *allreduce_;
  Counter* skipped_;
  Counter* stalls_;
  Gauge* finished_;
  Gauge* info_series_ = nullptr;
  std::map<std::string, Series> series_;
  // Declared before the server, so the server (and its threads) go first.
  std::unique_ptr<MetricsHandler> handler_;
  std::unique_ptr<CivetServer> server_;
  std::unique_ptr<prometheus::Gateway> gateway_;
  std::string endpoint_;
  std::thread pusher_;
  std::mutex push_mutex_;
  std::condition_variable push_cv_;
  bool stop_push_ = false;
};

}  // namespace

std::unique_ptr<TrainingMetrics> MakeNullMetrics() { return std::make_unique<NullMetrics>(); }

std::unique_ptr<MetricsExporter> MakePrometheusMetrics(const PrometheusOptions& options,
                                                       const MetricsIdentity& identity) {
  return std::make_unique<PrometheusMetrics>(options, identity);
}

}  // namespace stylefleet
