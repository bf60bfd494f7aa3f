# A private dockerd for the tests that need one (never the system's): the
# setup test starts it with tests/support/dockerd.py, the cleanup test stops
# it, and the tests that require the `docker` fixture find it through
# PADDOCK_TEST_DOCKER_HOST. Include this after paddock_unit_tests(agent).

if(NOT DEFINED PADDOCK_PYTHON)
  set(PADDOCK_PYTHON /usr/bin/python3)
endif()
# Short and per build tree: a unix socket path must fit in 108 bytes.
if(NOT PADDOCK_TEST_DOCKER_DIR)
  string(MD5 _paddock_docker_hash "${PROJECT_BINARY_DIR}")
  string(SUBSTRING "${_paddock_docker_hash}" 0 12 _paddock_docker_hash)
  set(PADDOCK_TEST_DOCKER_DIR "/tmp/pdk-${_paddock_docker_hash}")
endif()
set(PADDOCK_TEST_DOCKER_HOST "unix://${PADDOCK_TEST_DOCKER_DIR}/docker.sock")
set(PADDOCK_TEST_DOCKER_IMAGE "paddock-test/busybox:latest")
set(_paddock_dockerd ${CMAKE_CURRENT_SOURCE_DIR}/support/dockerd.py)

add_test(NAME docker.start
         COMMAND ${PADDOCK_PYTHON} ${_paddock_dockerd} start ${PADDOCK_TEST_DOCKER_DIR}
                 --busybox-image ${PADDOCK_TEST_DOCKER_IMAGE})
set_tests_properties(docker.start PROPERTIES
  FIXTURES_SETUP docker LABELS docker TIMEOUT 120
  ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
add_test(NAME docker.stop
         COMMAND ${PADDOCK_PYTHON} ${_paddock_dockerd} stop ${PADDOCK_TEST_DOCKER_DIR})
set_tests_properties(docker.stop PROPERTIES
  FIXTURES_CLEANUP docker LABELS docker TIMEOUT 120
  ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")

# gtest_discover_tests names the GoogleTest cases only when ctest runs, so
# the Docker-backed ones (suites named DockerLive*) get the fixture from a
# ctest include file read after the discovered list (<target>_TESTS).
set(_paddock_docker_tests ${CMAKE_CURRENT_BINARY_DIR}/docker_fixture_tests.cmake)
file(WRITE ${_paddock_docker_tests} "
foreach(_t IN LISTS paddock_agent_tests_TESTS)
  if(_t MATCHES \"^DockerLive\")
    set_tests_properties(\"\${_t}\" PROPERTIES
      FIXTURES_REQUIRED docker
      ENVIRONMENT_MODIFICATION \"PADDOCK_TEST_DOCKER_HOST=set:${PADDOCK_TEST_DOCKER_HOST}\")
  endif()
endforeach()
")
set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${_paddock_docker_tests})
