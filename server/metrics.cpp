#include "server/metrics.hpp"

#include <sstream>

namespace paddock::server {

void Metrics::observe_request(const std::string& route, const std::string& method, int status, double seconds) {
  std::lock_guard lock(mutex_);
  ++requests_[{route, method, status}];
  auto& h = latency_[{route, method}];
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++h.counts[i];
  }
  ++h.count;
  h.sum += seconds;
}

void Metrics::websocket_opened(const std::string& kind) {
  std::lock_guard lock(mutex_);
  ++websockets_[kind];
}

void Metrics::websocket_closed(const std::string& kind) {
  std::lock_guard lock(mutex_);
  --websockets_[kind];
}

std::int64_t Metrics::open_websockets(const std::string& kind) const {
  std::lock_guard lock(mutex_);
  auto it = websockets_.find(kind);
  return it == websockets_.end() ? 0 : it->second;
}

std::string Metrics::render(const std::string& extra) const {
  std::ostringstream out;
  std::lock_guard lock(mutex_);
  out << "# HELP paddock_http_requests_total HTTP requests by route, method and status.\n"
         "# TYPE paddock_http_requests_total counter\n";
  for (const auto& [key, n] : requests_) {
    const auto& [route, method, status] = key;
    out << "paddock_http_requests_total{route=\"" << route << "\",method=\"" << method << "\",status=\""
        << status << "\"} " << n << "\n";
  }
  out << "# HELP paddock_http_request_duration_seconds Time to answer HTTP requests.\n"
         "# TYPE paddock_http_request_duration_seconds histogram\n";
  for (const auto& [key, h] : latency_) {
    const auto& [route, method] = key;
    const std::string labels = "route=\"" + route + "\",method=\"" + method + "\"";
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
      out << "paddock_http_request_duration_seconds_bucket{" << labels << ",le=\"" << kBuckets[i] << "\"} "
          << h.counts[i] << "\n";
    }
    out << "paddock_http_request_duration_seconds_bucket{" << labels << ",le=\"+Inf\"} " << h.count << "\n";
    out << "paddock_http_request_duration_seconds_sum{" << labels << "} " << h.sum << "\n";
    out << "paddock_http_request_duration_seconds_count{" << labels << "} " << h.count << "\n";
  }
  out << "# HELP paddock_websockets_open Open WebSocket connections by kind.\n"
         "# TYPE paddock_websockets_open gauge\n";
  for (const auto& [kind, n] : websockets_) {
    out << "paddock_websockets_open{kind=\"" << kind << "\"} " << n << "\n";
  }
  out << extra;
  return out.str();
}

}  // namespace paddock::server
