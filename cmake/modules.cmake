# lmz_module(NAME SOURCES ... DEPS ... [EXTERNAL ...])
#
# Declares one module (one folder = one static library lmz_<NAME>) and checks
# the dependency direction of DESIGN.md section 1:
#   core -> proto -> storage -> cluster -> net -> actor -> gateway -> auth -> server
# A module may only link modules that come before it; anything else stops the
# configure step. tests/deps_check.sh checks the same rule on #include lines.
set(LMZ_MODULE_ORDER core proto storage cluster net actor gateway auth client server examples)

function(lmz_module NAME)
  cmake_parse_arguments(M "" "" "SOURCES;DEPS;EXTERNAL" ${ARGN})
  list(FIND LMZ_MODULE_ORDER ${NAME} self_rank)
  if(self_rank LESS 0)
    message(FATAL_ERROR "lmz_module: unknown module '${NAME}'")
  endif()
  foreach(dep IN LISTS M_DEPS)
    list(FIND LMZ_MODULE_ORDER ${dep} dep_rank)
    if(dep_rank LESS 0 OR NOT dep_rank LESS self_rank)
      message(FATAL_ERROR
        "dependency direction: module '${NAME}' may not depend on '${dep}' "
        "(order: ${LMZ_MODULE_ORDER})")
    endif()
  endforeach()
  add_library(lmz_${NAME} STATIC ${M_SOURCES})
  target_compile_options(lmz_${NAME} PRIVATE ${LMZ_WARNINGS})
  set(libs)
  foreach(dep IN LISTS M_DEPS)
    list(APPEND libs lmz_${dep})
  endforeach()
  target_link_libraries(lmz_${NAME} PUBLIC ${libs} ${M_EXTERNAL})
endfunction()
