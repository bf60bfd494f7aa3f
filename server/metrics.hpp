#pragma once
// Counters and latency histograms for GET /metrics (Prometheus text format).
// Thread-safe.

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>

namespace paddock::server {

class Metrics {
 public:
  // `route` is a template such as "/v1/{collection}/{id}", never a raw path,
  // so the label set stays small whatever clients send.
  void observe_request(const std::string& route, const std::string& method, int status, double seconds);
  void websocket_opened(const std::string& kind);
  void websocket_closed(const std::string& kind);
  std::int64_t open_websockets(const std::string& kind) const;

  // Text exposition; `extra` is appended (gauges computed at scrape time).
  std::string render(const std::string& extra) const;

 private:
  static constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,   0.25,   0.5,   1.0,  5.0};
  struct Histogram {
    std::array<std::uint64_t, kBuckets.size()> counts{};
    std::uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mutex_;
  std::map<std::tuple<std::string, std::string, int>, std::uint64_t> requests_;
  std::map<std::pair<std::string, std::string>, Histogram> latency_;
  std::map<std::string, std::int64_t> websockets_;
};

}  // namespace paddock::server
