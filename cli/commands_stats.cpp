// paddock stats [--no-stream] [--host H] [CONTAINER...]

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/resolve.hpp"
#include "cli/stream.hpp"
#include "cli/table.hpp"
#include "cli/terminal.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <exception>
#include <map>
#include <sstream>

#include <unistd.h>

namespace paddock::cli {

namespace {

namespace asio = boost::asio;

// One container's stream and its latest sample.
struct Watched {
  json container;
  std::string host_name;
  stream::HostAccess access;
  std::shared_ptr<WebSocket> ws;
  std::shared_ptr<stream::Reader> reader;
  json sample;  // null until the first arrives
  bool ended = false;
  std::string failure;  // why it ended badly, if it did
};

std::string io_cell(const json& sample, std::string_view in, std::string_view out) {
  return format_bytes_si(number(sample, in)) + " / " + format_bytes_si(number(sample, out));
}

Table stats_table(const std::vector<std::unique_ptr<Watched>>& watched) {
  Table table({"ID", "NAME", "HOST", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"});
  for (const auto& w : watched) {
    const json& x = w->sample;
    std::string mem = "-", mem_pct = "-", cpu = "-", net = "-", block = "-", pids = "-";
    if (x.is_object()) {
      const auto usage = number(x, "memoryUsage");
      const auto limit = number(x, "memoryLimit");
      mem = format_bytes(usage) + " / " + format_bytes(limit);
      if (usage && limit && *limit > 0) mem_pct = format_percent(*usage * 100.0 / *limit);
      cpu = format_percent(number(x, "cpuPercent"));
      net = io_cell(x, "networkRx", "networkTx");
      block = io_cell(x, "blockRead", "blockWrite");
      pids = cell(x, "pids");
    }
    table.add({cell(w->container, "id"), cell(w->container, "name"), printable(w->host_name), cpu, mem, mem_pct, net,
               block, pids});
  }
  return table;
}

json annotated(const Watched& w) {
  json sample = w.sample;
  sample["id"] = str(w.container, "id");
  sample["name"] = str(w.container, "name");
  return sample;
}

ApiResult<std::vector<json>> targets(Session& s, const StatsOptions& o) {
  std::vector<json> out;
  if (o.containers.empty()) {
    std::string collection = "/v1/containers";
    if (!o.host.empty()) {
      auto host = resolve_host(s.api, o.host);
      if (!host) return host.error();
      collection = containers_url(*host);
    }
    return s.api.list(collection, {{"state", "running"}});
  }
  for (const auto& ref : o.containers) {
    auto c = resolve_container(s.api, ref, o.host);
    if (!c) return c.error();
    const bool seen = std::any_of(out.begin(), out.end(), [&](const json& x) { return str(x, "id") == str(*c, "id"); });
    if (!seen) out.push_back(std::move(*c));
  }
  return out;
}

}  // namespace

int stats(Session& s, const StatsOptions& o) {
  auto containers = targets(s, o);
  if (!containers) return s.fail(containers.error());

  auto names = host_names_of(s.api, *containers);
  if (!names) return s.fail(names.error());
  const std::map<std::string, std::string>& host_name = *names;

  std::vector<std::unique_ptr<Watched>> watched;
  const json input = {{"stream", !o.no_stream}};
  for (auto& c : *containers) {
    auto access = stream::request_stream(s.api, c, "stats", input);
    if (!access) return s.fail(access.error());
    auto w = std::make_unique<Watched>();
    auto h = host_name.find(str(c, "hostId"));
    w->host_name = h == host_name.end() ? "-" : h->second;
    w->container = std::move(c);
    w->access = std::move(*access);
    watched.push_back(std::move(w));
  }
  auto trust = s.api.trust();
  if (!trust) return s.fail(trust.error());

  const bool json_out = s.json_output();
  const bool live = !o.no_stream && terminal::is_terminal(STDOUT_FILENO);
  if (watched.empty()) {
    if (json_out) {
      print_json(s.out, json::array());
    } else {
      stats_table(watched).print(s.out);
    }
    return kExitOk;
  }

  asio::io_context io;
  auto executor = io.get_executor();
  int stopped_by = 0;
  bool changed = false;
  std::size_t running = watched.size();
  asio::steady_timer redraw(io);
  asio::steady_timer abort_timer(io);

  auto draw = [&] {
    if (json_out || o.no_stream || !changed) return;
    changed = false;
    std::ostringstream frame;
    if (live) frame << "\033[2J\033[H";
    stats_table(watched).print(frame);
    terminal::write_all(STDOUT_FILENO, frame.str());
  };
  auto stop_all = [&] {
    for (auto& w : watched) {
      if (w->reader && !w->ended) w->reader->stop();
    }
  };

  stream::SignalWatch signals(executor, [&](int signal) {
    if (stopped_by != 0) {
      for (auto& w : watched) {
        if (w->ws) w->ws->abort();
      }
      io.stop();
      return;
    }
    stopped_by = signal;
    stop_all();
    abort_timer.expires_after(std::chrono::seconds(2));
    abort_timer.async_wait([&](error_code ec) {
      if (!ec) io.stop();
    });
  });

  auto finished = [&] {
    if (--running > 0) return;
    redraw.cancel();
    abort_timer.cancel();
    signals.cancel();
    draw();
  };

  for (auto& entry : watched) {
    Watched* w = entry.get();
    asio::co_spawn(
        io,
        [&, w]() -> asio::awaitable<void> {
          auto dialed = co_await stream::dial(executor, w->access, *trust);
          if (!dialed) {
            w->failure = dialed.error().message;
            w->ended = true;
            finished();
            co_return;
          }
          w->ws = std::move(*dialed);
          w->ws->set_idle_timeout(std::chrono::seconds(60), /*keep_alive_pings=*/true);
          stream::Handlers handlers;
          handlers.on_text = [&, w](std::string_view text) {
            auto sample = json::parse(text, nullptr, /*allow_exceptions=*/false);
            if (!sample.is_object()) return true;  // not a sample: skip it
            w->sample = std::move(sample);
            changed = true;
            if (json_out && !o.no_stream) {
              terminal::write_all(STDOUT_FILENO, annotated(*w).dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
            }
            return !o.no_stream;  // one sample is all --no-stream wants
          };
          w->reader = std::make_shared<stream::Reader>(w->ws, std::move(handlers));
          if (stopped_by != 0) w->reader->stop();
          const stream::End end = co_await w->reader->run();
          w->ended = true;
          if (end.how == stream::End::How::closed) {
            w->failure = end.detail;
          } else if (end.how == stream::End::How::status && !end.status.success) {
            w->failure = end.status.message.empty() ? std::string("the stream failed") : end.status.message;
          }
          finished();
        },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
  }

  if (!json_out && !o.no_stream) {
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          while (running > 0) {
            redraw.expires_after(std::chrono::seconds(1));
            auto [ec] = co_await redraw.async_wait(asio::as_tuple(asio::use_awaitable));
            if (ec && running == 0) co_return;
            draw();
          }
        },
        asio::detached);
  }
  // Until every stream is over, then briefly for the polite closes (see
  // stream::run_stream for why not io.run()).
  while (running > 0 && io.run_one() > 0) {
  }
  if (running == 0 && !io.stopped()) io.run_for(std::chrono::seconds(2));
  // Sockets must go before their io_context does.
  for (auto& w : watched) {
    w->reader.reset();
    w->ws.reset();
  }

  if (o.no_stream) {
    if (json_out) {
      json all = json::array();
      for (const auto& w : watched) {
        if (w->sample.is_object()) all.push_back(annotated(*w));
      }
      print_json(s.out, all);
    } else {
      stats_table(watched).print(s.out);
    }
  }
  s.out.flush();
  int code = kExitOk;
  for (const auto& w : watched) {
    // A container whose sample arrived and whose stream we stopped is fine.
    if (!w->failure.empty() && !(o.no_stream && w->sample.is_object())) {
      s.fail(str(w->container, "id") + " (" + printable(str(w->container, "name")) + "): " + w->failure);
      code = kExitFailure;
    }
  }
  if (stopped_by != 0) return 128 + stopped_by;
  return code;
}

}  // namespace paddock::cli
