// The footprint floor that libcurl sets: this program does nothing but what
// any libcurl-based Docker client must do, once: initialize libcurl, ask
// Docker's unix socket for /version, then wait. bench/agent_footprint.py
// shows its RSS beside the agent's.
//
//     paddock-curl-floor /path/to/docker.sock

#include <curl/curl.h>

#include <cstdio>
#include <string>

#include <unistd.h>

namespace {

std::size_t keep(char* data, std::size_t size, std::size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DOCKER_SOCKET\n", argv[0]);
    return 2;
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 1;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return 1;
  std::string body;
  curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, argv[1]);
  curl_easy_setopt(curl, CURLOPT_URL, "http://localhost/version");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, keep);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  const CURLcode rc = curl_easy_perform(curl);
  if (rc != CURLE_OK) {
    std::fprintf(stderr, "GET /version: %s\n", curl_easy_strerror(rc));
    return 1;
  }
  std::printf("%zu bytes from /version\n", body.size());
  std::fflush(stdout);
  pause();  // until the benchmark kills it
  curl_easy_cleanup(curl);
  curl_global_cleanup();
  return 0;
}
