#include "server/version.h"

const char *lmz_version_string(void) { return LMZ_VERSION; }
