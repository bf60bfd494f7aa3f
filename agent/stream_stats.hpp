#pragma once
// Docker's stats samples (GET /containers/{id}/stats, one JSON object per
// line) as the stream protocol's samples (streams.md §3):
// {"time", "container", "cpuPercent", "cpuCount", "memoryUsage",
//  "memoryLimit", "networkRx", "networkTx", "blockRead", "blockWrite", "pids"}.
// Docker's objects are untrusted: any field may be absent or of another
// type, which counts as zero.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string_view>

namespace paddock::agent {

// The protocol's sample for `container` (its full id). cpuPercent comes from
// the deltas against the previous reading, as `docker stats` computes it:
// (cpu delta / system delta) × online CPUs × 100, rounded to 0.01; 0 when
// Docker has no previous reading yet (the first sample of a stream).
// memoryUsage is usage less the reclaimable page cache (inactive_file on
// cgroup v2, total_inactive_file on v1, else cache). `now_ms` is the time
// used when the sample carries none.
nlohmann::json normalize_stats(const nlohmann::json& sample, std::string_view container, std::int64_t now_ms);

// True for the empty sample Docker sends for a container that is not running
// (no read time, no CPU reading): the container has stopped.
bool is_empty_stats(const nlohmann::json& sample);

}  // namespace paddock::agent
