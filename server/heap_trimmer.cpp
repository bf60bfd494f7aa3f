#include "server/heap_trimmer.hpp"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include <malloc.h>

namespace paddock::server {

HeapTrimmer::HeapTrimmer(boost::asio::io_context& io, std::function<std::uint64_t()> accepted, TrimRule rule,
                         std::function<void()> trim)
    : accepted_(std::move(accepted)),
      rule_(rule),
      trim_(trim ? std::move(trim) : [] { malloc_trim(0); }),
      strand_(boost::asio::make_strand(io)),
      timer_(strand_) {}

void HeapTrimmer::start() {
  boost::asio::post(strand_, [this] { wait(); });
}

void HeapTrimmer::stop() {
  stopped_ = true;
  boost::asio::post(strand_, [this] { timer_.cancel(); });
}

void HeapTrimmer::wait() {
  if (stopped_) return;
  timer_.expires_after(rule_.period);
  timer_.async_wait([this](boost::system::error_code) {
    if (stopped_) return;
    check();
    wait();
  });
}

void HeapTrimmer::check() {
  const std::uint64_t accepted = accepted_();
  const std::uint64_t burst = accepted - accepted_at_last_trim_;
  if (burst < rule_.burst) return;
  accepted_at_last_trim_ = accepted;
  const auto started = std::chrono::steady_clock::now();
  trim_();
  spdlog::debug("heap trimmed after {} connections in {} ms", burst,
                std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
}

}  // namespace paddock::server
