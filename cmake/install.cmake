# Install layout and the Debian package (included from the top-level CMakeLists.txt).
#
#   cmake --install build --prefix /usr    binary, units, /etc/nodelayd/nodelayd.conf, man page
#   (cd build && cpack -G DEB)              nodelayd_<version>_<arch>.deb, always for prefix /usr
#
# Destinations are relative to the prefix in effect at install time (cmake --install
# --prefix, or CPACK_PACKAGING_INSTALL_PREFIX under cpack), so a build configured for
# /usr/local still packages a correct .deb.

# The man page, compressed at build time: <build>/man/man8/nodelayd.8.gz. The build tree's
# man/ is a valid MANPATH entry (the unit checks point `man` at it).
set(NODELAYD_MAN_GZ ${PROJECT_BINARY_DIR}/man/man8/nodelayd.8.gz)
add_custom_command(OUTPUT ${NODELAYD_MAN_GZ}
  COMMAND ${CMAKE_COMMAND} -DSRC=${PROJECT_SOURCE_DIR}/man/nodelayd.8 -DDST=${NODELAYD_MAN_GZ}
          -DVERSION=${PROJECT_VERSION} -P ${PROJECT_SOURCE_DIR}/cmake/gzip-manpage.cmake
  DEPENDS ${PROJECT_SOURCE_DIR}/man/nodelayd.8 ${PROJECT_SOURCE_DIR}/cmake/gzip-manpage.cmake
  COMMENT "Compressing man page nodelayd.8"
  VERBATIM)
add_custom_target(nodelayd_manpage ALL DEPENDS ${NODELAYD_MAN_GZ})
install(FILES ${NODELAYD_MAN_GZ} DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)

# systemd units, where systemd looks for a package's units: <prefix>/lib/systemd/system
# (/usr/lib/systemd/system for the .deb, /usr/local/lib/systemd/system by default). They
# name /usr/bin/nodelayd and /etc/nodelayd/nodelayd.conf, the .deb's paths.
install(FILES systemd/nodelayd.service systemd/nodelayd.socket
  DESTINATION lib/systemd/system)

# Examples: every configuration under etc/ (and etc/examples/, if present).
file(GLOB NODELAYD_EXAMPLES CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/etc/*.conf ${PROJECT_SOURCE_DIR}/etc/examples/*)
install(FILES ${NODELAYD_EXAMPLES} DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# The configuration file: /etc/nodelayd/nodelayd.conf when the prefix is /usr (as
# GNUInstallDirs does for sysconfdir), else <prefix>/etc/nodelayd. Decided at install time
# (see above). A direct `cmake --install` never overwrites an existing, possibly edited,
# file; the .deb marks it as a conffile, so dpkg asks before replacing a changed one.
install(CODE "
  set(_sysconfdir \"${CMAKE_INSTALL_SYSCONFDIR}\")
  if(IS_ABSOLUTE \"\${_sysconfdir}\")
    set(_confdir \"\${_sysconfdir}/nodelayd\")
  elseif(CMAKE_INSTALL_PREFIX STREQUAL \"/usr\" AND _sysconfdir STREQUAL \"etc\")
    set(_confdir /etc/nodelayd)
  else()
    set(_confdir \"\${CMAKE_INSTALL_PREFIX}/\${_sysconfdir}/nodelayd\")
  endif()
  if(EXISTS \"\$ENV{DESTDIR}\${_confdir}/nodelayd.conf\")
    message(STATUS \"Keeping existing: \$ENV{DESTDIR}\${_confdir}/nodelayd.conf\")
  else()
    file(INSTALL DESTINATION \"\${_confdir}\" TYPE FILE
      FILES \"${PROJECT_SOURCE_DIR}/etc/nodelayd.conf\")
  endif()
")

# ---- Debian package: cpack -G DEB -------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME nodelayd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "nodelayd")
set(CPACK_PACKAGE_CONTACT "nodelayd-dev <dev@nodelayd.invalid>")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "nodelayd-dev <dev@nodelayd.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "TCP proxy that adds no Nagle or delayed-ACK stalls")
# The summary above is the first line of the control file's Description; this is the rest.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
"nodelayd relays TCP connections to upstream servers (round-robin with failover)
without the 40-200 ms stalls that Nagle's algorithm and delayed ACKs create when
small writes meet. It re-arms TCP_QUICKACK before every read and forwards with
TCP_NODELAY in gathered writes. It runs as a hardened systemd service (sd_notify,
socket activation, watchdog, reload on SIGHUP) and serves Prometheus metrics.")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Depends: from the binary's shared libraries (dpkg-shlibdeps, package dpkg-dev).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${PROJECT_SOURCE_DIR}/packaging/debian/conffiles
  ${PROJECT_SOURCE_DIR}/packaging/debian/postinst
  ${PROJECT_SOURCE_DIR}/packaging/debian/prerm
  ${PROJECT_SOURCE_DIR}/packaging/debian/postrm)
# conffiles 0644, maintainer scripts 0755, whatever their mode in the checkout.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
include(CPack)
