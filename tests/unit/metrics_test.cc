// The Prometheus registry: names, labels, values, counters; and the HTTP
// server's paths.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <regex>

#include "common/error.h"
#include "metrics/prometheus_metrics.h"
#include "metrics/training_metrics.h"

namespace stylefleet {
namespace {

std::unique_ptr<TrainingMetrics> Offline() {
  PrometheusOptions options;
  options.listen = "";  // registry only
  return MakePrometheusMetrics(options, MetricsIdentity{"jobx", 3, 1, "nodeA"});
}

StepReport Report(int64_t step) {
  StepReport r;
  r.step = step;
  r.total_steps = 10;
  r.images = 4;
  r.epoch = 0.5;
  r.content = 2;
  r.style = 3;
  r.tv = 0.5;
  r.total = 302;
  r.content_weight = 1;
  r.style_weight = 100;
  r.tv_weight = 0;
  r.style_layers = {1, 2};
  r.learning_rate = 0.001;
  r.step_seconds = 0.3;
  r.data_wait_seconds = 0.002;
  r.eta_seconds = 12;
  return r;
}

bool Has(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(PrometheusMetricsTest, ExportsEveryLayerTermAndCounter) {
  auto m = Offline();
  m->StyleStarted("wave", {"conv1_2", "conv4_3"}, 1, true);
  m->StepDone("wave", Report(1));
  m->StepDone("wave", Report(2));
  m->CheckpointWritten("wave", 1700000000);
  m->ImagesSkipped(2);
  const std::string text = m->Text();
  EXPECT_TRUE(Has(text, "stylefleet_style_loss{job=\"jobx\",layer=\"conv1_2\",style=\"wave\"} 1"))
      << text;
  EXPECT_TRUE(Has(text, "stylefleet_style_loss{job=\"jobx\",layer=\"conv4_3\",style=\"wave\"} 2"));
  EXPECT_TRUE(Has(text, "stylefleet_loss{job=\"jobx\",style=\"wave\",term=\"total\"} 302"));
  EXPECT_TRUE(
      Has(text, "stylefleet_weighted_loss{job=\"jobx\",style=\"wave\",term=\"style\"} 300"));
  EXPECT_TRUE(Has(text, "stylefleet_steps_total{job=\"jobx\",style=\"wave\"} 2"));
  EXPECT_TRUE(Has(text, "stylefleet_images_total{job=\"jobx\",style=\"wave\"} 8"));
  EXPECT_TRUE(Has(text, "stylefleet_progress_ratio{job=\"jobx\",style=\"wave\"} 0.2"));
  EXPECT_TRUE(Has(text, "stylefleet_checkpoints_total{job=\"jobx\",style=\"wave\"} 1"));
  EXPECT_TRUE(
      Has(text,
          "stylefleet_last_checkpoint_timestamp_seconds{job=\"jobx\",style=\"wave\"} 1700000000"));
  EXPECT_TRUE(Has(text, "stylefleet_skipped_images_total{job=\"jobx\",rank=\"3\"} 2"));
  EXPECT_TRUE(Has(text, "stylefleet_step_duration_seconds_count{job=\"jobx\",style=\"wave\"} 2"));
  EXPECT_TRUE(Has(text,
                  "stylefleet_info{job=\"jobx\",group=\"1\",host=\"nodeA\",local_rank=\"1\",rank="
                  "\"3\",style=\"wave\"} 1"));
  EXPECT_NE(text.find("# TYPE stylefleet_steps_total counter"), std::string::npos);
  EXPECT_NE(text.find("# TYPE stylefleet_step_duration_seconds histogram"), std::string::npos);
}

// A sweep run's series carry its sweep and swept values, so that a dashboard
// can compare the runs of one sweep by label.
TEST(PrometheusMetricsTest, SweepRunSeriesCarryTheSweptValues) {
  auto m = Offline();
  m->StyleStarted("candy/style_weight=50,tv_weight=1", {"conv1_2"}, 0, true,
                  {{"sweep", "candy"}, {"style_weight", "50"}, {"tv_weight", "1"}});
  m->StepDone("candy/style_weight=50,tv_weight=1", Report(1));
  const std::string text = m->Text();
  const std::string labels =
      "job=\"jobx\",style=\"candy/style_weight=50,tv_weight=1\",style_weight=\"50\","
      "sweep=\"candy\",tv_weight=\"1\"";
  EXPECT_TRUE(Has(text,
                  "stylefleet_loss{job=\"jobx\",style=\"candy/style_weight=50,tv_weight=1\","
                  "style_weight=\"50\",sweep=\"candy\",term=\"total\",tv_weight=\"1\"} 302"))
      << text;
  EXPECT_TRUE(Has(text,
                  "stylefleet_style_loss{job=\"jobx\",layer=\"conv1_2\",style=\"candy/"
                  "style_weight=50,tv_weight=1\",style_weight=\"50\",sweep=\"candy\","
                  "tv_weight=\"1\"} 1"))
      << text;
  EXPECT_TRUE(Has(text, "stylefleet_steps_total{" + labels + "} 1")) << text;
}

TEST(PrometheusMetricsTest, NonRootRanksExportHealthButNotLosses) {
  auto m = Offline();
  m->StyleStarted("wave", {"conv1_2"}, 0, false);
  m->StepDone("wave", Report(1));
  const std::string text = m->Text();
  EXPECT_EQ(text.find("stylefleet_style_loss{"), std::string::npos);
  EXPECT_NE(text.find("stylefleet_info{"), std::string::npos);
}

TEST(PrometheusMetricsTest, InfoFollowsTheCurrentStyle) {
  auto m = Offline();
  m->StyleStarted("a", {"conv1_2"}, 0, true);
  m->StyleStarted("b", {"conv1_2"}, 0, true);
  const std::string text = m->Text();
  EXPECT_EQ(text.find("stylefleet_info{job=\"jobx\",group=\"0\",host=\"nodeA\",local_rank=\"1\","
                      "rank=\"3\",style=\"a\"}"),
            std::string::npos);
  EXPECT_NE(text.find("style=\"b\"} 1"), std::string::npos);
}

TEST(PrometheusMetricsTest, BadListenAddressIsAConfigError) {
  PrometheusOptions options;
  options.listen = "localhost";
  try {
    MakePrometheusMetrics(options, MetricsIdentity{});
    FAIL() << "a listen address without a port was accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.problems(),
              std::vector<std::string>{"monitoring.listen: expected host:port, got 'localhost'"});
  }
}

// Sends "GET <path>" to 127.0.0.1:port; returns the status line.
std::string StatusLine(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return "connect failed";
  }
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return "write failed";
  }
  std::string response;
  char buffer[4096];
  for (ssize_t n; (n = read(fd, buffer, sizeof(buffer))) > 0;) response.append(buffer, n);
  close(fd);
  return response.substr(0, response.find("\r\n"));
}

TEST(PrometheusMetricsTest, ServesExactlyTheMetricsPath) {
  PrometheusOptions options;
  options.listen = "127.0.0.1:0";
  auto m = MakePrometheusMetrics(options, MetricsIdentity{"jobx", 0, 0, "nodeA"});
  const std::string endpoint = m->endpoint();
  const int port = std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
  EXPECT_EQ(StatusLine(port, "/metrics"), "HTTP/1.1 200 OK");
  EXPECT_EQ(StatusLine(port, "/metrics?x=1"), "HTTP/1.1 200 OK");
  for (const char* other : {"/METRICS", "/Metrics", "/metrics.php", "/metrics/foo", "/metrics/",
                            "/", "/metricsx", "//metrics", "/x/../metrics"}) {
    EXPECT_EQ(StatusLine(port, other), "HTTP/1.1 404 Not Found") << other;
  }
}

}  // namespace
}  // namespace stylefleet
