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

/// Starts the exposer (and pusher). Throws Error when the address cannot be
/// bound (with listen_strict, or when no free port is left either), naming it
/// and the config key.
std::unique_ptr<TrainingMetrics> MakePrometheusMetrics(const PrometheusOptions& options,
                                                       const MetricsIdentity& identity);

}  // namespace stylefleet
