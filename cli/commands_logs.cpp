// paddock logs [-f] [--tail N|all] [--since T] [--until T] [-t] [--host H] CONTAINER

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/resolve.hpp"
#include "cli/stream.hpp"
#include "cli/terminal.hpp"
#include "common/time_util.hpp"

#include <algorithm>
#include <csignal>

#include <unistd.h>

namespace paddock::cli {

namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "1h30m" -> 5400; nullopt unless the whole text is number-unit pairs.
std::optional<std::int64_t> parse_duration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::int64_t total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::int64_t n = 0;
    const std::size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (n > 1'000'000'000) return std::nullopt;
      n = n * 10 + (text[i] - '0');
      ++i;
    }
    if (i == start || i == text.size()) return std::nullopt;
    std::int64_t unit = 0;
    switch (text[i]) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      default: return std::nullopt;
    }
    ++i;
    total += n * unit;
  }
  return total;
}

}  // namespace

Result<json> parse_log_time(std::string_view text, std::int64_t now_s) {
  if (all_digits(text) && text.size() <= 12) return json(std::stoll(std::string(text)));
  if (time_util::parse_rfc3339(text)) return json(std::string(text));
  if (auto ago = parse_duration(text)) return json(now_s - *ago);
  return fail(Errc::invalid_input, "'" + printable(text) +
                                       "' is not a time: use RFC 3339 (2026-11-22T07:00:00Z), epoch seconds, "
                                       "or a duration ago (90s, 10m, 1h30m, 2d)");
}

Result<json> parse_tail(std::string_view text) {
  if (text == "all") return json("all");
  if (all_digits(text) && text.size() <= 9) return json(std::stoll(std::string(text)));
  return fail(Errc::invalid_input, "--tail takes a number of lines or 'all', not '" + printable(text) + "'");
}

int logs(Session& s, const LogsOptions& o) {
  // since/until go as explicit nulls when not given: both are nullable in the
  // input schema, and it keeps servers that look them up unconditionally happy.
  json input = {{"follow", o.follow}, {"timestamps", o.timestamps}, {"stdout", true},
                {"stderr", true},      {"since", nullptr},           {"until", nullptr}};
  const auto usage = [&](const Error& e) {
    s.err << "error: " << e.message << std::endl;
    return kExitUsage;
  };
  if (!o.tail.empty()) {
    auto tail = parse_tail(o.tail);
    if (!tail) return usage(tail.error());
    input["tail"] = *tail;
  }
  const auto now = time_util::now_s();
  for (const auto& [flag, value] : {std::pair{"since", &o.since}, std::pair{"until", &o.until}}) {
    if (value->empty()) continue;
    auto t = parse_log_time(*value, now);
    if (!t) return usage(Error{Errc::invalid_input, "--" + std::string(flag) + ": " + t.error().message});
    input[flag] = *t;
  }

  auto container = resolve_container(s.api, o.container, o.host);
  if (!container) return s.fail(container.error());
  auto access = stream::request_stream(s.api, *container, "logs", input);
  if (!access) return s.fail(access.error());
  auto trust = s.api.trust();
  if (!trust) return s.fail(trust.error());

  s.out.flush();
  stream::RunOptions run;
  run.handlers = stream::terminal_handlers();
  const auto outcome = stream::run_stream(*access, *trust, std::move(run));
  if (!outcome.error.empty()) return s.fail(outcome.error);
  if (outcome.signal != 0) return 128 + outcome.signal;
  switch (outcome.end.how) {
    case stream::End::How::status:
      if (outcome.end.status.success) return kExitOk;
      return s.fail("logs of " + str(*container, "id") + ": " +
                    (outcome.end.status.message.empty() ? std::string("the stream failed")
                                                        : outcome.end.status.message));
    case stream::End::How::closed:
      return s.fail(outcome.end.detail);
    case stream::End::How::stopped:
      return kExitOk;  // stdout went away (| head)
  }
  return kExitFailure;
}

}  // namespace paddock::cli
