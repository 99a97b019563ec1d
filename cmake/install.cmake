# Installing lmz: `cmake --install build [--prefix P]` (or `make install
# PREFIX=P`) and the Debian package (`make package`, CPack).
#
# Layout under the prefix:
#   bin/lmzd, bin/lmz
#   include/lmz/*.h                 the public API
#   lib/liblmz-testing.so.0         the test kit (include/lmz/testing.h) for
#                                   an application's unit tests
#   lib/pkgconfig/lmz.pc            what a module is compiled with
#   lib/pkgconfig/lmz-testing.pc    what a module's unit test links
#   lib/lmz/libcounter.so ...       the example modules (lmzd --dev loads
#                                   them from <exe>/../lib/lmz)
#   share/lmz/editor, share/lmz/client   the pages lmzd --dev serves
#   share/lmz/examples/             the examples' sources and a node config
#   lib/systemd/system/lmzd@.service, lib/sysusers.d/lmz.conf
# Paths are fixed ("lib", not the multiarch LIBDIR) so that an installed
# lmzd finds its files relative to its own executable, whatever the prefix;
# the .pc files are relocatable (${pcfiledir}).
# Included last from the top-level CMakeLists.txt (every target exists).

# ---- the test kit as a shared library -------------------------------------
# The kit lives in lmz_actor (a static library of the build). An
# application's test links this one library; its NEEDED entries pull in
# RocksDB, raft, libuv... at run time, so users need no -dev packages of them.
set(LMZ_TESTING_STUB ${CMAKE_BINARY_DIR}/generated/lmz_testing_lib.c)
file(WRITE ${LMZ_TESTING_STUB}.in
     "/* generated: liblmz-testing = lmz_actor + lmz_core, whole */\n"
     "extern const char lmz_testing_lib_version[];\n"
     "const char lmz_testing_lib_version[] = \"${PROJECT_VERSION}\";\n")
configure_file(${LMZ_TESTING_STUB}.in ${LMZ_TESTING_STUB} COPYONLY)
add_library(lmz_testing SHARED ${LMZ_TESTING_STUB})
target_link_libraries(lmz_testing PRIVATE lmz_actor)
target_link_options(lmz_testing PRIVATE -Wl,--whole-archive $<TARGET_FILE:lmz_actor>
                    $<TARGET_FILE:lmz_core> -Wl,--no-whole-archive)
set_target_properties(lmz_testing PROPERTIES OUTPUT_NAME lmz-testing
                      VERSION ${PROJECT_VERSION} SOVERSION 0)

# ---- `lmz init`: the application skeleton, embedded in the lmz binary ------
file(GLOB_RECURSE LMZ_TEMPLATE_FILES CONFIGURE_DEPENDS
     ${CMAKE_SOURCE_DIR}/templates/app/*)
set(LMZ_TEMPLATES_C ${CMAKE_BINARY_DIR}/generated/cli_init_files.c)
add_custom_command(OUTPUT ${LMZ_TEMPLATES_C}
  COMMAND ${CMAKE_COMMAND} -DDIR=${CMAKE_SOURCE_DIR}/templates/app
          -DOUT=${LMZ_TEMPLATES_C} -P ${CMAKE_SOURCE_DIR}/cmake/embed_files.cmake
  DEPENDS ${LMZ_TEMPLATE_FILES} ${CMAKE_SOURCE_DIR}/cmake/embed_files.cmake
  COMMENT "Embedding templates/app for lmz init")
# The command lives in this directory and lmz in server/: a target here runs
# it first (Makefile generators see custom commands only in their directory).
add_custom_target(lmz_init_templates DEPENDS ${LMZ_TEMPLATES_C})
add_dependencies(lmz lmz_init_templates)
target_sources(lmz PRIVATE ${LMZ_TEMPLATES_C})

# ---- what is installed ------------------------------------------------------
install(TARGETS lmzd lmz RUNTIME DESTINATION bin)
install(TARGETS lmz_testing LIBRARY DESTINATION lib)
install(TARGETS counter editor LIBRARY DESTINATION lib/lmz)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/include/lmz DESTINATION include
        FILES_MATCHING PATTERN "*.h")
foreach(pc lmz lmz-testing)
  configure_file(${CMAKE_SOURCE_DIR}/deploy/${pc}.pc.in
                 ${CMAKE_BINARY_DIR}/generated/${pc}.pc @ONLY)
  install(FILES ${CMAKE_BINARY_DIR}/generated/${pc}.pc DESTINATION lib/pkgconfig)
endforeach()
install(DIRECTORY ${CMAKE_SOURCE_DIR}/examples/editor/web/ DESTINATION share/lmz/editor)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/clients/js/src/ DESTINATION share/lmz/client)
install(FILES ${CMAKE_SOURCE_DIR}/examples/counter/counter.c
              ${CMAKE_SOURCE_DIR}/examples/editor/editor.c
              ${CMAKE_SOURCE_DIR}/deploy/example.jsonc
        DESTINATION share/lmz/examples)
# The unit runs the lmzd of the prefix it is installed into (/usr/bin/lmzd
# from the package), decided at install time: cmake --install --prefix P.
install(CODE "
  file(READ \"${CMAKE_SOURCE_DIR}/deploy/lmzd@.service\" unit)
  string(REPLACE \"ExecStart=/usr/bin/lmzd\" \"ExecStart=\${CMAKE_INSTALL_PREFIX}/bin/lmzd\" unit \"\${unit}\")
  set(dest \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/lib/systemd/system\")
  message(STATUS \"Installing: \${dest}/lmzd@.service\")
  file(MAKE_DIRECTORY \"\${dest}\")
  file(WRITE \"\${dest}/lmzd@.service\" \"\${unit}\")")
install(FILES ${CMAKE_SOURCE_DIR}/deploy/lmz.sysusers DESTINATION lib/sysusers.d
        RENAME lmz.conf)

# ---- the Debian package (make package) --------------------------------------
# Runtime dependencies by their Debian names (bookworm): the package of each
# NEEDED library of lmzd, lmz and liblmz-testing (tests/integration/install.sh
# checks that each one is listed), plus SQLite for the SQL storage API.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME lmz)
set(CPACK_PACKAGE_VENDOR "lmz")
set(CPACK_PACKAGE_CONTACT "lmz maintainers <lmz@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "cluster-distributed actor runtime: durable objects, workers, browser clients")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libc6 (>= 2.34), libuv1 (>= 1.44), libraft2 (>= 0.15), librocksdb7.8, libsodium23, libprotobuf-c1, libnettle8, libwslay1, libhttp-parser2.9, libsqlite3-0, libcurl4 (>= 7.87)")
# Building applications (lmz init) needs a compiler, CMake and pkg-config.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "cmake, make, pkg-config, gcc | clang")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_SOURCE_DIR}/deploy/debian/postinst
                                      ${CMAKE_SOURCE_DIR}/deploy/debian/prerm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
