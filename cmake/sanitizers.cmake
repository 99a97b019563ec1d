# Sanitizer builds (make check; README "Tests"). LMZ_ASAN = ASan + UBSan,
# LMZ_TSAN = ThreadSanitizer; the two runtimes cannot share a process.
# Sets, for tests/CMakeLists.txt:
#   LMZ_SAN_TEST_ENV     *SAN_OPTIONS that make every report fatal
#   LMZ_TEST_LAUNCHER    prepended to each test command in a sanitizer build:
#                        tests/san_run.sh, which fails the test on a report
#                        from any process it started (lmzd, lmz, forks)
# Reports must fail tests: ASan always stops at the first error
# (abort_on_error), UBSan is compiled non-recoverable, TSan exits at its first
# report (halt_on_error, exitcode 66).
if(LMZ_ASAN AND LMZ_TSAN)
  message(FATAL_ERROR "LMZ_ASAN and LMZ_TSAN cannot be combined: use two build folders")
endif()
set(LMZ_SAN_TEST_ENV)
set(LMZ_TEST_LAUNCHER)
if(LMZ_ASAN)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
endif()
if(LMZ_TSAN)
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
endif()
# Sanitized processes run 2-15x slower (and start slower: cli_codec.sh runs
# lmz some 500 times), so deadlines that are only hang guards (ctest TIMEOUT,
# it_lib.sh wait_until) are scaled by LMZ_TEST_TIME_SCALE there. Checks of
# speed (e.g. "a new leader within 2 s") are not scaled.
set(LMZ_TEST_TIME_SCALE 1)
if(LMZ_ASAN OR LMZ_TSAN)
  set(LMZ_TEST_LAUNCHER bash ${CMAKE_SOURCE_DIR}/tests/san_run.sh)
  set(LMZ_TEST_TIME_SCALE 3)
endif()
if(LMZ_TSAN) # slower still: repl_partition's lease + 3 s took TSan over x3
  set(LMZ_TEST_TIME_SCALE 5)
endif()
list(APPEND LMZ_SAN_TEST_ENV "LMZ_TEST_TIME_SCALE=${LMZ_TEST_TIME_SCALE}")
# which runtime (address, thread or none): a test may shrink a payload that
# one sanitizer makes too slow, never what the plain build proves
if(LMZ_ASAN)
  list(APPEND LMZ_SAN_TEST_ENV "LMZ_TEST_SANITIZER=address")
elseif(LMZ_TSAN)
  list(APPEND LMZ_SAN_TEST_ENV "LMZ_TEST_SANITIZER=thread")
endif()

# lmz_scale_test_timeouts(): multiplies the TIMEOUT of every test registered
# so far in the calling directory by LMZ_TEST_TIME_SCALE.
function(lmz_scale_test_timeouts)
  if(LMZ_TEST_TIME_SCALE EQUAL 1)
    return()
  endif()
  get_property(tests DIRECTORY PROPERTY TESTS)
  foreach(t IN LISTS tests)
    get_test_property(${t} TIMEOUT to)
    if(to)
      math(EXPR to "${to} * ${LMZ_TEST_TIME_SCALE}")
      set_tests_properties(${t} PROPERTIES TIMEOUT ${to})
    endif()
  endforeach()
endfunction()
# Set in every build: harmless without the runtime, and a plain build's
# fuzz targets use ASan + UBSan too.
list(APPEND LMZ_SAN_TEST_ENV
  "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1"
  "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
  "TSAN_OPTIONS=halt_on_error=1:exitcode=66:second_deadlock_stack=1:suppressions=${CMAKE_SOURCE_DIR}/tests/tsan.supp")
