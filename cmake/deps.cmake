# Every dependency comes from Debian (scripts/install-deps.sh) and is found here,
# once, as an imported target. See shared/reference/c-deps-guide.md section 1.
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBUV     REQUIRED IMPORTED_TARGET libuv>=1.44)
pkg_check_modules(RAFT      REQUIRED IMPORTED_TARGET raft>=0.15)
pkg_check_modules(ROCKSDB   REQUIRED IMPORTED_TARGET rocksdb>=7.8)
pkg_check_modules(SODIUM    REQUIRED IMPORTED_TARGET libsodium>=1.0.18)
pkg_check_modules(PROTOBUFC REQUIRED IMPORTED_TARGET libprotobuf-c>=1.4)
pkg_check_modules(NETTLE    REQUIRED IMPORTED_TARGET nettle)
pkg_check_modules(SQLITE3   REQUIRED IMPORTED_TARGET sqlite3>=3.40)
# outbound HTTP (lmz_fetch) and the SMTP / HTTP-API mail senders; 7.87 for
# CURLOPT_QUICK_EXIT (never join a resolver thread on the loop)
pkg_check_modules(CURL      REQUIRED IMPORTED_TARGET libcurl>=7.87)
pkg_check_modules(CMOCKA    IMPORTED_TARGET cmocka)
pkg_check_modules(JANSSON   IMPORTED_TARGET jansson)
find_program(PROTOC_C protoc-c REQUIRED)
find_package(wslay CONFIG REQUIRED)
find_path(HTTP_PARSER_INCLUDE_DIR http_parser.h REQUIRED)
find_library(HTTP_PARSER_LIBRARY http_parser REQUIRED)
if(NOT TARGET http_parser::http_parser)
  add_library(http_parser::http_parser UNKNOWN IMPORTED)
  set_target_properties(http_parser::http_parser PROPERTIES
    IMPORTED_LOCATION ${HTTP_PARSER_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${HTTP_PARSER_INCLUDE_DIR})
endif()
find_package(Threads REQUIRED)
