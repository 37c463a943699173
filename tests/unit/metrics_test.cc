// The Prometheus registry: names, labels, values, counters; and the HTTP
// server: its paths, slow clients, and its threads' priority.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

#include "common/error.h"
#include "metrics/prometheus_metrics.h"
#include "metrics/training_metrics.h"

namespace stylefleet {
namespace {

std::unique_ptr<MetricsExporter> Offline() {
  PrometheusOptions options;
  options.listen = "";  // registry only
  return MakePrometheusMetrics(options, MetricsIdentity{"jobx", 3, 1, "nodeA"});
}

// Step `step` of a run of the one style `style`.
StepEvent Step(int64_t step, const std::string& style = "wave") {
  StepEvent e;
  e.run = style;
  e.step = step;
  e.total_steps = 10;
  e.images = 4;
  e.epoch_position = 0.5;
  e.total_loss = 302;
  e.step_seconds = 0.3;
  e.data_wait_seconds = 0.002;
  e.eta_seconds = 12;
  StyleStepEvent s;
  s.style = style;
  s.step = LossValues{2, 3, 0.5, 302, {1, 2}, 4};
  s.content_weight = 1;
  s.style_weight = 100;
  s.tv_weight = 0;
  s.learning_rate = 0.001;
  e.styles.push_back(s);
  return e;
}

bool Has(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(PrometheusMetricsTest, ExportsEveryLayerTermAndCounter) {
  auto m = Offline();
  m->StyleStarted("wave", {"conv1_2", "conv4_3"}, 1, true);
  m->OnStep(Step(1));
  m->OnStep(Step(2));
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

// A conditional network's step: each style the step held images of sets its
// series; a style it held none of keeps its values (its terms are 0, not losses).
TEST(PrometheusMetricsTest, OnlyTheStylesAStepHeldSetTheirSeries) {
  auto m = Offline();
  m->StyleStarted("wave", {"conv1_2", "conv4_3"}, 1, true);
  m->StyleStarted("candy", {"conv1_2", "conv4_3"}, 1, true);
  StepEvent e = Step(1);
  e.run = "both";
  e.styles.push_back(e.styles[0]);
  e.styles[1].style = "candy";
  e.styles[1].step = LossValues{0, 0, 0, 0, {0, 0}, 0};
  m->OnStep(e);
  e.step = 2;
  std::swap(e.styles[0].step, e.styles[1].step);
  m->OnStep(e);
  const std::string text = m->Text();
  EXPECT_TRUE(Has(text, "stylefleet_steps_total{job=\"jobx\",style=\"wave\"} 1")) << text;
  EXPECT_TRUE(Has(text, "stylefleet_steps_total{job=\"jobx\",style=\"candy\"} 1")) << text;
  EXPECT_TRUE(Has(text, "stylefleet_loss{job=\"jobx\",style=\"wave\",term=\"total\"} 302"));
  EXPECT_TRUE(Has(text, "stylefleet_loss{job=\"jobx\",style=\"candy\",term=\"total\"} 302"));
  EXPECT_TRUE(Has(text, "stylefleet_images_total{job=\"jobx\",style=\"candy\"} 4"));
}

// Each layer's series holds its own layer's loss: four layers, not in name
// order, with four different values.
TEST(PrometheusMetricsTest, EachLayerSeriesHoldsThatLayersLoss) {
  auto m = Offline();
  const std::vector<std::string> layers = {"conv3_3", "conv1_2", "conv4_3", "conv2_2"};
  const std::vector<std::string> values = {"3.5", "1.25", "4.75", "2.5"};
  m->StyleStarted("wave", layers, 1, true);
  StepEvent e = Step(1);
  e.styles[0].step.style_layers = {3.5, 1.25, 4.75, 2.5};
  m->OnStep(e);
  const std::string text = m->Text();
  for (size_t i = 0; i < layers.size(); ++i) {
    EXPECT_TRUE(Has(text, "stylefleet_style_loss{job=\"jobx\",layer=\"" + layers[i] +
                              "\",style=\"wave\"} " + values[i]))
        << layers[i] << "\n"
        << text;
  }
}

// A sweep run's series carry its sweep and swept values, so that a dashboard
// can compare the runs of one sweep by label.
TEST(PrometheusMetricsTest, SweepRunSeriesCarryTheSweptValues) {
  auto m = Offline();
  m->StyleStarted("candy/style_weight=50,tv_weight=1", {"conv1_2"}, 0, true,
                  {{"sweep", "candy"}, {"style_weight", "50"}, {"tv_weight", "1"}});
  m->OnStep(Step(1, "candy/style_weight=50,tv_weight=1"));
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
  m->OnStep(Step(1));
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

// A connection to 127.0.0.1:port whose reads and writes give up after
// `timeout_ms`, so that a server that does not answer fails the test instead
// of hanging it; -1 when it cannot connect.
int Connect(int port, int timeout_ms) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const timeval timeout{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Sends "GET <path>" to 127.0.0.1:port; returns the status line, or what went
// wrong when none arrived within timeout_ms.
std::string StatusLine(int port, const std::string& path, int timeout_ms = 20000) {
  const int fd = Connect(port, timeout_ms);
  if (fd < 0) return "connect failed";
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return "write failed";
  }
  std::string response;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
  close(fd);
  if (n < 0 && response.empty()) return "no answer within " + std::to_string(timeout_ms) + " ms";
  return response.substr(0, response.find("\r\n"));
}

int ServerPort(const MetricsExporter& m) {
  const std::string endpoint = m.endpoint();
  return std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
}

TEST(PrometheusMetricsTest, ServesExactlyTheMetricsPath) {
  PrometheusOptions options;
  options.listen = "127.0.0.1:0";
  auto m = MakePrometheusMetrics(options, MetricsIdentity{"jobx", 0, 0, "nodeA"});
  const int port = ServerPort(*m);
  EXPECT_EQ(StatusLine(port, "/metrics"), "HTTP/1.1 200 OK");
  EXPECT_EQ(StatusLine(port, "/metrics?x=1"), "HTTP/1.1 200 OK");
  for (const char* other : {"/METRICS", "/Metrics", "/metrics.php", "/metrics/foo", "/metrics/",
                            "/", "/metricsx", "//metrics", "/x/../metrics"}) {
    EXPECT_EQ(StatusLine(port, other), "HTTP/1.1 404 Not Found") << other;
  }
}

// civetweb decodes %XX before handlers see the path, so "/metrics%00" and
// "/%6detrics" used to be served as /metrics; only the literal path is.
TEST(PrometheusMetricsTest, PercentEncodedPathsAreNotTheMetricsPath) {
  PrometheusOptions options;
  options.listen = "127.0.0.1:0";
  auto m = MakePrometheusMetrics(options, MetricsIdentity{"jobx", 0, 0, "nodeA"});
  const int port = ServerPort(*m);
  for (const char* other :
       {"/metrics%00", "/%6detrics", "/%6D%65%74%72%69%63%73", "/metrics%3F", "/metrics%00.php"}) {
    EXPECT_EQ(StatusLine(port, other), "HTTP/1.1 404 Not Found") << other;
  }
  EXPECT_EQ(StatusLine(port, "/metrics?a=%00"), "HTTP/1.1 200 OK");
}

// Clients that connect and send nothing (or too little) each hold one server
// thread until they are cut off; a few of them must not delay a scrape. The
// bound is far above a scrape's own time and far below the 10 s the two
// former threads were held per slow client.
TEST(PrometheusMetricsTest, IdleConnectionsDoNotDelayAScrape) {
  PrometheusOptions options;
  options.listen = "127.0.0.1:0";
  auto m = MakePrometheusMetrics(options, MetricsIdentity{"jobx", 0, 0, "nodeA"});
  const int port = ServerPort(*m);
  std::vector<int> slow;
  for (int i = 0; i < 8; ++i) slow.push_back(Connect(port, 1000));
  for (int i = 0; i < 2; ++i) {
    slow.push_back(Connect(port, 1000));
    send(slow.back(), "GET /me", 7, MSG_NOSIGNAL);  // a request that never ends
  }
  for (const int fd : slow) ASSERT_GE(fd, 0);
  EXPECT_EQ(StatusLine(port, "/metrics", 5000), "HTTP/1.1 200 OK");
  for (const int fd : slow) close(fd);
}

// A client that sends nothing, or its request a byte at a time, is cut off
// after the request timeout rather than holding a server thread as long as it
// likes. Checked within a bound well above the timeout (2 s).
TEST(PrometheusMetricsTest, SlowClientsAreCutOff) {
  PrometheusOptions options;
  options.listen = "127.0.0.1:0";
  auto m = MakePrometheusMetrics(options, MetricsIdentity{"jobx", 0, 0, "nodeA"});
  const int port = ServerPort(*m);
  const int idle = Connect(port, 100);
  const int trickle = Connect(port, 100);
  ASSERT_GE(idle, 0);
  ASSERT_GE(trickle, 0);
  // Ended once a read sees the end of the stream or an error other than the
  // test's own 100 ms timeout (a 408 answer before the close is fine too).
  const auto ended = [](int fd) {
    char buffer[4096];
    const ssize_t n = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  };
  const std::string request = "GET /metrics HTTP/1.1\r\nX-Padding: " + std::string(1000, 'a');
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::seconds(8);
  bool idle_ended = false, trickle_ended = false;
  for (size_t sent = 0;
       !(idle_ended && trickle_ended) && std::chrono::steady_clock::now() < deadline; ++sent) {
    if (!trickle_ended && sent < request.size()) {
      trickle_ended = send(trickle, &request[sent], 1, MSG_NOSIGNAL) != 1;
    }
    idle_ended = idle_ended || ended(idle);
    trickle_ended = trickle_ended || ended(trickle);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(idle_ended) << "a connection that sent nothing was still open after 8 s";
  EXPECT_TRUE(trickle_ended) << "a connection sending a byte per 100 ms was still open after 8 s";
  close(idle);
  close(trickle);
}

// Nice values of this process's threads, from /proc/self/task/*/stat.
std::vector<int> ThreadNiceValues() {
  std::vector<int> values;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream file(task.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    // Fields after the command name (which may hold spaces) start at field 3;
    // nice is field 19.
    std::istringstream fields(stat.substr(stat.rfind(')') + 1));
    std::string field;
    for (int i = 3; i <= 19 && fields >> field; ++i) {
      if (i == 19) values.push_back(std::stoi(field));
    }
  }
  return values;
}

// Concurrent scrapes on many server threads took three quarters of training's
// CPU on two cores (metrics_load_test); at nice 19 they get only what training
// leaves. Polled because civetweb starts its threads in the background.
TEST(PrometheusMetricsTest, ServerThreadsYieldToTraining) {
  PrometheusOptions options;
  options.listen = "127.0.0.1:0";
  auto m = MakePrometheusMetrics(options, MetricsIdentity{"jobx", 0, 0, "nodeA"});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int64_t lowest = 0, others = 0;
  do {
    const std::vector<int> nice = ThreadNiceValues();
    lowest = std::count(nice.begin(), nice.end(), 19);
    others = static_cast<int64_t>(nice.size()) - lowest;
    if (lowest >= 16) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::steady_clock::now() < deadline);
  EXPECT_GE(lowest, 16) << "server threads at nice 19";
  EXPECT_GE(others, 1) << "the calling thread keeps its priority";
}

}  // namespace
}  // namespace stylefleet
