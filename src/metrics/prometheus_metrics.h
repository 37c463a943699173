// Prometheus exporter for TrainingMetrics: pull (/metrics over HTTP) and/or
// push (a Pushgateway). The only part of the code that uses prometheus-cpp;
// its types stay out of this header.
#pragma once

#include <memory>
#include <string>

#include "metrics/training_metrics.h"

namespace stylefleet {

struct PrometheusOptions {
  /// host:port to serve /metrics on; the port is offset by the local rank so
  /// ranks on one node do not collide (port 0: any free port). Empty: no HTTP.
  std::string listen = "0.0.0.0:9450";
  /// When that port is taken: false serves on a free port instead (a warning
  /// names it; endpoint() returns it), true throws.
  bool listen_strict = false;
  /// Finish() keeps serving until a scrape has read the final values, at most
  /// this long; not at all when no scrape arrived before Finish().
  double linger_seconds = 0;
  /// host:port of a Pushgateway; empty: no push.
  std::string pushgateway;
  double push_interval_seconds = 10;
};

/// The metrics the trainer reports to, served and/or pushed. What the trainer
/// sees is TrainingMetrics; the end of the export, the address and the text
/// are the launcher's (train/launch.cc) and the tests'.
class MetricsExporter : public TrainingMetrics {
 public:
  /// Training is over: mark the process finished (stylefleet_finished 1, so
  /// that its end is not mistaken for a dead rank), push a last time, and keep
  /// serving until a scrape has read the final values (at most the linger time).
  virtual void Finish() = 0;
  /// host:port this process serves /metrics on; empty when not serving.
  virtual std::string endpoint() const = 0;
  /// The current values in Prometheus's text format (what /metrics returns).
  virtual std::string Text() const = 0;
};

/// Starts the exposer (and pusher). Throws Error when the address cannot be
/// bound (with listen_strict, or when no free port is left either), naming it
/// and the config key.
std::unique_ptr<MetricsExporter> MakePrometheusMetrics(const PrometheusOptions& options,
                                                       const MetricsIdentity& identity);

}  // namespace stylefleet
