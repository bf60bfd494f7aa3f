#include "agent/messages.hpp"

#include "common/json_limits.hpp"
#include "common/time_util.hpp"

#include <algorithm>
#include <cctype>

namespace paddock::agent {

namespace {

using json = nlohmann::json;

std::string str(const json& j, const char* key, std::size_t max = 255) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return {};
  return clean_text(it->get_ref<const std::string&>(), max);
}

// One code point at s[i] (advancing i), or -1 for a malformed sequence
// (advancing one byte).
long decode_utf8(std::string_view s, std::size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  int len = 0;
  long cp = 0;
  if (b0 < 0x80) {
    ++i;
    return b0;
  } else if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    cp = b0 & 0x07;
  } else {
    ++i;
    return -1;
  }
  if (i + static_cast<std::size_t>(len) > s.size()) {
    ++i;
    return -1;
  }
  for (int k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
    if ((b & 0xC0) != 0x80) {
      ++i;
      return -1;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are malformed.
  static constexpr long kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++i;
    return -1;
  }
  i += static_cast<std::size_t>(len);
  return cp;
}

std::optional<std::int64_t> int_of(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return std::nullopt;
  if (it->is_number_integer()) return it->get<std::int64_t>();
  if (it->is_number_unsigned()) {
    const auto v = it->get<std::uint64_t>();
    if (v <= static_cast<std::uint64_t>(INT64_MAX)) return static_cast<std::int64_t>(v);
  }
  return std::nullopt;
}

json created_of(const json& item) {
  auto seconds = int_of(item, "Created");
  if (!seconds || *seconds <= 0 || *seconds > 253402300799) return nullptr;
  return time_util::format_rfc3339(*seconds * 1000);
}

json clean_labels_of(const json& item, const char* key) {
  auto it = item.find(key);
  return it == item.end() ? json::object() : clean_labels(*it);
}

// "0.0.0.0:8080->80/tcp" as docker ps shows it, or "80/tcp" when unpublished.
json ports_of(const json& item) {
  json out = json::array();
  auto it = item.find("Ports");
  if (it == item.end() || !it->is_array()) return out;
  for (const auto& p : *it) {
    if (!p.is_object()) continue;
    auto priv = int_of(p, "PrivatePort");
    if (!priv) continue;
    std::string type = str(p, "Type", 8);
    if (type.empty()) type = "tcp";
    std::string text = std::to_string(*priv) + "/" + type;
    if (auto pub = int_of(p, "PublicPort"); pub && *pub > 0) {
      std::string ip = str(p, "IP", 64);
      if (ip.find(':') != std::string::npos) ip = "[" + ip + "]";
      text = (ip.empty() ? "" : ip + ":") + std::to_string(*pub) + "->" + text;
    }
    out.push_back(std::move(text));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool is_docker_id(std::string_view s) {
  if (s.size() == 71 && s.substr(0, 7) == "sha256:") s.remove_prefix(7);
  if (s.size() != 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

std::string redact_registration_secrets(std::string_view text) {
  constexpr std::string_view kScripts = "/v1/scripts/";
  constexpr std::string_view kHidden = "\u2026";
  auto ends_a_part = [](char c) {
    return std::isspace(static_cast<unsigned char>(c)) || c == '"' || c == '\'' || c == '/';
  };
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    if (text.substr(i, kScripts.size()) == kScripts) {
      out.append(kScripts).append(kHidden);
      for (i += kScripts.size(); i < text.size() && !ends_a_part(text[i]);) ++i;
    } else if (text.substr(i, 3) == "://") {
      out.append("://");
      i += 3;
      std::size_t j = i;
      while (j < text.size() && !ends_a_part(text[j]) && text[j] != '@') ++j;
      if (j < text.size() && text[j] == '@') {
        out.append(kHidden).append("@");
        i = j + 1;
      }
    } else {
      out += text[i++];
    }
  }
  return out;
}

std::string clean_text(std::string_view text, std::size_t max_bytes) {
  std::string out;
  out.reserve(std::min(text.size(), max_bytes));
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t start = i;
    const long cp = decode_utf8(text, i);
    std::string_view piece;
    if (cp < 0) {
      piece = "\xEF\xBF\xBD";  // U+FFFD
    } else if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || (cp >= 0x7F && cp <= 0x9F)) {
      piece = " ";
    } else {
      piece = text.substr(start, i - start);
    }
    if (out.size() + piece.size() > max_bytes) break;
    out += piece;
  }
  return out;
}

json clean_labels(const json& labels) {
  json out = json::object();
  if (!labels.is_object()) return out;
  for (const auto& [k, v] : labels.items()) {
    if (out.size() >= 256) break;
    if (!v.is_string() || k.empty() || k.size() > 255) continue;
    const std::string key = clean_text(k, 255);
    if (key != k) continue;  // a key is an identity: never alter it
    out[key] = clean_text(v.get_ref<const std::string&>(), 4096);
  }
  return out;
}

std::optional<json> container_from_docker(const json& item) {
  if (!item.is_object()) return std::nullopt;
  const std::string id = str(item, "Id", 128);
  if (!is_docker_id(id)) return std::nullopt;
  // The states Docker documents; anything else would be refused by the server.
  static constexpr std::string_view kStates[] = {"created", "running", "paused", "restarting",
                                                 "removing", "exited", "dead"};
  std::string state = str(item, "State", 32);
  if (std::find(std::begin(kStates), std::end(kStates), state) == std::end(kStates)) state = "dead";
  std::string name;
  if (auto names = item.find("Names"); names != item.end() && names->is_array() && !names->empty() &&
                                       names->front().is_string()) {
    name = clean_text(names->front().get_ref<const std::string&>(), 256);
    if (!name.empty() && name.front() == '/') name.erase(0, 1);
    name = clean_text(name, 255);
  }
  return json{
      {"dockerId", id},
      {"name", name},
      {"image", str(item, "Image", 1024)},
      {"command", clean_text(redact_registration_secrets(str(item, "Command", 4096)), 4096)},
      {"state", state},
      {"status", str(item, "Status", 255)},
      {"created", created_of(item)},
      {"labels", clean_labels_of(item, "Labels")},
      {"ports", ports_of(item)},
  };
}

std::optional<json> image_from_docker(const json& item) {
  if (!item.is_object()) return std::nullopt;
  const std::string id = str(item, "Id", 128);
  if (!is_docker_id(id)) return std::nullopt;
  json tags = json::array();
  if (auto it = item.find("RepoTags"); it != item.end() && it->is_array()) {
    for (const auto& t : *it) {
      if (t.is_string() && t.get<std::string>() != "<none>:<none>" && t.get<std::string>().size() <= 255 &&
          tags.size() < 256) {
        tags.push_back(clean_text(t.get_ref<const std::string&>(), 255));
      }
    }
  }
  std::sort(tags.begin(), tags.end());
  auto size = int_of(item, "Size");
  return json{
      {"dockerId", id},
      {"tags", std::move(tags)},
      {"size", size && *size >= 0 ? json(*size) : json(0)},
      {"created", created_of(item)},
  };
}

bool container_changed(const json& before, const json& after) {
  json a = before, b = after;
  a.erase("status");
  b.erase("status");
  return a != b;
}

json snapshot_message(const json& host, const json& containers, const json& images) {
  return {{"type", "snapshot"}, {"host", host}, {"containers", containers}, {"images", images}};
}
json host_message(const json& host) { return {{"type", "host"}, {"host", host}}; }
json container_message(const json& container) { return {{"type", "container"}, {"container", container}}; }
json container_removed_message(std::string_view docker_id) {
  return {{"type", "containerRemoved"}, {"dockerId", docker_id}};
}
json image_message(const json& image) { return {{"type", "image"}, {"image", image}}; }
json image_removed_message(std::string_view docker_id) {
  return {{"type", "imageRemoved"}, {"dockerId", docker_id}};
}

Result<ServerMessage> parse_server_message(std::string_view text) {
  // A welcome's JWKS nests 4 deep: far deeper is no server of ours.
  if (!json_depth_within(text, 32)) return fail(Errc::invalid_input, "nests too deep");
  auto j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return fail(Errc::invalid_input, "not a JSON object");
  auto type = j.find("type");
  if (type == j.end() || !type->is_string()) return fail(Errc::invalid_input, "no \"type\"");
  ServerMessage m;
  m.type_name = type->get<std::string>().substr(0, 64);
  if (m.type_name == "welcome") {
    m.type = ServerMessage::Type::welcome;
    m.host_id = str(j, "hostId", 128);
    if (auto jwks = j.find("jwks"); jwks != j.end()) {
      if (!jwks->is_object() && !jwks->is_null()) return fail(Errc::invalid_input, "welcome: \"jwks\" is not an object");
      m.jwks = *jwks;
    }
  } else if (m.type_name == "open") {
    m.type = ServerMessage::Type::open;
    m.token = str(j, "token", 16 * 1024);
    if (m.token.empty()) return fail(Errc::invalid_input, "open: no \"token\"");
  }
  return m;
}

std::string encode_message(const json& message) {
  return message.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::vector<std::string> encode_snapshot(const json& host, const json& containers, const json& images) {
  std::string out = encode_message(snapshot_message(host, containers, images));
  if (out.size() <= kMaxMessageBytes) return {std::move(out)};
  json lean = containers;
  for (auto& c : lean) c["labels"] = json::object();
  out = encode_message(snapshot_message(host, lean, images));
  if (out.size() <= kMaxMessageBytes) return {std::move(out)};
  // Still too large for one message (the server would refuse it, and the
  // next session would send it again): each container and image on its own.
  std::vector<std::string> parts{encode_message(host_message(host))};
  parts.reserve(1 + containers.size() + images.size());
  for (std::size_t i = 0; i < containers.size(); ++i) {
    out = encode_message(container_message(containers[i]));
    parts.push_back(out.size() <= kMaxMessageBytes ? std::move(out) : encode_message(container_message(lean[i])));
  }
  for (const auto& image : images) parts.push_back(encode_message(image_message(image)));
  return parts;
}

}  // namespace paddock::agent
