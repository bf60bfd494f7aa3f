#include "agent/docker_monitor.hpp"

#include "agent/backoff.hpp"
#include "agent/messages.hpp"
#include "common/log.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <string_view>

namespace paddock::agent {

namespace asio = boost::asio;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

// Events after which the container list may read differently. exec_*,
// attach, resize, top and health_status change nothing we report.
constexpr std::array<std::string_view, 12> kContainerActions = {
    "create", "start", "restart", "stop", "die", "kill", "pause", "unpause", "rename", "destroy", "update", "oom"};
constexpr std::array<std::string_view, 6> kImageActions = {"pull", "tag", "untag", "delete", "import", "load"};

// Quiet periods after a container event before the list is read again
// (Docker's list catches up with a "die" within a few tens of milliseconds).
constexpr std::array<std::chrono::milliseconds, 3> kContainerRechecks = {
    std::chrono::milliseconds(50), std::chrono::milliseconds(150), std::chrono::milliseconds(800)};

template <std::size_t N>
bool one_of(const std::array<std::string_view, N>& set, std::string_view v) {
  for (auto s : set) {
    if (s == v) return true;
  }
  return false;
}

}  // namespace

DockerMonitor::DockerMonitor(asio::any_io_executor executor, std::shared_ptr<DockerClient> docker,
                             Callbacks callbacks, Config config)
    : executor_(executor),
      docker_(std::move(docker)),
      callbacks_(std::move(callbacks)),
      config_(config),
      wake_(executor) {}

void DockerMonitor::start() {
  if (started_) return;
  started_ = true;
  asio::co_spawn(executor_, run(), asio::detached);
}

void DockerMonitor::stop() {
  stopping_ = true;
  wake_.notify();
  docker_->stop();
}

void DockerMonitor::request_sync() {
  sync_requested_ = true;
  wake_.notify();
}

json DockerMonitor::containers() const {
  json out = json::array();
  for (const auto& [id, c] : containers_) out.push_back(c);
  return out;
}

json DockerMonitor::images() const {
  json out = json::array();
  for (const auto& [id, i] : images_) out.push_back(i);
  return out;
}

asio::awaitable<Result<json>> docker_call(std::function<void(DockerClient::JsonHandler)> start) {
  // Not a coroutine itself: GCC 12 destroys an argument converted for a
  // coroutine's by-value parameter twice (here the std::function made from
  // the caller's lambda). The client posts its completion to our executor;
  // resuming from there is resuming on our executor.
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(Result<json>)>(
      [start = std::move(start)](auto handler) mutable {
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        start([shared](Result<json> result) mutable { (*shared)(std::move(result)); });
      },
      asio::use_awaitable);
}

void DockerMonitor::on_event(const json& event) {
  if (!event.is_object()) return;
  const std::string type = event.value("Type", json()).is_string() ? event["Type"].get<std::string>() : "";
  std::string action = event.value("Action", json()).is_string() ? event["Action"].get<std::string>() : "";
  if (action.empty() && event.value("status", json()).is_string()) action = event["status"].get<std::string>();
  if (type == "container" && one_of(kContainerActions, action)) {
    containers_dirty_ = true;
    wake_.notify();
  } else if (type == "image" && one_of(kImageActions, action)) {
    images_dirty_ = true;
    wake_.notify();
  }
}

void DockerMonitor::set_unreachable(const std::string& why) {
  synced_ = false;
  const bool news = facts_.reachable || !known_;
  known_ = true;
  facts_.reachable = false;
  if (!news) {
    spdlog::debug("Docker still unreachable: {}", why);
    return;
  }
  spdlog::warn("Docker at {} is unreachable ({}); retrying", docker_->endpoint().socket_path, why);
  if (callbacks_.on_unreachable) callbacks_.on_unreachable();
}

asio::awaitable<bool> DockerMonitor::read_containers(bool report) {
  auto list = co_await docker_call([this](DockerClient::JsonHandler done) { docker_->list_containers(std::move(done)); });
  if (stopping_) co_return false;
  if (!list) {
    spdlog::warn("cannot list Docker's containers: {}", list.error().message);
    co_return false;
  }
  std::map<std::string, json> now;
  for (const auto& item : *list) {
    if (auto c = container_from_docker(item)) {
      auto id = (*c)["dockerId"].get<std::string>();
      now.emplace(std::move(id), std::move(*c));
    }
  }
  if (report && callbacks_.on_change) {
    for (const auto& [id, c] : now) {
      auto it = containers_.find(id);
      if (it == containers_.end() || container_changed(it->second, c)) callbacks_.on_change(container_message(c));
    }
    for (const auto& [id, c] : containers_) {
      if (!now.count(id)) callbacks_.on_change(container_removed_message(id));
    }
  }
  containers_ = std::move(now);
  co_return true;
}

asio::awaitable<bool> DockerMonitor::read_images(bool report) {
  auto list = co_await docker_call([this](DockerClient::JsonHandler done) { docker_->list_images(std::move(done)); });
  if (stopping_) co_return false;
  if (!list) {
    spdlog::warn("cannot list Docker's images: {}", list.error().message);
    co_return false;
  }
  std::map<std::string, json> now;
  for (const auto& item : *list) {
    if (auto i = image_from_docker(item)) {
      auto id = (*i)["dockerId"].get<std::string>();
      now.emplace(std::move(id), std::move(*i));
    }
  }
  if (report && callbacks_.on_change) {
    for (const auto& [id, i] : now) {
      auto it = images_.find(id);
      if (it == images_.end() || it->second != i) callbacks_.on_change(image_message(i));
    }
    for (const auto& [id, i] : images_) {
      if (!now.count(id)) callbacks_.on_change(image_removed_message(id));
    }
  }
  images_ = std::move(now);
  co_return true;
}

asio::awaitable<bool> DockerMonitor::full_sync() {
  auto version = co_await docker_call([this](DockerClient::JsonHandler done) { docker_->version(std::move(done)); });
  if (stopping_) co_return false;
  if (!version) {
    spdlog::warn("cannot read Docker's version: {}", version.error().message);
    co_return false;
  }
  auto info = co_await docker_call([this](DockerClient::JsonHandler done) { docker_->info(std::move(done)); });
  if (stopping_) co_return false;
  if (!info) {
    spdlog::warn("cannot read Docker's info: {}", info.error().message);
    co_return false;
  }
  const bool containers_read = co_await read_containers(false);
  if (!containers_read) co_return false;
  const bool images_read = co_await read_images(false);
  if (!images_read) co_return false;
  const bool reachable = facts_.reachable;
  facts_ = docker_facts_from(*version, *info);
  facts_.reachable = reachable;
  co_return true;
}

asio::awaitable<void> DockerMonitor::run() {
  Backoff backoff(config_.retry_base, config_.retry_cap);
  while (!stopping_) {
    const auto generation = ++stream_generation_;
    stream_ = Stream::starting;
    containers_dirty_ = images_dirty_ = false;
    DockerEventsOptions options;
    options.filters = {{"type", {"container", "image"}}};
    options.on_connected = [this, generation] {
      if (generation == stream_generation_ && stream_ == Stream::starting) {
        stream_ = Stream::connected;
        wake_.notify();
      }
    };
    docker_->events(
        [this, generation](json event) {
          if (generation == stream_generation_) on_event(event);
        },
        [this, generation](Status end) {
          if (generation != stream_generation_) return;
          stream_ = Stream::ended;
          stream_end_ = std::move(end);
          wake_.notify();
        },
        std::move(options));
    while (stream_ == Stream::starting && !stopping_) {
      co_await wake_.wait();
    }
    if (stopping_) break;

    if (stream_ == Stream::ended) {
      if (!stream_end_ && stream_end_.error().code == Errc::conflict) {
        // The last stream's thread has not quite finished: try again shortly.
        co_await wake_.wait_for(100ms);
        continue;
      }
      set_unreachable(stream_end_ ? "its event stream ended" : stream_end_.error().message);
      const auto delay = backoff.next();
      co_await wake_.wait_for(delay);
      continue;
    }

    // Docker accepted the stream: read everything, then follow the events.
    const auto connected_at = std::chrono::steady_clock::now();
    bool synced = false;
    while (!stopping_ && stream_ == Stream::connected) {
      synced = co_await full_sync();
      if (synced) break;
      const auto delay = backoff.next();
      co_await wake_.wait_for(delay);
    }
    if (stopping_) break;
    if (synced) {
      if (!facts_.reachable && known_) spdlog::info("Docker is reachable again");
      known_ = true;
      facts_.reachable = true;
      synced_ = true;
      sync_requested_ = false;
      spdlog::info("Docker {} (API {}): {} containers, {} images", facts_.version, facts_.api_version,
                   containers_.size(), images_.size());
      if (callbacks_.on_synced) callbacks_.on_synced();
      // Docker can answer a list made just after an event with the state
      // from before it (a killed container is still "running" right after
      // its "die"), and a quiet host sends no later event: after the events
      // settle, the list is read again, soon and once more a little later.
      std::size_t rechecks_left = 0;
      while (!stopping_ && stream_ == Stream::connected) {
        if (sync_requested_) {
          sync_requested_ = false;
          const bool ok = co_await full_sync();
          if (ok) {
            if (callbacks_.on_synced) callbacks_.on_synced();
          } else {
            sync_requested_ = true;
            co_await wake_.wait_for(1s);
          }
          continue;
        }
        if (containers_dirty_) {
          containers_dirty_ = false;
          const bool ok = co_await read_containers(true);
          if (!ok) {
            containers_dirty_ = true;
            co_await wake_.wait_for(1s);
          } else {
            rechecks_left = kContainerRechecks.size();
          }
          continue;
        }
        if (images_dirty_) {
          images_dirty_ = false;
          const bool ok = co_await read_images(true);
          if (!ok) {
            images_dirty_ = true;
            co_await wake_.wait_for(1s);
          }
          continue;
        }
        if (rechecks_left > 0) {
          const auto delay = kContainerRechecks[kContainerRechecks.size() - rechecks_left];
          const bool notified = co_await wake_.wait_for(delay);
          if (notified) continue;  // something new: handled above, which re-arms the rechecks
          --rechecks_left;
          if (!stopping_ && stream_ == Stream::connected) co_await read_containers(true);
          continue;
        }
        co_await wake_.wait();
      }
    }
    synced_ = false;
    if (stopping_) break;
    spdlog::info("Docker's event stream ended ({}); reading everything again",
                 stream_ == Stream::ended && !stream_end_ ? stream_end_.error().message : "closed");
    // A stream that keeps ending at once must not spin.
    if (std::chrono::steady_clock::now() - connected_at < 5s) {
      const auto delay = backoff.next();
      co_await wake_.wait_for(delay);
    }
  }
  stream_ = Stream::idle;
}

}  // namespace paddock::agent
