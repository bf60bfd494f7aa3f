// paddock exec [-i] [-t] [--host H] CONTAINER -- COMMAND...

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/resolve.hpp"
#include "cli/stream.hpp"
#include "cli/terminal.hpp"

#include <unistd.h>

namespace paddock::cli {

int exec(Session& s, const ExecOptions& o) {
  if (o.command.empty()) {
    s.err << "error: exec needs a command: paddock exec CONTAINER -- COMMAND..." << std::endl;
    return kExitUsage;
  }
  auto container = resolve_container(s.api, o.container, o.host);
  if (!container) return s.fail(container.error());
  const json input = {{"command", o.command}, {"tty", o.tty}, {"attachStdin", o.interactive}};
  auto access = stream::request_stream(s.api, *container, "execute", input);
  if (!access) return s.fail(access.error());
  auto trust = s.api.trust();
  if (!trust) return s.fail(trust.error());

  s.out.flush();
  stream::RunOptions run;
  run.handlers = stream::terminal_handlers();
  if (o.interactive) run.stdin_fd = STDIN_FILENO;
  // Raw mode is for typing into a remote terminal: a tty, attached, from a terminal.
  run.raw_terminal = o.tty && o.interactive && terminal::is_terminal(STDIN_FILENO);
  if (o.tty) {
    if (terminal::is_terminal(STDOUT_FILENO)) run.size_fd = STDOUT_FILENO;
    else if (terminal::is_terminal(STDIN_FILENO)) run.size_fd = STDIN_FILENO;
  }
  const auto outcome = stream::run_stream(*access, *trust, std::move(run));
  if (!outcome.error.empty()) return s.fail(outcome.error);
  if (outcome.signal != 0) return 128 + outcome.signal;
  switch (outcome.end.how) {
    case stream::End::How::status: {
      const auto& status = outcome.end.status;
      if (status.success) return status.exit_code.value_or(kExitOk);
      if (status.exit_code && *status.exit_code != 0) return *status.exit_code;
      return s.fail(status.message.empty() ? std::string("the command failed") : status.message);
    }
    case stream::End::How::closed:
      return s.fail(outcome.end.detail);
    case stream::End::How::stopped:
      return kExitFailure;  // stdout went away before the command ended
  }
  return kExitFailure;
}

}  // namespace paddock::cli
