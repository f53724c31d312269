# cmake -DSRC=man/nodelayd.8 -DDST=<dir>/nodelayd.8.gz -DVERSION=x.y.z -P gzip-manpage.cmake
# Writes the man page with project()'s version in its .TH line, compressed with gzip -9n
# (no name, no timestamp: the same bytes every build, as lintian wants for a .deb).
file(READ "${SRC}" page)
string(REGEX REPLACE "(\n\\.TH [^\n]*\")nodelayd [^\"]*\"" "\\1nodelayd ${VERSION}\"" page "${page}")
get_filename_component(dir "${DST}" DIRECTORY)
string(REGEX REPLACE "\\.gz$" "" plain "${DST}")
file(MAKE_DIRECTORY "${dir}")
file(WRITE "${plain}" "${page}")
execute_process(COMMAND gzip -9nf "${plain}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gzip -9nf ${plain} failed: ${rc}")
endif()
