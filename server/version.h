#ifndef LMZ_SERVER_VERSION_H
#define LMZ_SERVER_VERSION_H
/* "0.1.0" */
const char *lmz_version_string(void);
#endif
