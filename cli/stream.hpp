#pragma once
// The client side of a stream (logs, exec, stats; see streams.md): asking
// for it with a resource's action, dialing the WebSocket with the bearer
// token, and the message framing. Binary messages carry a channel byte
// (0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize); stats samples are text.

#include "cli/api_client.hpp"
#include "common/result.hpp"
#include "common/tls.hpp"
#include "common/web_socket.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/signal_set.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace paddock::cli::stream {

enum class Channel : std::uint8_t { stdin_ = 0, stdout_ = 1, stderr_ = 2, status = 3, resize = 4 };

// One message as received.
struct Frame {
  enum class Kind {
    output,   // channel 1 or 2: payload goes to stdout / stderr
    status,   // channel 3: the final status (JSON payload)
    text,     // a text message (a stats sample)
    ignored,  // an empty message, or a channel a client never receives
  };
  Kind kind = Kind::ignored;
  Channel channel = Channel::stdout_;
  std::string_view payload;  // points into the message
};
Frame decode(std::string_view message, bool text);

// A binary message for `channel`.
std::string encode(Channel channel, std::string_view payload);
// The resize message (channel 4): {"width": W, "height": H}.
std::string resize_message(unsigned width, unsigned height);

// The last message of every stream.
struct Status {
  bool success = false;
  std::optional<int> exit_code;  // exec's remote exit code
  std::string message;           // why it failed, if said
};
// Parses a status payload; a payload that is not a status object is an error.
Result<Status> parse_status(std::string_view payload);

// The answer to a stream action.
struct HostAccess {
  std::string url;    // wss://server/v1/stream
  std::string token;  // the bearer token
};
Result<HostAccess> parse_host_access(const json& answer);

// POSTs `action` from `resource`'s actions map with `input` and returns the
// stream to dial. A missing action is explained with the resource's state.
ApiResult<HostAccess> request_stream(ApiClient& api, const json& resource, std::string_view action,
                                     const json& input);

// Dials the stream's WebSocket with "Authorization: Bearer <token>" and the
// server's trust. One line on failure, e.g. "the stream was refused: 503
// ServiceUnavailable: the host is not connected".
boost::asio::awaitable<Result<std::shared_ptr<WebSocket>>> dial(boost::asio::any_io_executor executor,
                                                                HostAccess access, tls::ClientTrust trust);

// How a stream ended.
struct End {
  enum class How {
    status,       // the server sent the final status
    closed,       // the connection ended without a status
    stopped,      // the client stopped it (a signal, or it had what it wanted)
  };
  How how = How::closed;
  Status status;        // for How::status
  std::string detail;   // for How::closed: why, for a person
};

// What to do with what arrives; each returns false to stop the stream (a
// closed stdout, or one sample was all that was wanted). Unset handlers drop
// their messages.
struct Handlers {
  std::function<bool(std::string_view)> on_stdout;
  std::function<bool(std::string_view)> on_stderr;
  std::function<bool(std::string_view)> on_text;  // a text message: a stats sample
};

// Handlers that write channel 1 to stdout and channel 2 to stderr.
Handlers terminal_handlers();

// Reads `ws` until the status message, the close, or stop(): one reader per
// socket. Must run on the socket's executor, as must every other call.
class Reader {
 public:
  Reader(std::shared_ptr<WebSocket> ws, Handlers handlers);
  boost::asio::awaitable<End> run();
  // Ends run() soon with How::stopped: closes the socket politely.
  void stop();

 private:
  std::shared_ptr<WebSocket> ws_;
  Handlers handlers_;
  bool stopped_ = false;
};

// Forwards what `fd` reads to the stream on channel 0 without blocking the
// event loop (regular files and /dev/null, which cannot be polled, are read
// directly). At end of input it sends one empty channel-0 message, the
// end-of-input marker. The awaiting of each write is the back-pressure.
class StdinPump {
 public:
  StdinPump(boost::asio::any_io_executor executor, std::shared_ptr<WebSocket> ws, int fd);
  ~StdinPump();
  StdinPump(const StdinPump&) = delete;
  StdinPump& operator=(const StdinPump&) = delete;

  boost::asio::awaitable<void> run();
  // Ends run() soon; what was read but not sent is dropped.
  void cancel();

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// Catches SIGINT, SIGTERM, SIGHUP and SIGQUIT while it lives and calls
// `on_signal` on the executor for each one, so a stream is ended (and the
// terminal restored) by the code that owns it rather than by the default
// action. Create it before changing the terminal.
class SignalWatch {
 public:
  SignalWatch(boost::asio::any_io_executor executor, std::function<void(int)> on_signal);
  ~SignalWatch();
  SignalWatch(const SignalWatch&) = delete;
  SignalWatch& operator=(const SignalWatch&) = delete;
  void cancel();

 private:
  struct State;
  static void arm(const std::shared_ptr<State>& state);
  std::shared_ptr<State> state_;
};

// One stream from dial to end, on an event loop of its own: logs and exec.
struct RunOptions {
  Handlers handlers;
  int stdin_fd = -1;          // forward this descriptor on channel 0 (exec -i)
  bool raw_terminal = false;  // stdin's terminal in raw mode while connected (exec -it)
  int size_fd = -1;           // send this terminal's size first and on SIGWINCH (exec -t)
};
struct Outcome {
  std::string error;  // the stream never opened: why
  int signal = 0;     // a signal stopped it
  End end;
};
// Catches SIGINT, SIGTERM, SIGHUP and SIGQUIT throughout: the first one
// closes the stream (and aborts it 2 s later), a second aborts at once. The
// terminal and stdin's flags are restored before this returns, on every path.
Outcome run_stream(const HostAccess& access, const tls::ClientTrust& trust, RunOptions options);

}  // namespace paddock::cli::stream
