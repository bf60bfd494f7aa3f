#pragma once
// Bytes read from a socket, not yet parsed, in a buffer sized by the
// traffic: an idle connection keeps a few hundred bytes, a busy one reads
// up to 64 KiB at a time. Thousands of idle agents each hold one or two.

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <algorithm>
#include <cstddef>
#include <string_view>

namespace paddock::server {

class ReadBuffer {
 public:
  static constexpr std::size_t kMinReadSize = 512;
  static constexpr std::size_t kMaxReadSize = 64 * 1024;

  // Room for the next read. An emptied buffer much larger than the read is
  // given back first.
  boost::asio::mutable_buffer space() {
    if (bytes_.size() == 0 && bytes_.capacity() > 2 * read_size_) bytes_.shrink_to_fit();
    return bytes_.prepare(read_size_);
  }

  // `n` bytes arrived in space(). Reads grow while they fill it and shrink
  // slowly once they bring little (a TLS read ends at a record's end, so a
  // short read alone says nothing).
  void received(std::size_t n) {
    bytes_.commit(n);
    if (n == read_size_) {
      read_size_ = std::min(read_size_ * 2, kMaxReadSize);
    } else if (n < read_size_ / 8) {
      read_size_ = std::max(read_size_ / 2, kMinReadSize);
    }
  }

  // Bytes that arrived some other way (read ahead by an HTTP parser).
  void append(std::string_view bytes) {
    bytes_.commit(boost::asio::buffer_copy(bytes_.prepare(bytes.size()), boost::asio::buffer(bytes)));
  }

  std::string_view view() const { return {static_cast<const char*>(bytes_.data().data()), bytes_.size()}; }
  char* data() { return static_cast<char*>(bytes_.data().data()); }  // to decrypt in place
  std::size_t size() const { return bytes_.size(); }
  std::size_t capacity() const { return bytes_.capacity(); }
  void consume(std::size_t n) { bytes_.consume(n); }

 private:
  boost::beast::flat_buffer bytes_;
  std::size_t read_size_ = kMinReadSize;
};

}  // namespace paddock::server
