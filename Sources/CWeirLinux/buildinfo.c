#include "CWeirLinux.h"

/* Baked in by Package.swift from the environment of the build (make passes the VERSION file and git's commit). */
#ifndef WEIR_VERSION
#define WEIR_VERSION "unknown"
#endif
#ifndef WEIR_COMMIT
#define WEIR_COMMIT "unknown"
#endif
const char *weir_build_version(void) { return WEIR_VERSION; }
const char *weir_build_commit(void) { return WEIR_COMMIT; }
