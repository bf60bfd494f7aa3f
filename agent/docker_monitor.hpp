#pragma once
// Keeps a current picture of the local Docker (its facts, containers and
// images) from Docker's event stream, and tells the agent what changed.
//
// The event stream is opened first and the lists are read once Docker has
// accepted it, so nothing that happens in between is missed. Each relevant
// event re-reads the affected list (coalesced: events arriving during a read
// cause one more read, not one each) and reports the difference. When the
// stream breaks, everything is read again (a full sync) and on_synced asks
// for a snapshot. While Docker is down the monitor retries with backoff and
// reports it unreachable; it never reports an empty Docker in its place.
//
// Runs on one executor (the agent's); every member is called there. Docker
// calls complete there too, so nothing here blocks the caller but stop().

#include "common/async_event.hpp"
#include "agent/docker_client.hpp"
#include "agent/host_facts.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace paddock::agent {

// Awaits one DockerClient call: `start` is given the completion handler.
// Must be awaited on the executor the client posts its completions to.
boost::asio::awaitable<Result<nlohmann::json>> docker_call(std::function<void(DockerClient::JsonHandler)> start);

class DockerMonitor {
 public:
  struct Callbacks {
    // A change to report: a container/containerRemoved/image/imageRemoved message.
    std::function<void(const nlohmann::json& message)> on_change;
    // Everything was read afresh: time for a snapshot.
    std::function<void()> on_synced;
    // Docker was found unreachable: the first failure, or a reachable Docker
    // going away (facts().reachable is false, known() is true).
    std::function<void()> on_unreachable;
  };
  struct Config {
    std::chrono::milliseconds retry_base{500};  // backoff while Docker is down
    std::chrono::milliseconds retry_cap{10000};
  };

  DockerMonitor(boost::asio::any_io_executor executor, std::shared_ptr<DockerClient> docker, Callbacks callbacks,
                Config config);
  DockerMonitor(boost::asio::any_io_executor executor, std::shared_ptr<DockerClient> docker, Callbacks callbacks)
      : DockerMonitor(std::move(executor), std::move(docker), std::move(callbacks), Config{}) {}

  void start();
  // Ends the event stream and the Docker client (joins its threads: brief).
  void stop();

  // Reads everything again; on_synced follows once it is read (now if
  // Docker is reachable, else when it is back).
  void request_sync();

  const DockerFacts& facts() const { return facts_; }
  // Reachable and read since the stream last (re)started.
  bool synced() const { return synced_; }
  // Whether Docker was reached or failed at least once: until then, its
  // state is not known and is better not reported.
  bool known() const { return known_; }
  nlohmann::json containers() const;  // protocol container objects
  nlohmann::json images() const;      // protocol image objects

 private:
  enum class Stream { idle, starting, connected, ended };

  boost::asio::awaitable<void> run();
  boost::asio::awaitable<bool> full_sync();
  boost::asio::awaitable<bool> read_containers(bool report);
  boost::asio::awaitable<bool> read_images(bool report);
  void on_event(const nlohmann::json& event);
  void set_unreachable(const std::string& why);

  boost::asio::any_io_executor executor_;
  std::shared_ptr<DockerClient> docker_;
  Callbacks callbacks_;
  Config config_;
  AsyncEvent wake_;

  bool started_ = false;
  bool stopping_ = false;
  Stream stream_ = Stream::idle;
  std::uint64_t stream_generation_ = 0;
  Status stream_end_ = Ok{};
  bool sync_requested_ = false;
  bool containers_dirty_ = false;
  bool images_dirty_ = false;
  bool synced_ = false;
  bool known_ = false;

  DockerFacts facts_;
  std::map<std::string, nlohmann::json> containers_;  // by dockerId
  std::map<std::string, nlohmann::json> images_;      // by dockerId
};

}  // namespace paddock::agent
