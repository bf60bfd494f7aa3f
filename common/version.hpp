#pragma once

namespace paddock {

// The project's version, set by CMake from project(VERSION).
inline constexpr const char* kVersion = PADDOCK_VERSION;

}  // namespace paddock
