# One settings target carries warnings and sanitizer flags; every target links it.
add_library(paddock_settings INTERFACE)
target_compile_options(paddock_settings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
  -Wimplicit-fallthrough)
target_compile_definitions(paddock_settings INTERFACE
  PADDOCK_VERSION="${PROJECT_VERSION}"
  # Asio and Beast are compiled once, in common/asio_impl.cpp.
  BOOST_ASIO_SEPARATE_COMPILATION BOOST_BEAST_SEPARATE_COMPILATION
  BOOST_ASIO_NO_DEPRECATED BOOST_BEAST_USE_STD_STRING_VIEW)
target_include_directories(paddock_settings INTERFACE ${PROJECT_SOURCE_DIR})
if(PADDOCK_WERROR)
  target_compile_options(paddock_settings INTERFACE -Werror)
endif()
if(PADDOCK_ENABLE_ASAN)
  target_compile_options(paddock_settings INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(paddock_settings INTERFACE -fsanitize=address,undefined)
endif()
